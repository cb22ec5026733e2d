"""Contract tests for the calendar side of Storage, on moto and on DynamoDB Local.

Calendars, event links and push channels; detaching events from meetings, cancelling a meeting only
when nothing wants it, reviving it with a clean dispatch slate; the sync lease.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.ports import ClaimUnavailable, Storage
from meetpilot.domain.calendar import Calendar, CalendarFilters, CalendarKind, CalendarLink, PushChannel
from meetpilot.domain.meeting import DesiredState, DispatchState, Meeting
from tests.support.dynamodb_backends import (  # noqa: F401 - fixtures used by name
    StorageBackend,
    dynamodb_local,
    moto_server,
    storage_backend,
)

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
URL = "https://zoom.us/j/123456789?pwd=abc"
SECRET_FEED = "https://calendar.example.test/ical/alice/private-0123456789abcdef/basic.ics"


@pytest.fixture
def repo(storage_backend: StorageBackend) -> Storage:  # noqa: F811 - the fixture, by name
    return storage_backend.repo


def _calendar(calendar_id: str = "ics-1", **fields) -> Calendar:
    values = {"kind": CalendarKind.ICS, "user_id": "alice", "feed_url": SECRET_FEED, **fields}
    return Calendar(calendar_id=calendar_id, **values)


def _meeting_with(repo: Storage, *events: str, adhoc: bool = False) -> Meeting:
    stored = None
    for event in events or (None,):
        stored, _ = repo.add_meeting(
            Meeting.new(URL, T0 + timedelta(hours=2), user_id="alice", calendar_event_id=event, adhoc=adhoc), T0
        )
    assert stored is not None
    return stored


# --- calendars --------------------------------------------------------------------------------


def test_calendar_round_trip_listing_and_duplicate_registration(repo: Storage) -> None:
    filters = CalendarFilters(
        external_only=True, min_attendees=3, opt_out_word="[skip]", internal_domains=("Acme.test",)
    )
    assert repo.put_calendar(_calendar(owner_email="alice@acme.test", filters=filters, label="Work"), T0)
    assert not repo.put_calendar(_calendar(label="again"), T0)
    assert repo.put_calendar(_calendar("google-1", kind=CalendarKind.GOOGLE, feed_url=None, user_id="bob"), T0)

    stored = repo.get_calendar("ics-1")
    assert stored.filters == filters and stored.filters.internal_domains == ("acme.test",)
    assert (stored.label, stored.owner_email, stored.feed_url, stored.created_at) == (
        "Work",
        "alice@acme.test",
        SECRET_FEED,
        T0,
    )
    assert SECRET_FEED not in repr(stored)
    assert sorted(c.calendar_id for c in repo.list_calendars()) == ["google-1", "ics-1"]
    repo.delete_calendar("google-1")
    assert [c.calendar_id for c in repo.list_calendars()] == ["ics-1"]


def test_sync_lease_is_exclusive_until_it_expires_or_is_released(repo: Storage) -> None:
    repo.put_calendar(_calendar(), T0)
    repo.claim_calendar_sync("ics-1", now=T0, lease_seconds=120)
    with pytest.raises(ClaimUnavailable) as busy:
        repo.claim_calendar_sync("ics-1", now=T0 + timedelta(seconds=30), lease_seconds=120)
    assert busy.value.state == "busy" and busy.value.retry_in_seconds == 90
    repo.claim_calendar_sync("ics-1", now=T0 + timedelta(seconds=121), lease_seconds=120)  # expired: taken over
    repo.release_calendar_sync("ics-1")
    repo.claim_calendar_sync("ics-1", now=T0 + timedelta(seconds=122), lease_seconds=120)
    with pytest.raises(ClaimUnavailable) as missing:
        repo.claim_calendar_sync("nope", now=T0, lease_seconds=120)
    assert missing.value.state == "missing"


def test_a_calendar_being_removed_is_claimed_only_by_its_removal(repo: Storage) -> None:
    repo.put_calendar(_calendar(), T0)
    assert repo.mark_calendar_removing("ics-1")
    with pytest.raises(ClaimUnavailable) as refused:
        repo.claim_calendar_sync("ics-1", now=T0, lease_seconds=60)
    assert refused.value.state == "removing"
    assert repo.claim_calendar_sync("ics-1", now=T0, lease_seconds=60, removal=True).removing


def test_sync_results_and_errors_keep_the_last_good_cursor(repo: Storage) -> None:
    repo.put_calendar(_calendar(), T0)
    repo.claim_calendar_sync("ics-1", now=T0, lease_seconds=60)
    repo.record_calendar_sync("ics-1", now=T0, full=True, etag='"v1"')
    stored = repo.get_calendar("ics-1")
    assert (stored.etag, stored.last_synced_at, stored.last_full_sync_at, stored.sync_lease_until) == (
        '"v1"',
        T0,
        T0,
        None,
    )
    later = T0 + timedelta(minutes=10)
    repo.claim_calendar_sync("ics-1", now=later, lease_seconds=60)
    repo.record_calendar_error("ics-1", now=later, message="ICS feed https://calendar.example.test/… answered 503")
    stored = repo.get_calendar("ics-1")
    assert stored.etag == '"v1"' and stored.last_error.endswith("503") and stored.last_error_at == later
    assert stored.sync_lease_until is None
    repo.record_calendar_sync("ics-1", now=later, full=False, etag='"v1"')
    stored = repo.get_calendar("ics-1")
    assert stored.last_error is None and stored.last_full_sync_at == T0 and stored.last_synced_at == later


def test_google_sync_token_is_stored_and_dropped(repo: Storage) -> None:
    repo.put_calendar(_calendar("google-1", kind=CalendarKind.GOOGLE, feed_url=None), T0)
    repo.record_calendar_sync("google-1", now=T0, full=True, sync_token="tok-1")
    assert repo.get_calendar("google-1").sync_token == "tok-1"
    repo.drop_sync_token("google-1")
    assert repo.get_calendar("google-1").sync_token is None
    repo.record_calendar_sync("google-1", now=T0, full=False, sync_token="tok-2")
    repo.record_calendar_error("google-1", now=T0, message="410", drop_sync_token=True)
    assert repo.get_calendar("google-1").sync_token is None


def test_a_calendar_is_disconnected_once_with_its_reason_and_its_lease_released(repo: Storage) -> None:
    repo.put_calendar(_calendar("ms-1", kind=CalendarKind.MICROSOFT, feed_url=None), T0)
    assert repo.get_calendar("ms-1").connected
    repo.claim_calendar_sync("ms-1", now=T0, lease_seconds=120)
    reason = "Microsoft refused the refresh token (AADSTS50173: revoked); reconnect the calendar"
    assert repo.mark_calendar_disconnected("ms-1", reason=reason, now=T0)
    calendar = repo.get_calendar("ms-1")
    assert not calendar.connected and calendar.status == "disconnected"
    assert calendar.disconnected_reason == reason == calendar.last_error and calendar.disconnected_at == T0
    assert calendar.sync_lease_until is None
    repo.claim_calendar_sync("ms-1", now=T0, lease_seconds=120)  # the lease was released
    assert not repo.mark_calendar_disconnected("ms-1", reason="again", now=T0 + timedelta(hours=1))
    again = repo.get_calendar("ms-1")
    assert again.disconnected_reason == reason and again.disconnected_at == T0 and again.sync_lease_until is None
    assert not repo.mark_calendar_disconnected("no-such-calendar", reason=reason, now=T0)


# --- channels ---------------------------------------------------------------------------------


def test_channels_are_found_by_id_and_swapped_only_from_the_expected_one(repo: Storage) -> None:
    repo.put_calendar(_calendar("google-1", kind=CalendarKind.GOOGLE, feed_url=None), T0)
    first = PushChannel("ch-1", "google-1", "res-1", T0 + timedelta(days=7), token="tok-" + "a" * 40)
    second = PushChannel("ch-2", "google-1", "res-2", T0 + timedelta(days=14), token="tok-" + "b" * 40)
    repo.put_channel(first)
    assert repo.get_channel("ch-1") == first and repo.get_channel("ch-9") is None
    assert "tok-" not in repr(first)
    assert repo.set_calendar_channel("google-1", first, expect_channel_id=None)
    assert not repo.set_calendar_channel("google-1", second, expect_channel_id=None)  # it has one already
    assert not repo.set_calendar_channel("google-1", second, expect_channel_id="ch-0")
    assert repo.set_calendar_channel("google-1", second, expect_channel_id="ch-1")
    stored = repo.get_calendar("google-1")
    assert (stored.channel_id, stored.channel_expires_at) == ("ch-2", T0 + timedelta(days=14))
    repo.delete_channel("ch-1")
    assert repo.get_channel("ch-1") is None
    repo.mark_calendar_removing("google-1")
    assert not repo.set_calendar_channel("google-1", first, expect_channel_id="ch-2")


# --- links ------------------------------------------------------------------------------------


def test_event_links_are_listed_per_calendar_and_indexed_by_calendar_event(repo: Storage) -> None:
    links = [
        CalendarLink("cal-a", "ev-1", "key-1", T0, T0 + timedelta(minutes=30)),
        CalendarLink("cal-a", "ev-2", "key-2", T0, None, recurring_event_id="series"),
        CalendarLink("cal-b", "ev-1", "key-3", T0, None),
    ]
    for link in links:
        repo.put_calendar_link(link, T0)
    assert repo.get_calendar_link("cal-a", "ev-2") == links[1]
    assert sorted(repo.list_calendar_links("cal-a"), key=lambda link: link.event_id) == links[:2]
    assert repo.meeting_for_calendar_event("cal-b", "ev-1") == "key-3"
    repo.delete_calendar_link("cal-a", "ev-1")
    assert repo.get_calendar_link("cal-a", "ev-1") is None
    assert [link.event_id for link in repo.list_calendar_links("cal-a")] == ["ev-2"]


# --- meetings ---------------------------------------------------------------------------------


def test_detaching_the_last_event_lets_the_meeting_be_cancelled(repo: Storage) -> None:
    meeting = _meeting_with(repo, "cal-a#1", "cal-b#1")
    assert repo.cancel_meeting(meeting.meeting_key) is None  # two events still want it
    after = repo.detach_calendar_event(meeting.meeting_key, "cal-a#1")
    assert after.calendar_event_ids == ["cal-b#1"]
    assert repo.cancel_meeting(meeting.meeting_key) is None
    assert repo.detach_calendar_event(meeting.meeting_key, "cal-b#1").calendar_event_ids == []
    assert repo.detach_calendar_event(meeting.meeting_key, "cal-b#1").calendar_event_ids == []  # idempotent
    old = repo.cancel_meeting(meeting.meeting_key)
    assert old is not None and old.desired is DesiredState.RECORD
    assert repo.get_meeting(meeting.meeting_key).desired is DesiredState.CANCELLED
    assert repo.cancel_meeting(meeting.meeting_key) is not None  # repeatable, to finish an interrupted cancel
    assert repo.detach_calendar_event("no-such-meeting", "x") is None


def test_a_meeting_asked_for_directly_is_never_cancelled_by_its_calendars(repo: Storage) -> None:
    meeting = _meeting_with(repo, "cal-a#1")
    repo.add_meeting(Meeting.new(URL, meeting.start, user_id="bob", adhoc=True), T0)
    repo.detach_calendar_event(meeting.meeting_key, "cal-a#1")
    assert repo.cancel_meeting(meeting.meeting_key) is None
    assert repo.get_meeting(meeting.meeting_key).adhoc is True


def test_cancelled_meeting_is_revived_with_a_clean_dispatch_slate(repo: Storage) -> None:
    meeting = _meeting_with(repo, "cal-a#1")
    key = meeting.meeting_key
    repo.claim_meeting(key, now=T0, lease_seconds=60, session_id="sess-1", idempotency_key="idem-1")
    repo.finish_dispatch(key, state=DispatchState.DISPATCHED, bot_id="bot-1", session_id="sess-1")
    assert repo.revive_meeting(key) is None  # not cancelled
    repo.detach_calendar_event(key, "cal-a#1")
    repo.cancel_meeting(key)
    assert repo.revive_meeting(key) is None  # nothing wants it yet

    repo.add_meeting(Meeting.new(URL, meeting.start, calendar_event_id="cal-a#2"), T0)
    revived = repo.revive_meeting(key)
    assert revived.desired is DesiredState.RECORD and revived.dispatch_state is DispatchState.PENDING
    assert (revived.session_id, revived.idempotency_key, revived.bot_id, revived.schedule_name) == (None,) * 4
    assert revived.revision == 1 and revived.deduplication_key == f"{key}|r1"
    claimed = repo.claim_meeting(key, now=T0, lease_seconds=60, session_id="sess-2", idempotency_key="idem-2")
    assert (claimed.session_id, claimed.idempotency_key) == ("sess-2", "idem-2")


def test_finish_dispatch_for_a_session_the_meeting_no_longer_has_is_refused(repo: Storage) -> None:
    key = _meeting_with(repo, "cal-a#1").meeting_key
    repo.claim_meeting(key, now=T0, lease_seconds=60, session_id="sess-1", idempotency_key="idem-1")
    assert not repo.finish_dispatch(key, state=DispatchState.DISPATCHED, bot_id="bot-x", session_id="sess-0")
    assert repo.get_meeting(key).dispatch_state is DispatchState.CLAIMED
    assert repo.finish_dispatch(key, state=DispatchState.DISPATCHED, bot_id="bot-1", session_id="sess-1")
    assert repo.get_meeting(key).bot_id == "bot-1"


def test_a_rotated_token_replaces_only_the_seal_it_was_rotated_from(repo):
    repo.put_calendar(_calendar("google-1", kind=CalendarKind.GOOGLE, feed_url=None, sealed_refresh_token="kms1:a"), T0)
    assert repo.store_refresh_token("google-1", "kms1:b", expect_sealed="kms1:a")
    assert not repo.store_refresh_token("google-1", "kms1:c", expect_sealed="kms1:a")  # a newer one is stored
    assert repo.get_calendar("google-1").sealed_refresh_token == "kms1:b"
    assert not repo.store_refresh_token("google-gone", "kms1:x", expect_sealed="kms1:a")


def test_a_reconnect_stores_the_grant_and_clears_the_disconnection_error_and_sync_token(repo):
    repo.put_calendar(
        _calendar(
            "google-2",
            kind=CalendarKind.GOOGLE,
            feed_url=None,
            sealed_refresh_token="kms1:old",
            sync_token="sync-1",
            disconnected_reason="Google refused the refresh token (invalid_grant)",
            disconnected_at=T0,
            last_error="refused",
            last_error_at=T0,
        ),
        T0,
    )
    assert repo.get_calendar("google-2").status == "disconnected"
    assert repo.reconnect_calendar("google-2", "kms1:new")
    back = repo.get_calendar("google-2")
    assert (back.sealed_refresh_token, back.status, back.disconnected_at) == ("kms1:new", "connected", None)
    assert back.last_error is None and back.sync_token is None
    repo.mark_calendar_removing("google-2")
    assert not repo.reconnect_calendar("google-2", "kms1:newer")
    assert not repo.reconnect_calendar("google-gone", "kms1:x")


def test_label_and_owner_email_change_alone(repo):
    repo.put_calendar(_calendar("ics-9", label="Old", owner_email="a@x.test"), T0)
    assert repo.update_calendar_details("ics-9", label="New")
    assert (repo.get_calendar("ics-9").label, repo.get_calendar("ics-9").owner_email) == ("New", "a@x.test")
    assert repo.update_calendar_details("ics-9", owner_email="")
    assert repo.get_calendar("ics-9").owner_email is None and repo.get_calendar("ics-9").label == "New"
    assert not repo.update_calendar_details("ics-gone", label="x")
