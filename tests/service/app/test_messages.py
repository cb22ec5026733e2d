"""The queue messages: what the old dict-building producers sent is still read, what is sent now has
the same keys, and a body that does not fit is an InvalidInput naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from meetpilot.app.messages import (
    BotEventDelivery,
    CalendarSyncJob,
    DispatchMeeting,
    SubmitMeeting,
    TranscriptJob,
    read_dispatch_message,
    read_message,
)
from meetpilot.app.workers.followups import FollowUps, FollowUpStep, carry_out
from meetpilot.composition import Container
from meetpilot.errors import InvalidInput
from meetpilot.settings import Settings

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)

# Bodies exactly as the code before the typed messages wrote them (and as queues may still hold).
OLD_DISPATCH = [
    '{"meeting_key": "https://meet.google.com/abc-defg-hij|2026-12-01T15:00Z"}',  # a schedule's Input
    '{"meeting_key":"k1","attempt":0,"source":"reconcile"}',
    '{"meeting_key":"k1","attempt":0,"source":"calendar"}',
    '{"meeting_key":"k1","attempt":3}',  # the dispatcher's own retry
]
OLD_SUBMIT = (
    '{"submit":{"meeting_url":"https://meet.google.com/abc-defg-hij","start":"2026-12-01T15:00:00.000Z",'
    '"title":"Weekly","end":"2026-12-01T16:00:00.000Z","user_id":"u-1"}}'
)
OLD_DELIVERY = (
    '{"received_at":"2026-12-01T15:30:00.123Z","auth":"token","session_id":"sess-1",'
    '"headers":{"content-type":"application/json"},"body":"{\\"event\\":\\"bot.joining\\"}"}'
)
OLD_TRANSCRIPT_JOBS = [
    '{"session_id":"sess-1","bot_id":"bot-1","attempt":0,"first_attempt_at":"2026-12-01T15:30:00.000Z"}',
    '{"session_id":"sess-1","bot_id":null,"attempt":0,"first_attempt_at":"2026-12-01T15:30:00.000Z",'
    '"live_fallback":true}',
    '{"session_id":"sess-1","attempt":0}',
]
OLD_CALENDAR_JOBS = [
    '{"calendar_id":"cal-1","reason":"poll"}',
    '{"calendar_id":"cal-1","reason":"poll","full":true}',
    '{"calendar_id":"cal-1","reason":"requested","full":false}',
    '{"calendar_id":"cal-1","reason":"retry_busy","full":true}',
]


@pytest.mark.parametrize("raw", OLD_DISPATCH)
def test_old_dispatch_messages_are_read_and_sent_back_unchanged(raw: str) -> None:
    message = read_dispatch_message(raw)
    assert isinstance(message, DispatchMeeting)
    assert message.to_body() == json.loads(raw)


def test_old_submit_message_is_read_with_its_times_in_utc() -> None:
    message = read_dispatch_message(OLD_SUBMIT)
    assert isinstance(message, SubmitMeeting)
    assert message.submit.start == START and message.submit.end == datetime(2026, 12, 1, 16, tzinfo=UTC)
    assert message.submit.user_id == "u-1" and message.submit.title == "Weekly"
    assert message.to_body() == json.loads(OLD_SUBMIT)


def test_old_delivery_transcript_and_calendar_messages_are_read_and_sent_back_unchanged() -> None:
    assert read_message(BotEventDelivery, OLD_DELIVERY).to_body() == json.loads(OLD_DELIVERY)
    for raw in OLD_TRANSCRIPT_JOBS:
        assert read_message(TranscriptJob, raw).to_body() == json.loads(raw)
    for raw in OLD_CALENDAR_JOBS:
        assert read_message(CalendarSyncJob, raw).to_body() == json.loads(raw)


def test_new_producers_send_the_keys_the_old_ones_did() -> None:
    assert DispatchMeeting(meeting_key="k1").to_body() == {"meeting_key": "k1"}
    assert DispatchMeeting(meeting_key="k1", attempt=3).next_attempt().to_body() == {"meeting_key": "k1", "attempt": 4}
    assert SubmitMeeting.of("https://meet.google.com/abc-defg-hij", START).to_body() == {
        "submit": {
            "meeting_url": "https://meet.google.com/abc-defg-hij",
            "start": "2026-12-01T15:00:00.000Z",
            "title": "",
        }
    }
    job = TranscriptJob(session_id="sess-1", bot_id=None, attempt=0, first_attempt_at=START)
    assert job.to_body() == {
        "session_id": "sess-1",
        "bot_id": None,
        "attempt": 0,
        "first_attempt_at": "2026-12-01T15:00:00.000Z",
    }
    assert job.updated(live_fallback=True).to_body()["live_fallback"] is True
    sync = CalendarSyncJob(calendar_id="cal-1", reason="poll")
    assert sync.to_body() == {"calendar_id": "cal-1", "reason": "poll"}
    assert sync.updated(reason="retry_busy").to_body() == {"calendar_id": "cal-1", "reason": "retry_busy"}


def test_unknown_keys_are_ignored_so_a_newer_message_is_still_read() -> None:
    job = read_message(CalendarSyncJob, '{"calendar_id":"cal-1","reason":"push","priority":"high"}')
    assert job.to_body() == {"calendar_id": "cal-1", "reason": "push"}


@pytest.mark.parametrize(
    ("model", "raw", "named"),
    [
        (TranscriptJob, "{}", "'session_id': is required"),
        (TranscriptJob, '{"session_id":""}', "'session_id'"),
        (TranscriptJob, '{"session_id":"s","attempt":"many"}', "'attempt'"),
        (TranscriptJob, '{"session_id":"s","attempt":-1}', "'attempt'"),
        (TranscriptJob, '{"session_id":"s","first_attempt_at":"2026-12-01T15:00:00"}', "no timezone"),
        (CalendarSyncJob, '{"reason":"poll"}', "'calendar_id': is required"),
        (CalendarSyncJob, '{"calendar_id":7}', "'calendar_id'"),
        (BotEventDelivery, '{"session_id":"s"}', "'body': is required"),
        (BotEventDelivery, '{"body":{"event":"bot.joining"}}', "'body'"),
        (TranscriptJob, "not json", "is not JSON"),
        (TranscriptJob, "[1, 2]", "is not a JSON object"),
    ],
)
def test_a_message_that_does_not_fit_is_invalid_input_naming_the_field(model: type, raw: str, named: str) -> None:
    with pytest.raises(InvalidInput, match="message") as refused:
        read_message(model, raw)
    assert named in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("{}", "'meeting_key' or 'submit'"),
        ('{"meeting_key":""}', "'meeting_key'"),
        ('{"submit":{"start":"2026-12-01T15:00:00Z"}}', "'submit.meeting_url': is required"),
        ('{"submit":{"meeting_url":"  ","start":"2026-12-01T15:00:00Z"}}', "'submit.meeting_url': must not be blank"),
        ('{"submit":{"meeting_url":"https://meet.google.com/abc-defg-hij"}}', "'submit.start': is required"),
        ('{"submit":{"meeting_url":"https://meet.google.com/abc-defg-hij","start":"soon"}}', "'submit.start'"),
        ('{"submit":"https://meet.google.com/abc-defg-hij"}', "'submit'"),
    ],
)
def test_a_dispatch_message_that_does_not_fit_names_the_field(raw: str, named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_dispatch_message(raw)
    assert named in str(refused.value)


def test_an_error_never_repeats_the_value_it_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        read_message(BotEventDelivery, '{"body":{"passcode":"914-227"}}')
    assert "914-227" not in str(refused.value)


def test_a_malformed_audit_field_or_session_id_never_fails_a_delivery() -> None:
    # The ingest acknowledged it and MeetStream will not send it again: only the body must fit.
    delivery = read_message(
        BotEventDelivery, '{"body":"{}","session_id":[1],"headers":null,"auth":5,"received_at":"yesterday"}'
    )
    assert delivery.body == "{}" and delivery.session_id is None and delivery.headers == {}
    assert read_message(BotEventDelivery, '{"body":"{}","session_id":""}').session_id is None


def test_a_submit_message_wins_over_a_meeting_key() -> None:
    raw = '{"meeting_key":"k1","submit":{"meeting_url":"https://meet.google.com/abc-defg-hij","start":"2026-12-01T15:00Z"}}'
    assert isinstance(read_dispatch_message(raw), SubmitMeeting)


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict, int]] = []

    def send(self, body: dict, *, delay_seconds: int = 0) -> str:
        self.sent.append((dict(body), delay_seconds))
        return str(len(self.sent))


def test_a_follow_up_retry_goes_out_on_the_workers_queue_after_the_scaled_delay() -> None:
    queue = ListQueue()
    step = FollowUpStep(
        repo=None,  # type: ignore[arg-type]  # never read by a retry
        clock=None,  # type: ignore[arg-type]
        delay=Settings(time_scale=0.1).scaled,
        retry_queue=lambda: queue,
    )
    report = carry_out(FollowUps(retry=DispatchMeeting(meeting_key="k1", attempt=1), retry_in=40.0), step)
    assert queue.sent == [({"meeting_key": "k1", "attempt": 1}, 4)]
    assert report.retried_in == 4


def test_transcript_retry_policy_comes_from_settings_with_the_old_defaults() -> None:
    assert Settings().transcript_retry_base_seconds == 15.0 and Settings().transcript_not_ready_budget_seconds == 1800
    tuned = Settings.from_env({"TRANSCRIPT_RETRY_BASE_SECONDS": "20", "TRANSCRIPT_NOT_READY_BUDGET_SECONDS": "600"})
    policy = Container(tuned).transcript_policy
    assert policy.retry_base_seconds == 20.0 and policy.not_ready_budget.total_seconds() == 600
    with pytest.raises(Exception, match="TRANSCRIPT_NOT_READY_BUDGET_SECONDS"):
        Settings.from_env({"TRANSCRIPT_NOT_READY_BUDGET_SECONDS": "half an hour"})
