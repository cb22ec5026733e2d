"""Microsoft 365 calendars on the local stack, against the fake Graph over loopback: subscription and
validation handshake through the gateway, notifications and lifecycle events, delta rounds and the
410 resync, series, cancellations and declines, renewal, and a grant that stops working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from meetpilot.app.calendar_sync import CalendarSyncConfig, enqueue_due_syncs
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import DesiredState, meeting_key
from meetpilot.domain.notifications import CALENDAR_DISCONNECTED
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from tests.support.calendar_helpers import dispatch, live_bots, queued, schedules, sync
from tests.support.event_schemas import validate
from tests.support.microsoft import connect_microsoft, graph_stack

OWNER = "ann@contoso.test"
# Subscriptions that expire within the reconciler's renewal margin (a day).
SHORT_LIVED = CalendarSyncConfig(subscription_lifetime=timedelta(hours=2))


@pytest.fixture
def mstack(stack_factory):
    stack = stack_factory(microsoft_fake=True)
    stack.grants = graph_stack(stack)
    return stack


def _start(minutes: int) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def teams(code: str) -> str:
    return f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{code}%40thread.v2/0"


def event(start: datetime, code: str, **fields) -> dict:
    return {
        "subject": fields.pop("subject", "Design review"),
        "start": start,
        "end": start + timedelta(minutes=30),
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "onlineMeeting": {"joinUrl": teams(code)},
        "attendees": [
            {"type": "required", "status": {"response": "none"}, "emailAddress": {"address": "bob@fabrikam.test"}}
        ],
        **fields,
    }


def key(code: str, start: datetime) -> str:
    return meeting_key(teams(code), start)


def reconcile() -> dict:
    return load_handler("meetpilot.handlers.reconcile.handler")({}, LambdaContext("ReconcileFunction"))


# --- subscription and the notify endpoint -----------------------------------------------------


def test_connecting_subscribes_after_the_handshake_and_a_synced_calendar_gets_bots(mstack):
    start = _start(60)
    mstack.graph.add_user(OWNER)
    mstack.graph.put_event(OWNER, event(start, "aaa"))
    cal = connect_microsoft(mstack, mstack.grants, OWNER)

    (sub,) = mstack.graph.subscriptions.values()
    base = mstack.gateway.url
    assert sub["notificationUrl"] == f"{base}/calendar/microsoft/notify"
    assert sub["lifecycleNotificationUrl"] == f"{base}/calendar/microsoft/lifecycle"
    assert sub["resource"] == "me/events" and sub["changeType"] == "created,updated,deleted"
    # Graph validated both URLs through the gateway and got its decoded token back as text.
    assert {v["url"] for v in mstack.graph.validations} == {sub["notificationUrl"], sub["lifecycleNotificationUrl"]}
    for validation in mstack.graph.validations:
        assert validation["status"] == 200 and validation["answer"] == validation["token"]
        assert validation["content_type"].startswith("text/plain")
    repo = mstack.container.repository
    calendar = repo.get_calendar(cal)
    assert calendar.channel_id == sub["id"] and calendar.sync_token and calendar.last_error is None
    assert repo.get_channel(sub["id"]).token == sub["clientState"] and len(sub["clientState"]) >= 32
    session = dispatch(mstack, key("aaa", start))
    assert session is not None and len(live_bots(mstack)) == 1

    # A change notified by Graph reaches the meetings through POST /calendar/microsoft/notify.
    later = _start(120)
    mstack.graph.put_event(OWNER, event(later, "bbb"))
    assert mstack.graph.deliver(OWNER) == [202]
    assert queued(mstack) == 1  # created + updated in one batch: one sync
    mstack.drain()
    assert repo.get_meeting(key("bbb", later)).desired is DesiredState.RECORD


def test_the_validation_handshake_answers_the_decoded_token_as_text(mstack):
    token = "Validation: Testing client application reachability for subscription Request-Id: 5f1a+b&c=d"
    for path in ("notify", "lifecycle"):
        response = httpx.post(
            f"{mstack.gateway.url}/calendar/microsoft/{path}?validationToken={quote(token, safe='')}",
            content=b"",
            headers={"Content-Type": "text/plain"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.text == token
        assert response.headers["content-type"].startswith("text/plain")
    assert queued(mstack) == 0


def test_a_wrong_client_state_queues_nothing(mstack):
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    (sub,) = mstack.graph.subscriptions.values()
    mstack.graph.wrong_client_state = True
    mstack.graph.put_event(OWNER, event(_start(60), "ccc"))
    assert mstack.graph.deliver(OWNER) == [202]
    assert queued(mstack) == 0

    url = f"{mstack.gateway.url}/calendar/microsoft/notify"
    forged = [
        {"subscriptionId": sub["id"], "clientState": sub["clientState"][:-1], "changeType": "updated"},
        {"subscriptionId": "someone-elses", "clientState": sub["clientState"], "changeType": "updated"},
        {"subscriptionId": sub["id"], "changeType": "updated"},
    ]
    response = httpx.post(url, json={"value": forged}, timeout=10)
    assert response.status_code == 202 and sub["clientState"] not in response.text
    assert queued(mstack) == 0
    assert httpx.post(url, content=b"not json", timeout=10).status_code == 400

    mstack.graph.wrong_client_state = False
    good = {"subscriptionId": sub["id"], "clientState": sub["clientState"], "changeType": "updated"}
    assert httpx.post(url, json={"value": [good, good]}, timeout=10).status_code == 202
    assert queued(mstack) == 1
    mstack.drain()
    assert len(mstack.container.repository.list_calendar_links(cal)) == 1


# --- delta rounds -----------------------------------------------------------------------------


def test_a_graph_410_resync_loses_nothing(mstack):
    fake = mstack.graph
    fake.add_user(OWNER)
    start = _start(30)
    kept = fake.put_event(OWNER, event(start, "k1"))
    other = fake.put_event(OWNER, event(start + timedelta(hours=2), "k2"))
    doomed = fake.put_event(OWNER, event(start + timedelta(hours=3), "k3"))
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    repo = mstack.container.repository
    first = dispatch(mstack, key("k1", start))
    link = repo.get_calendar(cal).sync_token

    fake.default_page_size = 2
    fake.expire_delta_links(OWNER)
    fake.put_event(OWNER, {**other, "subject": "Design review (agenda)"})
    fake.delete_event(OWNER, doomed["id"])
    added = [fake.put_event(OWNER, event(start + timedelta(hours=4 + i), f"n{i}")) for i in range(4)]
    sync(mstack, cal)

    calendar = repo.get_calendar(cal)
    assert calendar.last_error is None and calendar.sync_token and calendar.sync_token != link
    assert {x.event_id for x in repo.list_calendar_links(cal)} == {kept["id"], other["id"]} | {e["id"] for e in added}
    assert [b["bot_id"] for b in live_bots(mstack)] == [first.bot_id]
    assert mstack.session_for(key("k1", start)).outcome is None
    assert repo.get_meeting(key("k3", start + timedelta(hours=3))).desired is DesiredState.CANCELLED
    assert mstack.simulator.create_calls == 1
    gone = [p for m, p in fake.requests if "$deltatoken" in p]
    assert gone, "the stored delta link was followed first"

    # The next change is incremental again, from the new link.
    fake.put_event(OWNER, event(start + timedelta(hours=9), "n9"))
    sync(mstack, cal)
    delta_calls = [p for m, p in fake.requests if "/calendarView/delta" in p]
    assert "$deltatoken=" in delta_calls[-1]
    assert len(repo.list_calendar_links(cal)) == 7


def test_a_failing_graph_keeps_the_delta_link_and_every_meeting(mstack):
    start = _start(45)
    mstack.graph.add_user(OWNER)
    mstack.graph.put_event(OWNER, event(start, "f1"))
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    repo = mstack.container.repository
    link = repo.get_calendar(cal).sync_token
    mstack.graph.fail_next(503, count=3, retry_after=30)  # longer than we wait in-process
    sync(mstack, cal)
    calendar = repo.get_calendar(cal)
    assert calendar.sync_token == link and "503" in calendar.last_error and "retry in 30 s" in calendar.last_error
    assert calendar.connected  # a transient failure never disconnects
    assert repo.get_meeting(key("f1", start)).desired is DesiredState.RECORD
    assert mstack.feeders["CalendarSyncFunction"].failed_records == 1


def test_occurrences_of_a_series_get_bots_and_a_deleted_one_loses_its_bot(mstack):
    fake = mstack.graph
    fake.add_user(OWNER)
    start = _start(90)
    starts = [start + timedelta(days=i) for i in range(3)]
    master, occurrences = fake.put_series(OWNER, event(start, "ser"), starts)
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    repo = mstack.container.repository
    links = repo.list_calendar_links(cal)
    assert {x.event_id for x in links} == {o["id"] for o in occurrences}
    assert {x.recurring_event_id for x in links} == {master["id"]}
    for when in starts:  # hydrated from the master: the occurrence's own time, the master's link
        assert repo.get_meeting(key("ser", when)).title == "Design review"

    fake.delete_event(OWNER, occurrences[1]["id"])  # leaves no trace in delta itself
    assert fake.deliver(OWNER) == [202]
    mstack.drain()
    assert {x.event_id for x in repo.list_calendar_links(cal)} == {occurrences[0]["id"], occurrences[2]["id"]}
    assert repo.get_meeting(key("ser", starts[1])).desired is DesiredState.CANCELLED
    assert repo.get_meeting(key("ser", starts[2])).desired is DesiredState.RECORD

    fake.delete_event(OWNER, master["id"])  # the whole series
    sync(mstack, cal)
    assert repo.list_calendar_links(cal) == []


def test_a_cancelled_and_a_declined_event_lose_their_bots(mstack):
    fake = mstack.graph
    fake.add_user(OWNER)
    start = _start(60)
    cancelled = fake.put_event(OWNER, event(start, "c1"))
    declined = fake.put_event(OWNER, event(start + timedelta(hours=1), "d1"))
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    repo = mstack.container.repository
    dispatch(mstack, key("c1", start))
    assert len(live_bots(mstack)) == 1

    fake.cancel_event(OWNER, cancelled["id"])
    fake.decline_event(OWNER, declined["id"])
    sync(mstack, cal)
    assert repo.get_meeting(key("c1", start)).desired is DesiredState.CANCELLED
    assert repo.get_meeting(key("d1", start + timedelta(hours=1))).desired is DesiredState.CANCELLED
    assert live_bots(mstack) == [] and schedules(mstack) == {}


def test_a_removal_outside_the_window_changes_nothing(mstack):
    fake = mstack.graph
    fake.add_user(OWNER)
    start = _start(60)
    fake.put_event(OWNER, event(start, "w1"))
    far = fake.put_event(OWNER, event(start + timedelta(days=30), "far"))  # beyond the 14-day horizon
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    fake.put_event(OWNER, {**far, "subject": "moved a little"})  # Graph says @removed for it
    fake.replay_items = True
    sync(mstack, cal)
    delta_bodies = [p for m, p in fake.requests if "$deltatoken" in p]
    assert delta_bodies
    assert len(mstack.container.repository.list_calendar_links(cal)) == 1
    assert mstack.container.repository.get_meeting(key("w1", start)).desired is DesiredState.RECORD


# --- lifecycle notifications ------------------------------------------------------------------


def test_a_missed_lifecycle_event_triggers_a_full_resync(mstack):
    fake = mstack.graph
    connect_microsoft(mstack, mstack.grants, OWNER)
    (sub,) = fake.subscriptions.values()
    start = _start(60)
    fake.put_event(OWNER, event(start, "mis"))  # changed, never notified
    assert fake.lifecycle(sub["id"], "missed") == 202
    mstack.drain()
    repo = mstack.container.repository
    assert repo.get_meeting(key("mis", start)).desired is DesiredState.RECORD
    assert sum("startDateTime=" in p for m, p in fake.requests if "/calendarView/delta" in p) == 2  # a new round


def test_reauthorization_required_renews_the_subscription_and_syncs(mstack):
    fake = mstack.graph
    cal = connect_microsoft(mstack, mstack.grants, OWNER, config=SHORT_LIVED)
    (sub,) = fake.subscriptions.values()
    before = sub["expirationDateTime"]
    assert fake.lifecycle(sub["id"], "reauthorizationRequired") == 202
    assert sub["paused"] is True
    start = _start(60)
    fake.put_event(OWNER, event(start, "rea"))
    mstack.drain()
    assert sub["paused"] is False and sub["expirationDateTime"] > before
    assert any(m == "PATCH" for m, p in fake.requests)
    assert mstack.container.repository.get_meeting(key("rea", start)).desired is DesiredState.RECORD
    assert mstack.container.repository.get_calendar(cal).channel_id == sub["id"]


def test_a_removed_subscription_is_recreated_then_fully_synced(mstack):
    fake = mstack.graph
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    (old,) = fake.subscriptions.values()
    start = _start(60)
    fake.put_event(OWNER, event(start, "rem"))
    assert fake.lifecycle(old["id"], "subscriptionRemoved") == 202
    mstack.drain()
    (new,) = fake.subscriptions.values()
    repo = mstack.container.repository
    assert new["id"] != old["id"] and repo.get_calendar(cal).channel_id == new["id"]
    assert repo.get_channel(old["id"]) is None and repo.get_channel(new["id"]).token == new["clientState"]
    assert repo.get_meeting(key("rem", start)).desired is DesiredState.RECORD


# --- renewal ----------------------------------------------------------------------------------


def test_a_subscription_is_renewed_by_the_reconciler_before_it_expires(mstack):
    fake = mstack.graph
    cal = connect_microsoft(mstack, mstack.grants, OWNER, config=SHORT_LIVED)
    (sub,) = fake.subscriptions.values()
    repo = mstack.container.repository
    assert repo.get_calendar(cal).channel_expires_at < datetime.now(UTC) + timedelta(hours=3)

    assert reconcile()["subscription_renewed"] == 1
    (same,) = fake.subscriptions.values()
    assert same["id"] == sub["id"]
    calendar = repo.get_calendar(cal)
    assert calendar.channel_expires_at > datetime.now(UTC) + timedelta(days=6)
    assert repo.get_channel(sub["id"]).expires_at == calendar.channel_expires_at
    assert "subscription_renewed" not in reconcile()  # nothing is due any more


def test_a_subscription_graph_lost_is_recreated_by_the_reconciler_with_a_full_sync(mstack):
    fake = mstack.graph
    cal = connect_microsoft(mstack, mstack.grants, OWNER, config=SHORT_LIVED)
    (sub,) = fake.subscriptions.values()
    fake.subscriptions.clear()  # expired or removed without a word
    assert reconcile()["subscription_recreated"] == 1
    (new,) = fake.subscriptions.values()
    assert mstack.container.repository.get_calendar(cal).channel_id == new["id"] != sub["id"]
    assert queued(mstack) == 1  # the full sync


def test_the_poller_queues_microsoft_calendars_for_safety_and_daily_full_rounds(mstack):
    cal = connect_microsoft(mstack, mstack.grants, OWNER)
    c = mstack.container
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


# --- a grant that stops working ---------------------------------------------------------------


def test_a_revoked_grant_disconnects_with_a_reason_and_an_event_and_keeps_every_bot(mstack):
    fake = mstack.graph
    fake.add_user(OWNER)
    start = _start(60)
    doomed = fake.put_event(OWNER, event(start, "rv1"))
    cal = connect_microsoft(mstack, mstack.grants, OWNER, config=SHORT_LIVED)
    session = dispatch(mstack, key("rv1", start))
    repo = mstack.container.repository

    fake.revoke_grant(OWNER, code=700082)
    fake.expire_access_tokens()
    fake.delete_event(OWNER, doomed["id"])  # would cancel the bot if it were read
    sync(mstack, cal)

    calendar = repo.get_calendar(cal)
    assert not calendar.connected and calendar.status == "disconnected"
    assert calendar.disconnected_reason == (
        "Microsoft refused the refresh token (AADSTS700082: expired after inactivity); reconnect the calendar"
    )
    assert mstack.feeders["CalendarSyncFunction"].failed_records == 0  # not retried: nothing helps but a reconnect
    (published,) = mstack.published_events(CALENDAR_DISCONNECTED)
    validate(published)
    detail = published["detail"]
    assert detail["calendar_id"] == cal and detail["user_id"] == "ann" and detail["provider"] == "microsoft"
    assert detail["reason"] == calendar.disconnected_reason
    # The meeting, its schedule and its bot stay; nothing was created twice.
    assert repo.get_meeting(key("rv1", start)).desired is DesiredState.RECORD
    assert [b["bot_id"] for b in live_bots(mstack)] == [session.bot_id]
    assert mstack.simulator.create_calls == 1

    # A disconnected calendar is neither synced, nor renewed, nor polled.
    sync(mstack, cal)
    assert "subscription_renewed" not in reconcile() and "subscription_renewal_failed" not in reconcile()
    later = FixedClock(start + timedelta(days=2))
    assert enqueue_due_syncs(repo=repo, queue=mstack.container.calendar_sync_queue, clock=later) == {}
    assert len(mstack.published_events(CALENDAR_DISCONNECTED)) == 1  # announced once
    assert repo.get_meeting(key("rv1", start)).desired is DesiredState.RECORD
