"""The reconciler recovers what lost webhooks and lost dispatches would have carried."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from meetpilot.app.reconcile import ReconcileConfig, reconcile
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import DispatchState
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot_dev.simulator import Faults, Scenario

URL = "https://meet.google.com/rec-onci-ler"


def run_reconcile(stack, clock, **config):
    c = stack.container
    return reconcile(
        repo=c.repository,
        provider=c.provider,
        dispatch_queue=c.dispatch_queue,
        transcript_queue=c.transcript_queue,
        clock=clock,
        config=ReconcileConfig(**config),
    )


def wait_bot(stack, status, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bots = stack.simulator.bots()
        if bots and bots[0]["status"] == status:
            return bots[0]
        time.sleep(0.05)
    raise AssertionError(f"bot never reached {status}: {stack.simulator.bots()}")


def test_every_webhook_dropped_still_ends_with_the_transcript_via_the_reconciler(stack):
    stack.simulator.set_faults(Faults(drop_webhook=1.0))
    key = stack.submit_meeting(URL, datetime.now(UTC) + timedelta(seconds=1))
    stack.drain()
    wait_bot(stack, "Done")
    stack.drain()
    session = stack.session_for(key)
    assert session.outcome is None and session.history == []  # nothing arrived

    later = FixedClock(datetime.now(UTC) + timedelta(minutes=40))
    report = run_reconcile(stack, later)
    assert report.actions["transcript_requested"] == 1
    stack.drain()  # the transcript job
    session = stack.session_for(key)
    assert session.outcome is Outcome.TRANSCRIPT_STORED, session.outcome_reason
    assert session.status is BotStatus.DONE
    assert {h.get("source") for h in session.history} == {"reconcile"}
    assert "bot.stopped" in [h["name"] for h in session.history]
    assert len(stack.simulator.bots()) == 1
    # settled: the next round finds nothing to do
    assert run_reconcile(stack, FixedClock(later.now() + timedelta(hours=1))).checked == 0


def test_not_admitted_bot_is_recognised_from_the_providers_record(stack):
    stack.simulator.set_faults(Faults(drop_webhook=1.0))
    stack.simulator.set_scenario(URL, Scenario.NOT_ADMITTED)
    key = stack.submit_meeting(URL, datetime.now(UTC) + timedelta(seconds=1))
    stack.drain()
    wait_bot(stack, "Done")
    run_reconcile(stack, FixedClock(datetime.now(UTC) + timedelta(minutes=40)))
    session = stack.session_for(key)
    assert session.outcome is Outcome.NOT_ADMITTED


def test_lost_schedule_is_redispatched_once_its_time_has_passed(stack):
    start = datetime.now(UTC) + timedelta(hours=1)
    key = stack.submit_meeting(URL, start)
    stack.drain()
    meeting = stack.container.repository.get_meeting(key)
    assert meeting.schedule_name
    scheduler = stack.container.client("scheduler")
    scheduler.delete_schedule(Name=meeting.schedule_name, GroupName=stack.container.settings.schedule_group)

    early = run_reconcile(stack, FixedClock(datetime.now(UTC)))
    assert early.checked == 0  # not yet due: nothing to do before the dispatch time
    late = FixedClock(meeting.dispatch_at + timedelta(minutes=6))
    assert run_reconcile(stack, late).actions["meeting_redispatched"] == 1
    stack.drain()
    meeting = stack.container.repository.get_meeting(key)
    assert meeting.dispatch_state is DispatchState.DISPATCHED
    assert stack.simulator.create_calls == 1
    # a dispatched meeting leaves the index
    assert run_reconcile(stack, FixedClock(late.now() + timedelta(hours=1))).actions["meeting_redispatched"] == 0


def test_a_bot_that_never_reports_is_flagged_after_the_configured_checks(stack):
    stack.simulator.set_scenario(URL, Scenario.NO_SHOW)
    key = stack.submit_meeting(URL, datetime.now(UTC) + timedelta(seconds=1))
    stack.drain()
    clock = FixedClock(datetime.now(UTC))
    for _ in range(4):
        clock.advance(3600)
        run_reconcile(stack, clock, max_attempts=3)
    session = stack.session_for(key)
    assert session.outcome is Outcome.GAVE_UP and session.needs_review
    assert "3 reconciler checks" in session.outcome_reason


def test_a_lost_transcript_job_is_sent_again_when_the_fetcher_shows_no_progress(stack):
    stack.simulator.set_faults(Faults(drop_webhook=1.0))
    key = stack.submit_meeting(URL, datetime.now(UTC) + timedelta(seconds=1))
    stack.drain()
    wait_bot(stack, "Done")
    clock = FixedClock(datetime.now(UTC) + timedelta(minutes=40))
    assert run_reconcile(stack, clock).actions["transcript_requested"] == 1
    sqs = stack.container.client("sqs")
    sqs.purge_queue(QueueUrl=stack.feeders["TranscriptFetchFunction"].queue_url)  # the job is lost
    assert stack.session_for(key).outcome is None

    clock.advance(2400)
    assert run_reconcile(stack, clock).actions["transcript_requested"] == 1
    stack.drain()
    session = stack.session_for(key)
    assert session.outcome is Outcome.TRANSCRIPT_STORED, session.outcome_reason
    assert session.reconcile_attempts == 2


def test_a_slow_transcript_the_fetcher_keeps_trying_is_not_flagged_by_the_reconciler(stack_factory):
    stack = stack_factory(time_scale=0.01)  # fetch retries come back in a fraction of a second
    stack.simulator.set_faults(Faults(drop_webhook=1.0, slow_transcript_seconds=36_000))
    key = stack.submit_meeting(URL, datetime.now(UTC) + timedelta(seconds=1))
    stack.drain()
    wait_bot(stack, "Stopped")  # the transcript is hours away
    clock = FixedClock(datetime.now(UTC) + timedelta(minutes=40))
    actions = []
    for _ in range(6):
        report = run_reconcile(stack, clock, max_attempts=2)
        actions.extend(report.actions)
        deadline = time.monotonic() + 5
        tries = stack.session_for(key).transcript_tries
        while stack.session_for(key).transcript_tries == tries and time.monotonic() < deadline:
            stack.drain()
            time.sleep(0.05)
        clock.advance(2400)
    session = stack.session_for(key)
    assert session.outcome is None, session.outcome_reason
    assert session.transcript_tries >= 6
    assert actions.count("transcript_in_progress") == 5 and "flagged" not in actions
    assert session.reconcile_attempts == 1  # only the first request counted
