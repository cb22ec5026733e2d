"""The Graph adapter against the fake Graph over real HTTP: the refresh-token grant and its rotation,
refusals and retries, delta rounds (paging, empty pages, replays, bare occurrences, removals, 410),
subscriptions, the event mapping, and what its errors and HTTP log lines never say."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.adapters.microsoft_calendar import MicrosoftCalendarGateway, parse_graph_event
from meetpilot.domain.calendar import (
    AccessRevoked,
    Calendar,
    CalendarKind,
    CalendarSourceError,
    OAuthClient,
    PushChannel,
    SyncTokenExpired,
)
from meetpilot_dev.fakes.microsoft_graph import FakeMicrosoftGraph
from tests.support.microsoft import APP_ID, APP_SECRET, TENANT, MemoryGrants

OWNER = "ann@contoso.test"
NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(days=14))
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"


@pytest.fixture
def fake():
    with FakeMicrosoftGraph() as graph:
        graph.add_client(APP_ID, APP_SECRET, tenant=TENANT)
        graph.add_user(OWNER)
        yield graph


@pytest.fixture
def grants(fake):
    found = MemoryGrants({CalendarKind.MICROSOFT: OAuthClient(APP_ID, APP_SECRET, TENANT)})
    found.tokens["ms-1"] = fake.grant(APP_ID, OWNER)
    return found


@pytest.fixture
def calendar(grants):
    return Calendar(
        calendar_id="ms-1",
        kind=CalendarKind.MICROSOFT,
        user_id="ann",
        owner_email=OWNER,
        source_calendar_id="primary",
        sealed_refresh_token="sealed:1",
    )


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def gateway(fake, grants, sleeps):
    return MicrosoftCalendarGateway(
        grants, login_base=fake.login_base, graph_base=fake.graph_base, sleep=sleeps, page_size=2, timeout=5
    )


def teams_event(start: datetime, **fields) -> dict:
    return {
        "subject": "Design review",
        "start": start,
        "end": start + timedelta(minutes=30),
        "onlineMeeting": {"joinUrl": JOIN},
        **fields,
    }


def sync(gateway, calendar, link=None):
    return gateway.sync(calendar, link, window_start=WINDOW[0], window_end=WINDOW[1])


def _assert_no_secrets(text: str, fake: FakeMicrosoftGraph, grants: MemoryGrants) -> None:
    for secret in [APP_SECRET, *grants.tokens.values(), *fake.rotated_refresh_tokens, "eyJ0eXAi"]:
        assert secret not in text


# --- tokens -----------------------------------------------------------------------------------


def test_the_rotated_refresh_token_is_stored_at_once_and_the_access_token_reused(fake, grants, gateway, calendar):
    first = grants.tokens["ms-1"]
    sync(gateway, calendar)
    assert fake.token_requests == 1 and grants.rotations == ["ms-1"]
    assert grants.tokens["ms-1"] != first and grants.tokens["ms-1"] == fake.rotated_refresh_tokens[-1]
    assert fake.refresh_token_valid(first)  # the old one is not revoked by the rotation
    sync(gateway, calendar)
    assert fake.token_requests == 1  # cached until a few minutes before it expires

    fake.expire_access_tokens()  # a 401: one refresh, from the rotated token, then the call again
    sync(gateway, calendar)
    assert fake.token_requests == 2 and len(grants.rotations) == 2


def test_the_grant_asks_for_offline_access_and_calendars_read_at_the_tenant(fake, gateway, calendar):
    sync(gateway, calendar)
    assert ("POST", f"/login/{TENANT}/oauth2/v2.0/token") in fake.requests


@pytest.mark.parametrize(
    ("code", "meaning"),
    [(700082, "expired after inactivity"), (50173, "revoked"), (65001, "consent withdrawn"), (50076, "multi-factor")],
)
def test_a_refused_grant_is_access_revoked_with_a_one_line_reason(fake, grants, gateway, calendar, code, meaning):
    fake.revoke_grant(OWNER, code=code)
    with pytest.raises(AccessRevoked) as caught:
        sync(gateway, calendar)
    message = str(caught.value)
    assert f"AADSTS{code}: {meaning}" in message and "reconnect" in message and "\n" not in message
    assert not caught.value.retryable
    assert "Trace ID" not in message  # Entra's description is never copied
    _assert_no_secrets(message + repr(caught.value.__cause__) + repr(caught.value.__context__), fake, grants)


def test_a_bad_client_secret_is_an_operator_problem_not_a_disconnect(fake, grants, gateway, calendar):
    fake.expire_client_secret(APP_ID)
    with pytest.raises(CalendarSourceError) as caught:
        sync(gateway, calendar)
    assert not isinstance(caught.value, AccessRevoked) and not caught.value.retryable
    assert "AADSTS7000222" in str(caught.value) and "operator" in str(caught.value)
    _assert_no_secrets(str(caught.value), fake, grants)


def test_an_unavailable_token_endpoint_is_retryable_and_a_short_retry_after_is_waited_out(
    fake, grants, gateway, calendar, sleeps
):
    fake.fail_token_next(503, retry_after=1)
    sync(gateway, calendar)
    assert sleeps == [1.0] and fake.token_requests == 2

    fake.expire_access_tokens()
    fake.fail_token_next(429, retry_after=120)
    with pytest.raises(CalendarSourceError, match="retry in 120 s") as caught:
        sync(gateway, calendar)
    assert caught.value.retryable and not isinstance(caught.value, AccessRevoked)


def test_an_unreachable_token_endpoint_is_retryable(grants, calendar, fake):
    gateway = MicrosoftCalendarGateway(grants, login_base="http://127.0.0.1:9", graph_base=fake.graph_base)
    with pytest.raises(CalendarSourceError, match="token endpoint") as caught:
        sync(gateway, calendar)
    assert caught.value.retryable


# --- Graph's throttling -----------------------------------------------------------------------


def test_429_retry_after_is_honoured_in_process_when_short_and_raised_when_long(fake, gateway, calendar, sleeps):
    fake.put_event(OWNER, teams_event(NOW + timedelta(hours=1)))
    fake.fail_next(429, count=2, retry_after=2, code="ApplicationThrottled")
    result = sync(gateway, calendar)
    assert len(result.events) == 1 and sleeps == [2.0, 2.0]

    fake.fail_next(429, retry_after=600)
    with pytest.raises(CalendarSourceError, match="retry in 600 s") as caught:
        sync(gateway, calendar, result.delta_link)
    assert caught.value.retryable and caught.value.status == 429
    assert sleeps == [2.0, 2.0]  # a long wait is the queue's job, not the function's

    fake.fail_next(503)  # no Retry-After: retryable, no wait
    with pytest.raises(CalendarSourceError) as caught:
        sync(gateway, calendar, result.delta_link)
    assert caught.value.retryable and caught.value.status == 503


# --- delta rounds -----------------------------------------------------------------------------


def test_a_round_follows_every_page_with_one_prefer_header_and_stores_the_delta_link_last(fake, gateway, calendar):
    fake.empty_pages = True
    for hours in range(1, 6):
        fake.put_event(OWNER, teams_event(NOW + timedelta(hours=hours), subject=f"m{hours}"))
    result = sync(gateway, calendar)
    assert result.full and [e.title for e in result.events] == [f"m{h}" for h in range(1, 6)]
    assert "$deltatoken=" in result.delta_link and result.delta_link.startswith(fake.graph_base)
    pages = [p for m, p in fake.requests if "/calendarView/delta" in p]
    assert len(pages) == 5  # 2 + empty + 2 + empty + 1: an empty page still carries a nextLink
    assert all("$skiptoken=" in p for p in pages[1:])
    assert set(fake.prefer_headers) == {'outlook.timezone="UTC", odata.maxpagesize=2, IdType="ImmutableId"'}

    fake.put_event(OWNER, teams_event(NOW + timedelta(hours=7), subject="m7"))
    incremental = sync(gateway, calendar, result.delta_link)
    assert not incremental.full and [e.title for e in incremental.events] == ["m7"]


def test_replayed_items_leave_one_event_each(fake, gateway, calendar):
    fake.replay_items = True
    for hours in (1, 2, 3):
        fake.put_event(OWNER, teams_event(NOW + timedelta(hours=hours), subject=f"m{hours}"))
    result = sync(gateway, calendar)
    assert sorted(e.title for e in result.events) == ["m1", "m2", "m3"]


def test_bare_occurrences_are_filled_in_from_their_master_with_their_own_times(fake, gateway, calendar):
    starts = [NOW + timedelta(days=d, hours=2) for d in range(3)]
    master, occurrences = fake.put_series(OWNER, teams_event(starts[0], subject="Weekly"), starts)
    result = sync(gateway, calendar)
    assert [e.start for e in result.events] == starts
    assert {e.title for e in result.events} == {"Weekly"} and {e.meeting_url for e in result.events} == {JOIN}
    assert {e.recurring_event_id for e in result.events} == {master["id"]}
    masters = [p for m, p in fake.requests if "/me/events/" in p]
    assert len(masters) == 1  # one read of the master per round

    fake.delete_event(OWNER, occurrences[1]["id"])
    again = sync(gateway, calendar, result.delta_link)
    assert again.series_occurrences == {master["id"]: frozenset({occurrences[0]["id"], occurrences[2]["id"]})}


def test_an_occurrence_whose_series_is_gone_is_cancelled(fake, gateway, calendar):
    starts = [NOW + timedelta(hours=2)]
    master, (occurrence,) = fake.put_series(OWNER, teams_event(starts[0]), starts)
    first = sync(gateway, calendar)
    fake.put_event(OWNER, {"id": occurrence["id"], "start": starts[0] + timedelta(hours=1),
                           "end": starts[0] + timedelta(hours=2)})  # fmt: skip
    with fake._lock:  # the master vanishes between the occurrence's change and our read of it
        fake._mailbox(OWNER).events.pop(master["id"])
    (event,) = sync(gateway, calendar, first.delta_link).events
    assert event.event_id == occurrence["id"] and event.cancelled


def test_removals_are_cancellations_by_id_in_incremental_rounds_only(fake, gateway, calendar):
    inside = fake.put_event(OWNER, teams_event(NOW + timedelta(hours=1)))
    outside = fake.put_event(OWNER, teams_event(NOW + timedelta(days=40)))
    first = sync(gateway, calendar)
    assert [e.event_id for e in first.events] == [inside["id"]]
    fake.delete_event(OWNER, inside["id"])
    fake.put_event(OWNER, {**outside, "subject": "moved"})  # changed outside the window: @removed too
    events = sync(gateway, calendar, first.delta_link).events
    assert {e.event_id for e in events} == {inside["id"], outside["id"]}
    assert all(e.cancelled and e.start is None for e in events)


def test_a_forgotten_delta_link_is_sync_token_expired(fake, gateway, calendar):
    first = sync(gateway, calendar)
    fake.expire_delta_links(OWNER)
    with pytest.raises(SyncTokenExpired, match="full sync"):
        sync(gateway, calendar, first.delta_link)


def test_a_paging_link_to_another_host_is_not_followed(gateway, calendar):
    with pytest.raises(CalendarSourceError, match="another host"):
        sync(gateway, calendar, "https://attacker.example/v1.0/me/calendarView/delta?$deltatoken=x")


# --- subscriptions ----------------------------------------------------------------------------


def test_a_subscription_whose_urls_fail_validation_is_refused(fake, gateway, calendar):
    # The fake validates the URL first: a receiver that answers nothing refuses the subscription.
    with pytest.raises(CalendarSourceError, match=r"ValidationError|InvalidRequest"):
        gateway.subscribe(
            calendar,
            client_state="s" * 40,
            notification_url="http://127.0.0.1:9/notify",
            lifecycle_url="http://127.0.0.1:9/lifecycle",
            expires_at=NOW + timedelta(days=30),
        )
    assert fake.subscriptions == {}


def test_renewing_an_unknown_subscription_is_404_and_deleting_one_is_fine(fake, gateway, calendar):
    ghost = PushChannel("no-such-sub", "ms-1", "me/events", NOW + timedelta(days=1), token="x" * 40)
    with pytest.raises(CalendarSourceError) as caught:
        gateway.renew(calendar, ghost, expires_at=NOW + timedelta(days=2))
    assert caught.value.status == 404
    gateway.unsubscribe(calendar, ghost)  # no error


# --- mapping ----------------------------------------------------------------------------------


def test_an_event_maps_times_people_links_and_answers():
    item = {
        "id": "AAMk1",
        "subject": " Quarterly ",
        "start": {"dateTime": "2026-10-02T15:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-10-02T17:30:00.0000000", "timeZone": "Europe/Berlin"},
        "isOrganizer": False,
        "responseStatus": {"response": "tentativelyAccepted"},
        "organizer": {"emailAddress": {"address": "Carol@Fabrikam.test"}},
        "attendees": [
            {"type": "required", "emailAddress": {"address": "ANN@contoso.test"}},
            {"type": "resource", "emailAddress": {"address": "room-4@contoso.test"}},
            {"type": "optional", "emailAddress": {"address": "carol@fabrikam.test"}},
        ],
        "location": {"displayName": "https://acme.zoom.us/j/85551234567?pwd=abc"},
        "body": {"contentType": "html", "content": '<a href="https://meet.google.com/abc-defg-hij">join</a>'},
    }
    event = parse_graph_event(item, calendar_id="ms-1", owner_email=OWNER)
    assert event.title == "Quarterly"
    assert event.start == datetime(2026, 10, 2, 15, tzinfo=UTC) and event.end == datetime(
        2026, 10, 2, 15, 30, tzinfo=UTC
    )
    assert event.attendees == ("carol@fabrikam.test", "ann@contoso.test")
    assert event.meeting_url == "https://acme.zoom.us/j/85551234567?pwd=abc"  # location before body
    assert event.owner_response == "tentative" and event.organized_by_owner is False
    assert not event.cancelled and not event.declined_by_owner

    assert (
        parse_graph_event({**item, "onlineMeeting": {"joinUrl": JOIN}}, calendar_id="c", owner_email=None).meeting_url
        == JOIN
    )
    no_location = {**item, "location": {"displayName": "Room 4"}}
    assert parse_graph_event(no_location, calendar_id="c", owner_email=None).meeting_url == (
        "https://meet.google.com/abc-defg-hij"
    )
    declined = parse_graph_event(
        {**item, "responseStatus": {"response": "declined"}}, calendar_id="c", owner_email=None
    )
    assert declined.declined_by_owner and not declined.wants_bot
    cancelled = parse_graph_event({**item, "isCancelled": True}, calendar_id="c", owner_email=None)
    assert cancelled.cancelled and not cancelled.wants_bot
    organised = parse_graph_event(
        {**item, "responseStatus": {"response": "organizer"}}, calendar_id="c", owner_email=None
    )
    assert organised.organized_by_owner is True and organised.owner_response == "accepted"
    all_day = parse_graph_event({**item, "isAllDay": True}, calendar_id="c", owner_email=None)
    assert all_day.all_day and all_day.start is None


# --- logs -------------------------------------------------------------------------------------


def test_request_lines_name_no_event_subscription_or_delta_token(fake, gateway, calendar, caplog):
    caplog.set_level(logging.DEBUG)
    starts = [NOW + timedelta(hours=2), NOW + timedelta(hours=3), NOW + timedelta(hours=4)]
    master, _ = fake.put_series(OWNER, teams_event(starts[0]), starts)
    first = sync(gateway, calendar)
    sync(gateway, calendar, first.delta_link)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/calendarView/delta?..." in line for line in lines) and any("/me/events/-" in line for line in lines)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("meetpilot_dev"))
    token = first.delta_link.split("$deltatoken=")[1]
    for secret in (token, "$skiptoken", master["id"], "startDateTime", *fake.rotated_refresh_tokens, APP_SECRET):
        assert secret not in text
