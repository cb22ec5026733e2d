"""Google calendars on the local stack, against the fake Google Calendar over loopback: registration
and push channels, POST /calendar/google, incremental sync, 410 full resync, channel renewal, removal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from meetpilot.app.calendar_sync import converge_event, enqueue_due_syncs, sync_calendar
from meetpilot.app.calendars import GrantRegistration, connect_calendar, list_calendars, remove_calendar
from meetpilot.composition import Container
from meetpilot.domain.calendar import AccessRevoked, CalendarEvent, CalendarKind
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import DesiredState, meeting_key
from meetpilot.domain.status import Outcome
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from tests.support.calendar_helpers import connect_google, dispatch, grant_deps, live_bots, queued, schedules, sync

REFRESH_TOKEN = "1//0refresh-token-never-logged"
OWNER = "alice@acme.test"


@pytest.fixture
def gstack(stack_factory):
    stack = stack_factory(google_fake=True)
    client = stack.oauth_clients[CalendarKind.GOOGLE]
    stack.google.add_client(client.client_id, client.client_secret, REFRESH_TOKEN)
    stack.google.add_calendar(OWNER)
    return stack


def _start(minutes: int) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def meet(code: str) -> str:
    return f"https://meet.google.com/{code}"


def event(start: datetime, code: str, **fields) -> dict:
    return {
        "summary": fields.pop("summary", "Design review"),
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat(), "timeZone": "UTC"},
        "hangoutLink": meet(code),
        "attendees": [{"email": OWNER, "self": True, "responseStatus": "accepted"}],
        **fields,
    }


def register(stack, *, ttl_seconds: int = 7 * 86400, calendar: str = OWNER, user: str = "alice") -> str:
    return connect_google(stack, user, REFRESH_TOKEN, calendar=calendar, owner_email=OWNER, ttl_seconds=ttl_seconds)


def push(stack, headers: dict) -> httpx.Response:
    return httpx.post(f"{stack.gateway.url}/calendar/google", headers=headers, content=b"", timeout=10)


def channel_headers(channel: dict, state: str = "exists", **override) -> dict:
    headers = {
        "X-Goog-Channel-ID": channel["id"],
        "X-Goog-Channel-Token": channel["token"],
        "X-Goog-Resource-ID": channel["resourceId"],
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": "2",
    }
    headers.update(override)
    return {k: v for k, v in headers.items() if v is not None}


# --- registration -----------------------------------------------------------------------------


def test_registration_opens_a_push_channel_and_syncs_the_calendar(gstack):
    start = _start(60)
    gstack.google.put_event(OWNER, event(start, "abc-defg-hij"))
    cal = register(gstack)

    (channel,) = gstack.google.channels
    assert channel["address"] == f"{gstack.gateway.url}/calendar/google"
    calendar = gstack.container.repository.get_calendar(cal)
    assert calendar.channel_id == channel["id"] and calendar.sync_token and calendar.last_error is None
    stored = gstack.container.repository.get_channel(channel["id"])
    assert stored.token == channel["token"] and len(stored.token) >= 32
    assert gstack.container.repository.get_meeting(meeting_key(meet("abc-defg-hij"), start)) is not None

    # Registering the same calendar again changes nothing and opens no second channel.
    assert register(gstack) == cal
    assert len(gstack.google.channels) == 1
    assert [c.calendar_id for c in list_calendars(repo=gstack.container.repository)] == [cal]


def test_a_refused_refresh_token_is_refused_at_connection_and_nothing_is_stored(gstack):
    with pytest.raises(AccessRevoked, match="invalid_grant") as caught:
        connect_calendar(
            GrantRegistration(CalendarKind.GOOGLE, "alice", "1//0a-token-google-never-issued", OWNER),
            deps=grant_deps(gstack),
        )
    assert "1//0a-token-google-never-issued" not in str(caught.value)
    assert gstack.container.repository.list_calendars() == [] and gstack.google.channels == []
    assert queued(gstack) == 0


def test_the_refresh_token_is_stored_sealed_and_opens_only_through_the_grants(gstack):
    cal = register(gstack)
    calendar = gstack.container.repository.get_calendar(cal)
    assert calendar.sealed_refresh_token and REFRESH_TOKEN not in calendar.sealed_refresh_token
    assert REFRESH_TOKEN not in repr(calendar)
    assert gstack.container.calendar_grants.refresh_token(calendar) == REFRESH_TOKEN


# --- grants -----------------------------------------------------------------------------------


def test_a_refresh_token_google_rotates_is_stored_at_once_and_used_after_a_cold_start(gstack):
    cal = register(gstack)
    client_id = gstack.oauth_clients[CalendarKind.GOOGLE].client_id
    gstack.google.rotate_refresh_tokens = True
    start = _start(40)
    gstack.google.put_event(OWNER, event(start, "rot-atet-okn"))
    # A cold start: a new container has no access token, so the sync refreshes (and Google rotates).
    cold = Container(gstack.container.settings, clock=gstack.container.clock,
                     boto_session=gstack.boto_session, endpoint_url=gstack.aws_endpoint)  # fmt: skip
    c = gstack.container
    report = sync_calendar(
        cal, deps=c.calendar_sync_deps, ics=lambda: c.ics_feeds, google=lambda: cold.google_calendars
    )
    assert report.outcome == "synced"
    (current,) = gstack.google.refresh_tokens(client_id)
    assert current != REFRESH_TOKEN  # the old one stopped working at the rotation
    stored = c.repository.get_calendar(cal)
    assert cold.calendar_grants.refresh_token(stored) == current
    assert c.repository.get_meeting(meeting_key(meet("rot-atet-okn"), start)) is not None

    # Another cold start reads the rotated token from the table, and Google accepts it.
    gstack.google.rotate_refresh_tokens = False
    colder = Container(gstack.container.settings, clock=gstack.container.clock,
                       boto_session=gstack.boto_session, endpoint_url=gstack.aws_endpoint)  # fmt: skip
    gstack.google.put_event(OWNER, event(start + timedelta(hours=1), "aft-erro-tat"))
    again = sync_calendar(
        cal, deps=c.calendar_sync_deps, ics=lambda: c.ics_feeds, google=lambda: colder.google_calendars
    )
    assert again.outcome == "synced" and len(c.repository.list_calendar_links(cal)) == 2


def test_a_revoked_google_grant_raises_access_revoked(gstack):
    cal = register(gstack)
    gstack.google.revoke_refresh_token(REFRESH_TOKEN)
    gstack.google.expire_access_tokens()
    calendar = gstack.container.repository.get_calendar(cal)
    with pytest.raises(AccessRevoked, match="invalid_grant") as caught:
        gstack.container.google_calendars.sync(calendar, calendar.sync_token, time_min=datetime.now(UTC))
    assert not caught.value.retryable and REFRESH_TOKEN not in str(caught.value)


# --- the push endpoint ------------------------------------------------------------------------


def test_push_with_a_wrong_or_missing_token_is_401_and_queues_nothing(gstack):
    register(gstack)
    (channel,) = gstack.google.channels
    assert queued(gstack) == 0
    for headers in (
        channel_headers(channel, **{"X-Goog-Channel-Token": "guess"}),
        channel_headers(channel, **{"X-Goog-Channel-Token": channel["token"][:-1]}),
        channel_headers(channel, **{"X-Goog-Channel-Token": None}),
        channel_headers(channel, **{"X-Goog-Channel-ID": "someone-elses-channel"}),
        channel_headers(channel, **{"X-Goog-Channel-ID": None}),
        {},
    ):
        response = push(gstack, headers)
        assert response.status_code == 401, headers
        assert channel["token"] not in response.text
    assert queued(gstack) == 0

    assert push(gstack, channel_headers(channel, state="sync")).status_code == 200
    assert queued(gstack) == 0  # the channel-opened message is ignored

    assert push(gstack, channel_headers(channel)).status_code == 200
    assert queued(gstack) == 1


def test_a_change_pushed_by_google_reaches_the_meetings(gstack):
    cal = register(gstack)
    start = _start(90)
    gstack.google.put_event(OWNER, event(start, "new-meet-ing"))
    assert gstack.google.notify(OWNER) == [200]
    gstack.drain()
    key = meeting_key(meet("new-meet-ing"), start)
    (link,) = gstack.container.repository.list_calendar_links(cal)
    assert gstack.container.repository.get_meeting(key).calendar_event_ids == [link.calendar_event_id]

    gstack.google.cancel_event(OWNER, link.event_id)
    assert gstack.google.notify(OWNER) == [200]
    gstack.drain()
    assert gstack.container.repository.get_meeting(key).desired is DesiredState.CANCELLED
    assert schedules(gstack) == {}


# --- sync tokens ------------------------------------------------------------------------------


def test_a_410_triggers_a_full_resync_that_loses_nothing(gstack):
    fake = gstack.google
    start = _start(30)
    kept = fake.put_event(OWNER, event(start, "aaa-aaaa-aaa"))
    other = fake.put_event(OWNER, event(start + timedelta(hours=2), "bbb-bbbb-bbb"))
    doomed = fake.put_event(OWNER, event(start + timedelta(hours=3), "ccc-cccc-ccc"))
    cal = register(gstack)
    repo = gstack.container.repository
    first = dispatch(gstack, meeting_key(meet("aaa-aaaa-aaa"), start))
    token = repo.get_calendar(cal).sync_token

    fake.page_size = 2  # the full resync spans several pages
    fake.expire_sync_tokens(OWNER)
    fake.put_event(OWNER, {**other, "summary": "Design review (agenda)"})
    fake.cancel_event(OWNER, doomed["id"])
    codes = ["eae-eeee-eee", "ebe-eeee-eee", "ece-eeee-eee", "ede-eeee-eee"]
    added = [fake.put_event(OWNER, event(start + timedelta(hours=4 + i), code)) for i, code in enumerate(codes)]
    sync(gstack, cal)

    calendar = repo.get_calendar(cal)
    assert calendar.last_error is None and calendar.sync_token and calendar.sync_token != token
    links = {link.event_id for link in repo.list_calendar_links(cal)}
    assert links == {kept["id"], other["id"]} | {e["id"] for e in added}
    # The meetings that did not change keep their bot and their schedule.
    assert [b["bot_id"] for b in live_bots(gstack)] == [first.bot_id]
    assert gstack.session_for(meeting_key(meet("aaa-aaaa-aaa"), start)).outcome is None
    assert repo.get_meeting(meeting_key(meet("bbb-bbbb-bbb"), start + timedelta(hours=2))).desired is (
        DesiredState.RECORD
    )
    gone = repo.get_meeting(meeting_key(meet("ccc-cccc-ccc"), start + timedelta(hours=3)))
    assert gone.desired is DesiredState.CANCELLED
    assert gstack.simulator.create_calls == 1

    # And the next change is incremental again, from the new token.
    fake.put_event(OWNER, event(start + timedelta(hours=9), "fff-ffff-fff"))
    sync(gstack, cal)
    listed = [path for method, path in fake.requests if "/events?" in path]
    assert "syncToken=" in listed[-1]
    assert len(repo.list_calendar_links(cal)) == 7


def test_a_failing_google_keeps_the_sync_token_and_every_meeting(gstack):
    start = _start(45)
    gstack.google.put_event(OWNER, event(start, "aaa-aaaa-aaa"))
    cal = register(gstack)
    repo = gstack.container.repository
    token = repo.get_calendar(cal).sync_token
    gstack.google.fail_next(503)
    sync(gstack, cal)
    calendar = repo.get_calendar(cal)
    assert calendar.sync_token == token and "503" in calendar.last_error
    assert repo.get_meeting(meeting_key(meet("aaa-aaaa-aaa"), start)).desired is DesiredState.RECORD
    # A retryable failure fails the message: it comes back after the visibility timeout.
    assert gstack.feeders["CalendarSyncFunction"].failed_records == 1


def test_a_deleted_series_cancels_every_instance_of_it(gstack):
    start = _start(60)
    starts = [start + timedelta(days=i) for i in range(3)]
    gstack.google.put_series(OWNER, "weekly1", event(start, "ser-iess-abc"), starts)
    cal = register(gstack)
    repo = gstack.container.repository
    assert len(repo.list_calendar_links(cal)) == 3
    # Google may report a whole deleted series by the series id alone.
    gone = CalendarEvent(
        calendar_id=cal,
        event_id="weekly1",
        title="",
        start=None,
        end=None,
        all_day=False,
        cancelled=True,
        declined_by_owner=False,
        meeting_url=None,
        updated=None,
    )
    assert converge_event(gone, repo.get_calendar(cal), gstack.container.calendar_sync_deps) == "series_cancelled"
    assert repo.list_calendar_links(cal) == []
    for when in starts:
        assert repo.get_meeting(meeting_key(meet("ser-iess-abc"), when)).desired is DesiredState.CANCELLED


# --- channels ---------------------------------------------------------------------------------


def test_a_channel_due_to_expire_is_renewed_by_the_reconciler_and_the_old_one_stopped(gstack):
    cal = register(gstack, ttl_seconds=3600)  # expires within the renewal margin of a day
    (old,) = gstack.google.channels
    repo = gstack.container.repository

    result = load_handler("meetpilot.handlers.reconcile.handler")({}, LambdaContext("ReconcileFunction"))
    assert result["channel_renewed"] == 1

    assert len(gstack.google.channels) == 2
    new = gstack.google.channels[1]
    assert old["stopped"] is True and new["stopped"] is False
    assert new["address"] == old["address"] and new["token"] != old["token"]
    calendar = repo.get_calendar(cal)
    assert calendar.channel_id == new["id"]
    assert calendar.channel_expires_at > datetime.now(UTC) + timedelta(days=6)
    assert repo.get_channel(old["id"]) is None and repo.get_channel(new["id"]) is not None
    assert push(gstack, channel_headers(old)).status_code == 401
    assert push(gstack, channel_headers(new)).status_code == 200

    # Nothing is due any more: the next round renews nothing.
    again = load_handler("meetpilot.handlers.reconcile.handler")({}, LambdaContext("ReconcileFunction"))
    assert "channel_renewed" not in again and len(gstack.google.channels) == 2


def test_poller_queues_google_calendars_only_for_safety_and_daily_full_syncs(gstack):
    cal = register(gstack)
    c = gstack.container
    now = datetime.now(UTC)

    def jobs(at: datetime) -> list[dict]:
        sent = []

        class Capture:
            def send(self, body, *, delay_seconds=0):
                sent.append(dict(body))
                return "id"

        enqueue_due_syncs(repo=c.repository, queue=Capture(), clock=FixedClock(at))
        return sent

    assert jobs(now) == []
    assert jobs(now + timedelta(hours=2)) == [{"calendar_id": cal, "reason": "poll"}]
    assert jobs(now + timedelta(hours=25)) == [{"calendar_id": cal, "reason": "poll", "full": True}]


# --- removal ----------------------------------------------------------------------------------


def test_removing_a_google_calendar_stops_its_channel_and_withdraws_its_bots(gstack):
    start = _start(30)
    gstack.google.put_event(OWNER, event(start, "aaa-aaaa-aaa"))
    cal = register(gstack)
    key = meeting_key(meet("aaa-aaaa-aaa"), start)
    dispatch(gstack, key)
    c = gstack.container

    removal = remove_calendar(cal, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)

    assert removal.actions["channel_stopped"] == 1 and removal.actions["bot_cancelled"] == 1
    assert gstack.google.channels[0]["stopped"] is True
    assert c.repository.get_calendar(cal) is None and c.repository.list_calendar_links(cal) == []
    assert c.repository.get_meeting(key).desired is DesiredState.CANCELLED
    assert gstack.session_for(key).outcome is Outcome.CANCELLED
    assert live_bots(gstack) == []
    assert push(gstack, channel_headers(gstack.google.channels[0])).status_code == 401
