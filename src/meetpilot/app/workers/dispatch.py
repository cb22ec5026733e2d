"""The dispatch queue's use case: a submitted meeting is stored and planned (a schedule, or a bot
now); a meeting key is dispatched, and retried later when the provider or a lease says so."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from meetpilot.app.dispatch import (
    DispatchConfig,
    DispatchOutcome,
    DispatchResult,
    MeetingRequest,
    Plan,
    RateGuard,
    dispatch_meeting,
    plan_dispatch,
    submit_meeting,
)
from meetpilot.app.messages import DispatchMeeting, DispatchMessage, MeetingSubmission
from meetpilot.app.ports import BotProvider, DispatchRepository, DispatchScheduler, Secrets
from meetpilot.app.workers.followups import FollowUpReport, FollowUps, FollowUpStep, carry_out
from meetpilot.domain.clock import Clock

# When a retry is asked for without a delay (seconds).
DISPATCH_RETRY_FALLBACK = 1.0


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
    repo: DispatchRepository,
    provider: BotProvider,
    secrets: Secrets,
    scheduler: DispatchScheduler,
    config: DispatchConfig,
    clock: Clock,
    after: FollowUpStep,
    guard: RateGuard | None = None,
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
        guard=guard,
    )
    lateness = None
    if result.outcome is DispatchOutcome.CREATED and result.planned_at is not None:
        lateness = max(0.0, (clock.now() - result.planned_at).total_seconds())
    retry = result.outcome is DispatchOutcome.RETRY
    if result.outcome is DispatchOutcome.NOT_YET:
        # Held back to its slot: the same attempt again, after exactly that long.
        wait = replace(after, delay=math.floor)  # a slot is clock time, not scaled; the rest is waited out
        held = FollowUps(retry=target, retry_in=result.retry_in or DISPATCH_RETRY_FALLBACK)
        return DispatchDone(target.meeting_key, target.attempt, result, follow_ups=carry_out(held, wait))
    follow_ups = FollowUps(
        retry=target.next_attempt() if retry else None,
        retry_in=(result.retry_in or DISPATCH_RETRY_FALLBACK) if retry else 0.0,
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
