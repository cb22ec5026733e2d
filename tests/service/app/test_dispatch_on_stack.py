"""One bot per meeting: duplicates, concurrent dispatchers, crashes and provider errors."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.dispatch import DispatchOutcome, MeetingRequest, dispatch_meeting, submit_meeting
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.meeting import DispatchState
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot.errors import ProviderAuthError
from meetpilot_dev.simulator import Faults

URL = "https://zoom.us/j/987654321?pwd=xyz"


def _submit(stack, clock, url=URL, user="alice", minutes=10):
    req = MeetingRequest(meeting_url=url, start=clock.now() + timedelta(minutes=minutes), user_id=user)
    return submit_meeting(req, repo=stack.container.repository, clock=clock)


def _dispatch(stack, key, clock, provider=None, attempt=0, config=None):
    c = stack.container
    return dispatch_meeting(
        key,
        attempt=attempt,
        repo=c.repository,
        provider=provider or c.provider,
        secrets=c.secrets,
        config=config or c.dispatch_config,
        clock=clock,
    )


class CrashAfterCreate:
    """The provider creates the bot, then our process dies before recording it."""

    def __init__(self, inner):
        self.inner = inner

    def create_bot(self, request, *, idempotency_key):
        self.inner.create_bot(request, idempotency_key=idempotency_key)
        raise RuntimeError("Lambda crashed after create_bot returned")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_duplicate_dispatch_message_creates_no_second_bot(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock)
    first = _dispatch(stack, meeting.meeting_key, clock)
    second = _dispatch(stack, meeting.meeting_key, clock)
    assert first.outcome is DispatchOutcome.CREATED
    assert second.outcome is DispatchOutcome.ALREADY_DISPATCHED and second.bot_id == first.bot_id
    assert stack.simulator.create_calls == 1


def test_same_meeting_from_two_users_is_one_meeting_one_bot(stack):
    clock = FixedClock(datetime.now(UTC))
    a = _submit(stack, clock, user="alice")
    b = _submit(stack, clock, url=URL.replace("zoom.us", "ZOOM.us") + "&utm_source=invite", user="bob")
    assert a.meeting_key == b.meeting_key
    assert set(b.user_ids) == {"alice", "bob"}
    _dispatch(stack, a.meeting_key, clock)
    _dispatch(stack, b.meeting_key, clock)
    assert stack.simulator.create_calls == 1


def test_crash_after_provider_created_the_bot_gives_no_second_bot_on_retry(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock)
    with pytest.raises(RuntimeError):
        _dispatch(stack, meeting.meeting_key, clock, provider=CrashAfterCreate(stack.container.provider))
    assert stack.simulator.create_calls == 1
    stored = stack.container.repository.get_meeting(meeting.meeting_key)
    assert stored.dispatch_state is DispatchState.CLAIMED and stored.idempotency_key

    # While the crashed attempt's lease runs, a retry waits instead of calling the provider.
    early = _dispatch(stack, meeting.meeting_key, clock)
    assert early.outcome is DispatchOutcome.RETRY and early.retry_in > 0

    clock.advance(stack.container.dispatch_config.lease_seconds + 1)
    retry = _dispatch(stack, meeting.meeting_key, clock)
    assert retry.outcome is DispatchOutcome.REPLAYED  # 507: the provider returned the same bot
    assert stack.simulator.create_calls == 1
    bots = stack.simulator.bots()
    assert len(bots) == 1 and bots[0]["bot_id"] == retry.bot_id
    session = stack.container.repository.get_session(retry.session_id)
    assert session.bot_id == retry.bot_id and session.status is BotStatus.SCHEDULED


def test_concurrent_dispatchers_create_one_bot(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock)
    results = []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        results.append(_dispatch(stack, meeting.meeting_key, clock))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r.outcome.value for r in results)
    # One of them creates the bot. On a busy machine a creator's answer can come too late (its
    # timeout: "retry"), and a later dispatcher, sending the same persisted key, gets the same bot
    # back as a replay; what counts is that the provider made one bot and the meeting names it.
    assert set(outcomes) <= {"created", "replayed", "retry", "already_dispatched"}, outcomes
    if "created" not in outcomes and "replayed" not in outcomes:
        clock.advance(stack.container.dispatch_config.lease_seconds + 1)
        assert _dispatch(stack, meeting.meeting_key, clock).outcome is DispatchOutcome.REPLAYED
    assert stack.simulator.create_calls == 1
    bots = stack.simulator.bots()
    assert len(bots) == 1
    stored = stack.container.repository.get_meeting(meeting.meeting_key)
    assert stored.dispatch_state is DispatchState.DISPATCHED and stored.bot_id == bots[0]["bot_id"]
    assert {r.bot_id for r in results if r.bot_id} <= {bots[0]["bot_id"]}


def test_rate_limited_create_is_retried_after_retry_after(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock)
    stack.simulator.set_faults(Faults(rate_limit=1.0, retry_after_seconds=7, paths=("create_bot",)))
    result = _dispatch(stack, meeting.meeting_key, clock)
    assert result.outcome is DispatchOutcome.RETRY
    assert 7 <= result.retry_in <= 8
    assert stack.container.repository.get_meeting(meeting.meeting_key).dispatch_state is DispatchState.PENDING
    stack.simulator.set_faults(Faults())
    again = _dispatch(stack, meeting.meeting_key, clock, attempt=1)
    assert again.outcome in (DispatchOutcome.CREATED, DispatchOutcome.REPLAYED)
    assert len(stack.simulator.bots()) == 1


def test_server_error_backs_off_and_gives_up_after_the_meeting_started(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock, minutes=1)
    stack.simulator.set_faults(Faults(server_error=1.0, paths=("create_bot",)))
    result = _dispatch(stack, meeting.meeting_key, clock, attempt=3)
    assert result.outcome is DispatchOutcome.RETRY and 1 <= result.retry_in <= 16
    clock.advance(20 * 60)
    late = _dispatch(stack, meeting.meeting_key, clock, attempt=9)
    assert late.outcome is DispatchOutcome.FAILED and "unavailable" in late.reason
    session = stack.container.repository.get_session(late.session_id)
    assert session.outcome is Outcome.DISPATCH_FAILED and session.needs_review


def test_rejected_request_marks_the_meeting_failed_with_the_providers_message(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock)
    config = replace(stack.container.dispatch_config, automatic_leave={"in_call_recording_timeout": 60})
    result = _dispatch(stack, meeting.meeting_key, clock, config=config)
    assert result.outcome is DispatchOutcome.FAILED
    assert "in_call_recording_timeout" in result.reason
    stored = stack.container.repository.get_meeting(meeting.meeting_key)
    assert stored.dispatch_state is DispatchState.FAILED and "in_call_recording_timeout" in stored.failure_reason
    # a failed meeting is not retried by a later message
    assert _dispatch(stack, meeting.meeting_key, clock).outcome is DispatchOutcome.SKIPPED
    assert stack.simulator.create_calls == 0


def test_wrong_api_key_fails_the_message_and_keeps_the_meeting_pending(stack):
    clock = FixedClock(datetime.now(UTC))
    meeting = _submit(stack, clock)
    ssm = stack.container.client("ssm")
    ssm.put_parameter(
        Name=stack.container.settings.api_key_param, Value="ms_wrong", Type="SecureString", Overwrite=True
    )
    from meetpilot.adapters.meetstream import MeetStreamProvider

    provider = MeetStreamProvider(lambda: "ms_wrong", base_url=stack.simulator.base_url)
    with pytest.raises(ProviderAuthError) as err:
        _dispatch(stack, meeting.meeting_key, clock, provider=provider)
    assert "ms_wrong" not in str(err.value)
    assert stack.container.repository.get_meeting(meeting.meeting_key).dispatch_state is DispatchState.PENDING


def test_dispatch_handler_reenqueues_throttled_messages_with_a_delay(stack):
    stack.simulator.set_faults(Faults(rate_limit=1.0, retry_after_seconds=3, paths=("create_bot",)))
    key = stack.submit_meeting(URL, datetime.now(UTC) + timedelta(minutes=2))  # inside the lead time
    stack.feeders["DispatchFunction"].drain()
    sqs = stack.container.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=stack.container.settings.dispatch_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesDelayed"]) == 1
    assert stack.container.repository.get_meeting(key).dispatch_state is DispatchState.PENDING
    assert stack.simulator.create_calls == 0


def test_meeting_beyond_the_lead_time_gets_one_schedule_at_start_minus_lead(stack):
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    key = stack.submit_meeting(URL, start, user_id="alice")
    stack.submit_meeting(URL, start, user_id="bob")  # same meeting from another calendar
    stack.feeders["DispatchFunction"].drain()
    scheduler = stack.container.client("scheduler")
    group = stack.container.settings.schedule_group
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    assert len(names) == 1
    schedule = scheduler.get_schedule(Name=names[0], GroupName=group)
    lead = stack.container.dispatch_config.lead_time_seconds
    assert schedule["ScheduleExpression"] == f"at({start - timedelta(seconds=lead):%Y-%m-%dT%H:%M:%S})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"] == stack.container.settings.dispatch_queue_arn
    assert json.loads(schedule["Target"]["Input"]) == {"meeting_key": key}
    meeting = stack.container.repository.get_meeting(key)
    assert meeting.dispatch_state is DispatchState.PENDING and meeting.schedule_name == names[0]
    assert set(meeting.user_ids) == {"alice", "bob"}
    assert stack.simulator.create_calls == 0
