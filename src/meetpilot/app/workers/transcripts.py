"""The transcript queue's use case: fetch (or assemble) one session's transcript, ask again later
while it is not ready."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from meetpilot.app.messages import TranscriptJob
from meetpilot.app.ports import BotProvider, LiveSegmentStore, MeetingsAndSessions, TranscriptStore
from meetpilot.app.transcripts import FetchOutcome, FetchResult, fetch_transcript
from meetpilot.app.workers.followups import Done, FollowUps, FollowUpStep, carry_out
from meetpilot.domain.clock import Clock

# When a retry is asked for without a delay (seconds).
TRANSCRIPT_RETRY_FALLBACK = 15.0


@dataclass(frozen=True)
class TranscriptPolicy:
    """How long and how often a transcript that is not ready yet is asked for again."""

    not_ready_budget: timedelta
    retry_base_seconds: float


def work_transcript_job(
    job: TranscriptJob,
    *,
    repo: MeetingsAndSessions,
    provider: BotProvider,
    store: TranscriptStore,
    clock: Clock,
    policy: TranscriptPolicy,
    segments: LiveSegmentStore | None,
    spool_dir: str | None,
    after: FollowUpStep,
) -> Done[FetchResult]:
    """Fetch (or assemble) the transcript; ask again later when it is not ready."""
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
    )
    return Done(result, carry_out(follow_ups, after))
