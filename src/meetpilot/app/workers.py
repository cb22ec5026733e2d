"""The one use case each queue worker runs per message, and the step that follows every one of them.

A use case here decides what must happen after its work (send the message again later, publish the
session's events) as ``FollowUps``; ``carry_out`` does it, the same way for every queue. The
handlers only parse the message, call one function here and turn its answer into logs and metrics.

    done = work_transcript_job(job, repo=repo, ..., after=FollowUpStep(repo, clock, delay, publisher, queue))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from meetpilot.app.bot_events import ApplyResult, apply_delivery
from meetpilot.app.calendar_sync import SyncDeps, SyncReport, sync_calendar
from meetpilot.app.dispatch import (
    DispatchConfig,
    DispatchOutcome,
    DispatchResult,
    MeetingRequest,
    Plan,
    dispatch_meeting,
    plan_dispatch,
    submit_meeting,
)
from meetpilot.app.messages import (
    BotEventDelivery,
    CalendarSyncJob,
    DispatchMeeting,
    DispatchMessage,
    MeetingSubmission,
    QueueMessage,
    TranscriptJob,
)
from meetpilot.app.ports import (
    BotProvider,
    CalendarRepository,
    DispatchScheduler,
    EventPublisher,
    GoogleCalendars,
    IcsFeeds,
    LiveSegmentStore,
    MessageQueue,
    Repository,
    Secrets,
    TranscriptStore,
)
from meetpilot.app.sessions import PublishReport, publish_outbox
from meetpilot.app.transcripts import FetchOutcome, FetchResult, fetch_transcript
from meetpilot.domain.clock import Clock

R = TypeVar("R")

# Fallback delays (seconds) when a use case asks for a retry without saying when.
DISPATCH_RETRY_FALLBACK = 1.0
TRANSCRIPT_RETRY_FALLBACK = 15.0
CALENDAR_BUSY_FALLBACK = 30.0


# --- the shared step -------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUps:
    """What is left to do once a message's work is stored."""

    retry: QueueMessage | None = None  # send this again on the worker's own queue...
    retry_in: float = 0.0  # ...this many seconds later (before the local time scale)
    publish_for: str | None = None  # publish this session's outbox


@dataclass(frozen=True)
class FollowUpStep:
    """The ports the follow-ups need; ``delay`` turns seconds into the queue's delay (time scale).

    The publisher and the queue are asked for only when used: each is a boto3 client, which a cold
    start should pay for only when a record needs it (a rejected delivery publishes nothing)."""

    repo: Repository
    clock: Clock
    delay: Callable[[float], int]
    publisher: Callable[[], EventPublisher]
    retry_queue: Callable[[], MessageQueue] | None = None


@dataclass(frozen=True)
class FollowUpReport:
    retried_in: int | None = None  # the delay the retry was sent with; None when nothing was sent
    published: PublishReport = field(default_factory=PublishReport)


def carry_out(follow_ups: FollowUps, step: FollowUpStep) -> FollowUpReport:
    """Re-send with a delay, then publish. A retry is a new message rather than a failed record, so
    throttling or a slow provider does not eat into maxReceiveCount (kept for real crashes).
    Publishing never raises: the change is stored whatever happens here (see app/sessions.py)."""
    retried_in = None
    if follow_ups.retry is not None:
        if step.retry_queue is None:
            raise ValueError("this worker has no queue to retry on")
        retried_in = step.delay(follow_ups.retry_in)
        step.retry_queue().send(follow_ups.retry.to_body(), delay_seconds=retried_in)
    published = PublishReport()
    if follow_ups.publish_for is not None:
        published = publish_outbox(step.repo, step.publisher(), follow_ups.publish_for, step.clock)
    return FollowUpReport(retried_in, published)


@dataclass(frozen=True)
class Done(Generic[R]):
    """A use case's own result and what its follow-ups did."""

    result: R
    follow_ups: FollowUpReport = field(default_factory=FollowUpReport)


# --- dispatch queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchDone:
    meeting_key: str
    attempt: int
    result: DispatchResult | None = None  # None: a submitted meeting was scheduled or is already in hand
    plan: Plan | None = None  # set for a submitted meeting
    follow_ups: FollowUpReport = field(default_factory=FollowUpReport)
    # How late a created bot was against its plan. Late is what matters: a bot created ahead of
    # plan (a retry, the reconciler) counts as 0.
    lateness_seconds: float | None = None

    @property
    def outcome(self) -> str:
        if self.result is not None:
            return self.result.outcome.value
        assert self.plan is not None
        return "scheduled" if self.plan.dispatch_at else self.plan.meeting.dispatch_state.value


