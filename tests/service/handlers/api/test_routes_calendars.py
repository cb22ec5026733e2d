"""Connecting calendars through the management API: Google against the fake Google Calendar, Microsoft
through a recording stand-in for the Graph port, ICS by its feed address. Reconnecting, changing and
removing them; bad bodies; and no refresh token in any answer, log line or error."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetpilot.domain.calendar import CalendarKind
from meetpilot.domain.clock import to_iso
from meetpilot.domain.meeting import DesiredState, meeting_key
from meetpilot.handlers.observability import logger as powertools_logger
from meetpilot_dev.client import ApiError
from tests.support.api_stack import dispatch_now
from tests.support.log_capture import captured_text
from tests.support.microsoft_port import RecordingMicrosoftCalendars


def _start(minutes: int) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def meeting(start: datetime, code: str, owner: str) -> dict[str, Any]:
    return {
        "summary": "Design review",
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat(), "timeZone": "UTC"},
        "hangoutLink": f"https://meet.google.com/{code}",
        "attendees": [{"email": owner, "self": True, "responseStatus": "accepted"}],
    }


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def sync_now(stack, calendar_id: str | None = None) -> list[dict[str, Any]]:
    """Run the calendar sync worker over what is queued; returns the jobs it took (for ``calendar_id``).

    The stack is shared by the file's tests, so other calendars' jobs may be queued too.
    """
    sqs = stack.container.client("sqs")
    url = stack.container.settings.calendar_sync_queue_url
    peek = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    jobs = [json.loads(m["Body"]) for m in peek.get("Messages", [])]
    stack.feeders["CalendarSyncFunction"].drain()
    return [j for j in jobs if calendar_id is None or j["calendar_id"] == calendar_id]


@pytest.fixture
def microsoft(api_stack) -> Iterator[RecordingMicrosoftCalendars]:
    fake = RecordingMicrosoftCalendars(grants=api_stack.container.calendar_grants)
    api_stack.container.microsoft_calendars = fake
    yield fake
    del api_stack.container.microsoft_calendars


def disconnect(stack, calendar_id: str, reason: str) -> None:
    """Mark a calendar disconnected in the table, as the sync does when a grant is refused."""
    ddb = stack.container.client("dynamodb")
    ddb.update_item(
        TableName=stack.container.settings.table_name,
        Key={"pk": {"S": "CALENDARS"}, "sk": {"S": f"CAL#{calendar_id}"}},
        UpdateExpression="SET disconnected_reason = :r, disconnected_at = :t",
        ExpressionAttributeValues={":r": {"S": reason}, ":t": {"S": to_iso(datetime.now(UTC))}},
    )


# --- Google -----------------------------------------------------------------------------------


def test_a_google_calendar_connected_through_the_api_gets_bots_for_its_meetings(api, api_stack):
    owner = "gina@acme.test"
    token = api_stack.google_consent(primary=owner)
    soon = _start(3)
    api_stack.google.put_event(owner, meeting(soon, "gin-abot-now", owner))

    status, made = api.post("/v1/calendars", {"provider": "google", "user_id": "gina", "refresh_token": token})

    assert status == 201
    assert made["provider"] == "google" and made["status"] == "connected" and made["provider_calendar_id"] == "primary"
    assert token not in json.dumps(made)
    (channel,) = [c for c in api_stack.google.channels if c["calendar_id"] == owner]
    assert channel["address"].endswith("/calendar/google")
    cal = made["calendar_id"]
    assert sync_now(api_stack, cal) == [{"calendar_id": cal, "reason": "registered", "full": True}]
    dispatch_now(api_stack)
    stored = api_stack.container.repository.get_meeting(meeting_key("https://meet.google.com/gin-abot-now", soon))
    assert stored is not None and stored.bot_id, stored
    shown = api.get(f"/v1/calendars/{made['calendar_id']}")
    assert shown["last_synced_at"] and shown["last_error"] is None and shown["channel_expires_at"]

    # The same user, provider and calendar again finds the first registration.
    status, again = api.post("/v1/calendars", {"provider": "google", "user_id": "gina", "refresh_token": token})
    assert status == 200 and again["calendar_id"] == made["calendar_id"]
    assert len([c for c in api_stack.google.channels if c["calendar_id"] == owner]) == 1


def test_a_refresh_token_google_rotates_at_connection_is_the_one_stored(api, api_stack):
    owner = "rosa@acme.test"
    token = api_stack.google_consent(primary=owner)
    api_stack.google.rotate_refresh_tokens = True
    try:
        _, made = api.post("/v1/calendars", {"provider": "google", "user_id": "rosa", "refresh_token": token})
    finally:
        api_stack.google.rotate_refresh_tokens = False
    calendar = api_stack.container.repository.get_calendar(made["calendar_id"])
    current = api_stack.container.calendar_grants.refresh_token(calendar)
    assert current != token and current in api_stack.google.refresh_tokens(
        api_stack.oauth_clients[CalendarKind.GOOGLE].client_id
    )
    sync_now(api_stack)
    assert api.get(f"/v1/calendars/{made['calendar_id']}")["last_error"] is None


def test_a_refused_token_is_422_and_connects_nothing(api, api_stack):
    error = _error(
        lambda: api.post(
            "/v1/calendars", {"provider": "google", "user_id": "nina", "refresh_token": "1//0never-issued-token"}
        )
    )
    assert error.status == 422 and error.message.startswith("refresh_token: Google refused the refresh token")
    assert "1//0never-issued-token" not in error.message
    assert api.get("/v1/calendars", params={"user_id": "nina"})["items"] == []


def test_reconnecting_through_patch_clears_the_disconnection_and_queues_a_full_resync(api, api_stack):
    owner = "paula@acme.test"
    old = api_stack.google_consent(primary=owner)
    _, made = api.post("/v1/calendars", {"provider": "google", "user_id": "paula", "refresh_token": old})
    cal = made["calendar_id"]
    sync_now(api_stack)
    api_stack.google.revoke_refresh_token(old)
    disconnect(api_stack, cal, "Google refused the refresh token (invalid_grant); reconnect the calendar")
    shown = api.get(f"/v1/calendars/{cal}")
    assert shown["status"] == "disconnected" and "invalid_grant" in shown["disconnected_reason"]

    new = api_stack.google_consent(primary=owner)
    later = _start(120)
    api_stack.google.put_event(owner, meeting(later, "aft-erre-con", owner))
    patched = api.patch(f"/v1/calendars/{cal}", {"refresh_token": new})

    assert patched["status"] == "connected" and patched["disconnected_reason"] is None
    assert new not in json.dumps(patched)
    assert sync_now(api_stack, cal) == [{"calendar_id": cal, "reason": "reconnected", "full": True}]
    shown = api.get(f"/v1/calendars/{cal}")
    assert shown["last_error"] is None and shown["last_full_sync_at"] >= patched["last_synced_at"]
    assert api_stack.container.repository.get_meeting(meeting_key("https://meet.google.com/aft-erre-con", later))


def test_posting_a_new_token_reconnects_a_disconnected_calendar(api, api_stack):
    owner = "quinn@acme.test"
    old = api_stack.google_consent(primary=owner)
    _, made = api.post("/v1/calendars", {"provider": "google", "user_id": "quinn", "refresh_token": old})
    sync_now(api_stack)
    disconnect(api_stack, made["calendar_id"], "consent withdrawn")
    new = api_stack.google_consent(primary=owner)
    status, again = api.post("/v1/calendars", {"provider": "google", "user_id": "quinn", "refresh_token": new})
    assert status == 200 and again["calendar_id"] == made["calendar_id"] and again["status"] == "connected"
    assert [j["reason"] for j in sync_now(api_stack, made["calendar_id"])] == ["reconnected"]
    calendar = api_stack.container.repository.get_calendar(made["calendar_id"])
    assert api_stack.container.calendar_grants.refresh_token(calendar) == new


def test_posting_a_refused_token_for_a_connected_calendar_is_422_and_keeps_the_working_one(api, api_stack):
    owner = "vera@acme.test"
    good = api_stack.google_consent(primary=owner)
    _, made = api.post("/v1/calendars", {"provider": "google", "user_id": "vera", "refresh_token": good})
    stale = api_stack.google_consent(primary=owner)
    api_stack.google.revoke_refresh_token(stale)

    error = _error(lambda: api.post("/v1/calendars", {"provider": "google", "user_id": "vera", "refresh_token": stale}))

    assert error.status == 422 and error.message.startswith("refresh_token: Google refused the refresh token")
    calendar = api_stack.container.repository.get_calendar(made["calendar_id"])
    assert api_stack.container.calendar_grants.refresh_token(calendar) == good
    # The same working token again changes nothing: no second channel.
    status, again = api.post("/v1/calendars", {"provider": "google", "user_id": "vera", "refresh_token": good})
    assert status == 200 and again["status"] == "connected"
    assert len([c for c in api_stack.google.channels if c["calendar_id"] == owner and not c["stopped"]]) == 1


def test_reconnecting_a_google_calendar_with_a_refused_token_is_422_and_leaves_it_disconnected(api, api_stack):
    owner = "wren@acme.test"
    old = api_stack.google_consent(primary=owner)
    _, made = api.post("/v1/calendars", {"provider": "google", "user_id": "wren", "refresh_token": old})
    cal = made["calendar_id"]
    sync_now(api_stack)
    api_stack.google.revoke_refresh_token(old)
    disconnect(api_stack, cal, "Google refused the refresh token (invalid_grant); reconnect the calendar")
    refused = api_stack.google_consent(primary=owner)
    api_stack.google.revoke_refresh_token(refused)

    error = _error(lambda: api.patch(f"/v1/calendars/{cal}", {"refresh_token": refused}))

    assert error.status == 422 and error.message.startswith("refresh_token: Google refused the refresh token")
    shown = api.get(f"/v1/calendars/{cal}")
    assert shown["status"] == "disconnected" and "invalid_grant" in shown["disconnected_reason"]
    assert sync_now(api_stack, cal) == []  # no resync queued for a grant that does not work


def test_deleting_a_google_calendar_stops_its_channel_and_withdraws_only_its_own_bots(api, api_stack):
    ann, ben = "ann@acme.test", "ben@acme.test"
    shared, own = _start(150), _start(180)
    for owner in (ann, ben):
        api_stack.google.put_event(owner, meeting(shared, "sha-redm-eet", owner))
    api_stack.google.put_event(ann, meeting(own, "ann-sown-one", ann))
    ids = {}
    for user, owner in (("ann", ann), ("ben", ben)):
        token = api_stack.google_consent(primary=owner)
        ids[user] = api.post("/v1/calendars", {"provider": "google", "user_id": user, "refresh_token": token})[1][
            "calendar_id"
        ]
    sync_now(api_stack)
    repo = api_stack.container.repository
    shared_key = meeting_key("https://meet.google.com/sha-redm-eet", shared)
    own_key = meeting_key("https://meet.google.com/ann-sown-one", own)
    assert len(repo.get_meeting(shared_key).calendar_event_ids) == 2

    removed = api.delete(f"/v1/calendars/{ids['ann']}")

    assert removed["actions"]["channel_stopped"] == 1
    (channel,) = [c for c in api_stack.google.channels if c["calendar_id"] == ann]
    assert channel["stopped"] is True
    assert repo.get_meeting(own_key).desired is DesiredState.CANCELLED
    kept = repo.get_meeting(shared_key)
    assert kept.desired is DesiredState.RECORD and len(kept.calendar_event_ids) == 1
    assert _error(lambda: api.get(f"/v1/calendars/{ids['ann']}")).status == 404
    assert api.get(f"/v1/calendars/{ids['ben']}")["status"] == "connected"


# --- Microsoft (through the port) -------------------------------------------------------------


def test_a_microsoft_calendar_is_connected_reconnected_and_removed_through_its_subscription(api, api_stack, microsoft):
    token = "0.AAAA-microsoft-refresh-token-" + "x" * 40
    status, made = api.post(
        "/v1/calendars",
        {"provider": "microsoft", "user_id": "mia", "refresh_token": token, "owner_email": "Mia@Contoso.test"},
    )
    assert status == 201 and made["provider"] == "microsoft" and made["owner_email"] == "mia@contoso.test"
    assert token not in json.dumps(made)
    (first,) = microsoft.active()
    sub = microsoft.subscriptions[first]
    assert sub["notification_url"].endswith("/calendar/microsoft/notify") and len(sub["client_state"]) >= 32
    assert microsoft.refresh_tokens_seen == [token]  # the subscription was opened with the user's grant
    assert sync_now(api_stack, made["calendar_id"])[0]["full"] is True

    disconnect(api_stack, made["calendar_id"], "Microsoft refused the refresh token (AADSTS700082)")
    new = "0.AAAA-new-microsoft-refresh-token-" + "y" * 40
    patched = api.patch(f"/v1/calendars/{made['calendar_id']}", {"refresh_token": new})
    assert patched["status"] == "connected"
    (second,) = microsoft.active()
    assert second != first and microsoft.refresh_tokens_seen[-1] == new
    stored = api_stack.container.repository.get_calendar(made["calendar_id"])
    assert stored.channel_id == second and api_stack.container.repository.get_channel(first) is None

    removed = api.delete(f"/v1/calendars/{made['calendar_id']}")
    assert removed["actions"]["subscription_deleted"] == 1 and microsoft.active() == []


# --- changes and bad input --------------------------------------------------------------------


def test_patch_changes_the_label_and_owner_email(api):
    _, made = api.post(
        "/v1/calendars", {"provider": "ics", "feed_url": "http://127.0.0.1:9/lab.ics", "user_id": "lena"}
    )
    patched = api.patch(f"/v1/calendars/{made['calendar_id']}", {"label": "Work", "owner_email": "Lena@Acme.test"})
    assert patched["label"] == "Work" and patched["owner_email"] == "lena@acme.test"
    assert api.patch(f"/v1/calendars/{made['calendar_id']}", {"owner_email": ""})["owner_email"] is None
    ics_token = _error(lambda: api.patch(f"/v1/calendars/{made['calendar_id']}", {"refresh_token": "1//0x"}))
    assert ics_token.status == 422 and ics_token.message.startswith("refresh_token:")
    assert _error(lambda: api.patch("/v1/calendars/ics-nope", {"label": "x"})).status == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"provider": "google", "user_id": "u"}, "refresh_token: is required for provider google"),
        ({"provider": "microsoft", "user_id": "u"}, "refresh_token: is required for provider microsoft"),
        (
            {"provider": "google", "user_id": "u", "refresh_token": "1//0t", "feed_url": "https://x.test/a.ics"},
            "feed_url: not taken for provider google",
        ),
        ({"provider": "ics", "user_id": "u"}, "feed_url: is required for provider ics"),
        (
            {"provider": "ics", "user_id": "u", "feed_url": "https://x.test/a.ics", "refresh_token": "1//0t"},
            "refresh_token: not taken for provider ics",
        ),
        ({"provider": "outlook", "user_id": "u", "refresh_token": "1//0t"}, "provider: Input should be"),
        ({"user_id": "u", "refresh_token": "1//0t"}, "provider: is required"),
        ({"provider": "google", "refresh_token": "1//0t"}, "user_id: is required"),
        ({"provider": "google", "user_id": "u", "refresh_token": "1//0t", "token": "x"}, "token: Extra inputs"),
        ({"provider": "google", "user_id": "u", "refresh_token": "two words"}, "refresh_token: is not a refresh token"),
        (
            {"provider": "google", "user_id": "u", "refresh_token": "x" * 9000},
            "refresh_token: Value should have at most 8192",
        ),
    ],
)
def test_a_bad_calendar_body_is_422_naming_the_field(api, body, says):
    error = _error(lambda: api.post("/v1/calendars", body))
    assert error.status == 422 and says in error.message, error.message


def test_an_empty_patch_is_422(api):
    _, made = api.post(
        "/v1/calendars", {"provider": "ics", "feed_url": "http://127.0.0.1:9/empty.ics", "user_id": "emma"}
    )
    error = _error(lambda: api.patch(f"/v1/calendars/{made['calendar_id']}", {}))
    assert error.status == 422 and "give at least one of" in error.message


# --- no token anywhere ------------------------------------------------------------------------


@pytest.fixture
def captured(caplog, capsys):
    previous = powertools_logger.log_level
    powertools_logger.setLevel(logging.DEBUG)
    with captured_text(caplog, capsys) as text:
        yield text
    powertools_logger.setLevel(previous)


def test_no_refresh_token_shows_in_any_answer_log_or_error(api, api_stack, microsoft, captured):
    owner = "tess@acme.test"
    google_token = api_stack.google_consent(primary=owner)
    microsoft_token = "0.AAAA-secret-microsoft-grant-" + "z" * 30
    refused = "1//0refused-token-never-issued"
    answers: list[Any] = []
    answers.append(api.post("/v1/calendars", {"provider": "google", "user_id": "tess", "refresh_token": google_token}))
    answers.append(
        api.post("/v1/calendars", {"provider": "microsoft", "user_id": "tess", "refresh_token": microsoft_token})
    )
    google_id, microsoft_id = answers[0][1]["calendar_id"], answers[1][1]["calendar_id"]
    answers.append(api.post("/v1/calendars", {"provider": "google", "user_id": "tess", "refresh_token": google_token}))
    sync_now(api_stack)
    answers.append(api.get("/v1/calendars", params={"user_id": "tess"}))
    answers.append(api.get(f"/v1/calendars/{google_id}"))
    answers.append(api.patch(f"/v1/calendars/{google_id}", {"refresh_token": google_token, "label": "Tess"}))
    answers.append(api.patch(f"/v1/calendars/{microsoft_id}", {"refresh_token": microsoft_token}))
    for bad in (
        {"provider": "google", "user_id": "tess2", "refresh_token": refused},
        {"provider": "ics", "user_id": "tess", "feed_url": "https://x.test/a.ics", "refresh_token": google_token},
        {"provider": "google", "user_id": "tess", "refresh_token": google_token, "extra": google_token},
        {"provider": "google", "user_id": "tess", "refresh_token": google_token + " " + google_token},
    ):
        answers.append(_error(lambda bad=bad: api.post("/v1/calendars", bad)).message)
    answers.append(api.delete(f"/v1/calendars/{google_id}"))
    answers.append(api.delete(f"/v1/calendars/{microsoft_id}"))

    text = captured() + json.dumps(answers, default=str)
    assert "calendar connected" in text  # the capture sees our lines
    for secret in (google_token, microsoft_token, refused, "kms1:"):
        assert secret not in text, f"{secret[:12]}... leaked"