def work_dispatch_message(
    message: DispatchMessage,
    *,
    repo: CalendarRepository,
    provider: BotProvider,
    secrets: Secrets,
    scheduler: DispatchScheduler,
    config: DispatchConfig,
    clock: Clock,
    after: FollowUpStep,
) -> DispatchDone:
    """A submitted meeting is stored and planned (a schedule, or a bot now); a meeting key is dispatched."""
    if isinstance(message, DispatchMeeting):
        target = message
    else:
        meeting = submit_meeting(meeting_request(message.submit), repo=repo, clock=clock)
        plan = plan_dispatch(meeting, scheduler=scheduler, repo=repo, config=config, clock=clock)
        if not plan.dispatch_now:
            return DispatchDone(meeting.meeting_key, 0, plan=plan)
        target = DispatchMeeting(meeting_key=meeting.meeting_key)
    result = dispatch_meeting(
        target.meeting_key,
        attempt=target.attempt,
        repo=repo,
        provider=provider,
        secrets=secrets,
        config=config,
        clock=clock,
    )
    lateness = None
    if result.outcome is DispatchOutcome.CREATED and result.planned_at is not None:
        lateness = max(0.0, (clock.now() - result.planned_at).total_seconds())
    retry = result.outcome is DispatchOutcome.RETRY
    follow_ups = FollowUps(
        retry=target.next_attempt() if retry else None,
        retry_in=(result.retry_in or DISPATCH_RETRY_FALLBACK) if retry else 0.0,
        publish_for=result.session_id,
    )
    return DispatchDone(
        target.meeting_key, target.attempt, result, follow_ups=carry_out(follow_ups, after), lateness_seconds=lateness
    )


def meeting_request(submission: MeetingSubmission) -> MeetingRequest:
    return MeetingRequest(
        meeting_url=submission.meeting_url,
        start=submission.start,
        end=submission.end,
        title=submission.title,
        user_id=submission.user_id,
    )


# --- bot-events queue --------------------------------------------------------------------------


def work_bot_event(
    delivery: BotEventDelivery,
    *,
    repo: Repository,
    transcript_queue: MessageQueue,
    clock: Clock,
    after: FollowUpStep,
) -> Done[ApplyResult]:
    """Apply one stored delivery; publish what it changed (a rejected one changed nothing)."""
    result = apply_delivery(delivery, repo=repo, transcript_queue=transcript_queue, clock=clock)
    if result.rejected:
        return Done(result)
    return Done(result, carry_out(FollowUps(publish_for=result.session_id), after))


# --- transcript queue --------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptPolicy:
    """How long and how often a transcript that is not ready yet is asked for again."""

    not_ready_budget: timedelta
    retry_base_seconds: float


def work_transcript_job(
    job: TranscriptJob,
    *,
    repo: Repository,
    provider: BotProvider,
    store: TranscriptStore,
    clock: Clock,
    policy: TranscriptPolicy,
    segments: LiveSegmentStore | None,
    spool_dir: str | None,
    after: FollowUpStep,
) -> Done[FetchResult]:
    """Fetch (or assemble) the transcript; ask again later when it is not ready; publish."""
    result = fetch_transcript(
        job,
        repo=repo,
        provider=provider,
        store=store,
        clock=clock,
        spool_dir=spool_dir,
        not_ready_budget=policy.not_ready_budget,
        retry_base_seconds=policy.retry_base_seconds,
        segments=segments,
    )
    retry = result.outcome is FetchOutcome.RETRY and result.next_job is not None
    follow_ups = FollowUps(
        retry=result.next_job if retry else None,
        retry_in=(result.retry_in or TRANSCRIPT_RETRY_FALLBACK) if retry else 0.0,
        publish_for=result.session_id,
    )
    return Done(result, carry_out(follow_ups, after))


# --- calendar-sync queue -----------------------------------------------------------------------


def work_calendar_sync(
    job: CalendarSyncJob,
    *,
    deps: SyncDeps,
    ics: Callable[[], IcsFeeds],
    google: Callable[[], GoogleCalendars],
    after: FollowUpStep,
) -> Done[SyncReport]:
    """Sync the calendar. When another sync holds it, come back once its lease ends, so the change
    that triggered this message is not lost."""
    report = sync_calendar(job.calendar_id, deps=deps, ics=ics, google=google, full=job.full)
    if report.outcome != "busy":
        return Done(report)
    retry = job.retried(reason="retry_busy")
    return Done(report, carry_out(FollowUps(retry=retry, retry_in=report.retry_in or CALENDAR_BUSY_FALLBACK), after))
