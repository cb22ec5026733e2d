"""Fetch a finished transcript and store it in S3: raw (gzip) plus normalised JSON, text and VTT.

The body is streamed to a spool file on disk and parsed incrementally from there, so memory stays
bounded whatever the transcript size: no step holds the whole transcript in memory.
"""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from meetpilot.app.live_transcripts import store_live_transcript
from meetpilot.app.messages import TranscriptJob
from meetpilot.app.ports import BotProvider, LiveSegmentStore, MeetingsAndSessions, Sessions, TranscriptStore
from meetpilot.app.reconcile import apply_provider_timeline
from meetpilot.app.sessions import update_session
from meetpilot.domain.clock import Clock, parse_iso, to_iso
from meetpilot.domain.retry import retry_delay
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import Outcome
from meetpilot.domain.transcript import TranscriptSummary, TranscriptWriter, iter_segments, normalise_segment
from meetpilot.errors import (
    InvalidInput,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderRetryable,
    TranscriptFormatError,
    TranscriptNotReady,
)

NOT_READY_BUDGET = timedelta(minutes=30)
# A streaming-only bot's transcript is assembled this long after it stopped, so the last live
# deliveries (still in flight when the bot left) are in.
LIVE_SETTLE_SECONDS = 30.0
_COPY_CHUNK = 1 << 20
T = TypeVar("T")


class FetchOutcome(StrEnum):
    STORED = "stored"
    EMPTY = "empty"
    ALREADY_STORED = "already_stored"
    RETRY = "retry"
    GAVE_UP = "gave_up"
    FAILED = "failed"


@dataclass(frozen=True)
class FetchResult:
    outcome: FetchOutcome
    session_id: str
    retry_in: float | None = None
    next_job: TranscriptJob | None = None
    keys: dict[str, str] | None = None
    summary: TranscriptSummary | None = None
    reason: str | None = None
    latency_seconds: float | None = None  # from the bot leaving to the transcript being stored
    partial_kept: bool = False  # a failed post-call transcription kept the live transcript instead
    settled: Session | None = None  # the session as this job wrote it, when it did


def transcript_prefix(session: Session, meeting_start: datetime | None, now: datetime) -> str:
    """``transcripts/YYYY/MM/DD/<bot id>/``, dated by the meeting start (or now if unknown)."""
    day = (meeting_start or now).strftime("%Y/%m/%d")
    return f"transcripts/{day}/{session.bot_id or session.session_id}/"


def fetch_transcript(
    job: TranscriptJob,
    *,
    repo: MeetingsAndSessions,
    provider: BotProvider,
    store: TranscriptStore,
    clock: Clock,
    spool_dir: str | None = None,
    not_ready_budget: timedelta = NOT_READY_BUDGET,
    retry_base_seconds: float = 15.0,
    segments: LiveSegmentStore | None = None,
) -> FetchResult:
    """Store the session's transcript: the provider's post-call one, or for a streaming-only bot
    the one assembled from its live segments. A post-call transcription that fails for good keeps
    the live transcript (when there was one) as a partial transcript."""
    result = _fetch(
        job,
        repo=repo,
        provider=provider,
        store=store,
        clock=clock,
        spool_dir=spool_dir,
        not_ready_budget=not_ready_budget,
        retry_base_seconds=retry_base_seconds,
        segments=segments,
    )
    if result.outcome in (FetchOutcome.STORED, FetchOutcome.EMPTY):
        # The session this job just wrote, when it did: no need to read it back.
        session = result.settled or repo.get_session(result.session_id)
        stopped = _stopped_at(session) if session else None
        if stopped is not None:
            latency = max(0.0, (clock.now() - stopped).total_seconds())
            result = replace(result, latency_seconds=latency)
    elif result.outcome in (FetchOutcome.GAVE_UP, FetchOutcome.FAILED) and segments is not None:
        session = repo.get_session(result.session_id)
        if session is not None and session.live_transcript and session.transcript_mode is TranscriptMode.POST_CALL:
            kept = keep_live_partial(
                session, repo=repo, segments=segments, store=store, clock=clock, spool_dir=spool_dir
            )
            result = replace(result, partial_kept=kept)
    return result


def _stopped_at(session: Session) -> datetime | None:
    """When the bot left, from the terminal event in the session's history."""
    for entry in session.history:
        if entry.get("stop_reason"):
            for key in ("timestamp", "received_at"):
                value = entry.get(key)
                if isinstance(value, str) and value:
                    try:
                        return parse_iso(value)
                    except ValueError:
                        continue
    return None


def keep_live_partial(
    session: Session,
    *,
    repo: MeetingsAndSessions,
    segments: LiveSegmentStore,
    store: TranscriptStore,
    clock: Clock,
    spool_dir: str | None = None,
) -> bool:
    """After a post-call transcription failed, store what the live stream caught; True if any."""
    if session.transcript.get("keys", {}).get("json"):
        return False  # a transcript (full or partial) is already stored
    meeting = repo.get_meeting(session.meeting_key)
    prefix = transcript_prefix(session, meeting.start if meeting else None, clock.now())
    live = store_live_transcript(
        session,
        segments.segments(session.session_id),
        prefix=prefix + "live/",
        store=store,
        metadata=_metadata(session, meeting),
        clock=clock,
        spool_dir=spool_dir,
        partial=True,
    )
    if live is None:
        return False

    def keep(current: Session) -> Session | None:
        if current.transcript.get("keys", {}).get("json"):
            return None
        current.transcript = {**current.transcript, **live.figures}
        return current

    update_session(repo, session.session_id, keep, clock)
    return True


def _metadata(session: Session, meeting: Any) -> dict[str, Any]:
    return {
        "bot_id": session.bot_id,
        "session_id": session.session_id,
        "meeting_key": session.meeting_key,
        "title": meeting.title if meeting else "",
        "meeting_start": to_iso(meeting.start) if meeting else None,
    }


def _fetch(
    job: TranscriptJob,
    *,
    repo: MeetingsAndSessions,
    provider: BotProvider,
    store: TranscriptStore,
    clock: Clock,
    spool_dir: str | None,
    not_ready_budget: timedelta,
    retry_base_seconds: float,
    segments: LiveSegmentStore | None,
) -> FetchResult:
    session_id = job.session_id
    attempt = job.attempt
    now = clock.now()
    first_attempt = job.first_attempt_at or now

    session = repo.get_session(session_id)
    if session is None:
        raise InvalidInput(f"transcript job for unknown session {session_id}")
    if session.transcript_state is TranscriptState.STORED:
        return FetchResult(FetchOutcome.ALREADY_STORED, session_id)
    if job.live_fallback:
        # The post-call transcription failed (its webhook said so): only the partial is left to keep.
        return FetchResult(FetchOutcome.FAILED, session_id, reason=session.outcome_reason or "transcription failed")
    if session.outcome is not None and session.outcome.rules_out_transcript:
        # Settled so that no transcript can come (not admitted, denied, transcription failed or
        # skipped, ...), whether before this job was queued or while it waited out a retry (bot.done
        # often arrives before the verdict): no provider call, no retries.
        return FetchResult(FetchOutcome.FAILED, session_id, reason=f"no transcript: {session.outcome_reason}")

    def retry(reason: str, retry_after: float | None = None) -> FetchResult:
        if now - first_attempt >= not_ready_budget:
            why = f"{reason} after {_span(not_ready_budget)} of retries"
            _settle(repo, session_id, Outcome.GAVE_UP, why, clock)
            return FetchResult(FetchOutcome.GAVE_UP, session_id, reason=why)
        if retry_after:
            delay = retry_delay(attempt, retry_after, cap=600.0)
        else:
            delay = min(900.0, retry_base_seconds * 2**attempt)
        next_job = job.updated(attempt=attempt + 1, first_attempt_at=first_attempt)
        _count_try(repo, session_id, clock)
        return FetchResult(FetchOutcome.RETRY, session_id, retry_in=delay, next_job=next_job, reason=reason)

    if session.transcript_mode is TranscriptMode.STREAMING:
        if segments is None or not session.live_transcript:
            why = "the transcript provider streams only and no live transcript was requested"
            _settle(repo, session_id, Outcome.STREAMING_ONLY, why, clock)
            return FetchResult(FetchOutcome.FAILED, session_id, reason=why)
        if attempt == 0:
            next_job = job.updated(attempt=1, first_attempt_at=first_attempt)
            return FetchResult(
                FetchOutcome.RETRY,
                session_id,
                retry_in=LIVE_SETTLE_SECONDS,
                next_job=next_job,
                reason="waiting for the last live deliveries",
            )
        return _store_live(session, repo=repo, segments=segments, store=store, clock=clock, spool_dir=spool_dir)

    try:
        transcript_id = session.transcript_id
        if not transcript_id and session.bot_id:
            transcript_id = provider.find_transcript_id(session.bot_id)
            if transcript_id:
                _remember_transcript_id(repo, session_id, transcript_id, clock)
        if not transcript_id:
            settled = _converge_with_provider(session, repo=repo, provider=provider, clock=clock)
            if settled is not None:
                return FetchResult(FetchOutcome.FAILED, session_id, reason=f"no transcript: {settled}")
            return retry("the provider has no transcript id for this bot yet")
        with tempfile.TemporaryDirectory(prefix="meetpilot-", dir=spool_dir) as tmp:
            raw_path = os.path.join(tmp, "raw.json")
            with open(raw_path, "wb") as sink:
                provider.download_transcript(transcript_id, sink)
            return _store(session, raw_path, tmp, repo=repo, store=store, clock=clock, now=now)
    except TranscriptNotReady:
        settled = _converge_with_provider(session, repo=repo, provider=provider, clock=clock)
        if settled is not None:
            # The webhook that said why there is no transcript (not admitted, denied, ...) was lost;
            # the provider's record says it, so stop waiting for a transcript that will not come.
            return FetchResult(FetchOutcome.FAILED, session_id, reason=f"no transcript: {settled}")
        return retry("transcript not ready")
    except ProviderRetryable as exc:
        return retry(f"provider unavailable: {exc}", exc.retry_after)
    except ProviderNotFound as exc:
        why = f"the provider has no such transcript: {exc}"
        _settle(repo, session_id, Outcome.TRANSCRIPTION_FAILED, why, clock)
        return FetchResult(FetchOutcome.FAILED, session_id, reason=why)
    except ProviderRejected:
        raise  # auth or request problem: fail the message so it reaches the DLQ for a redrive


def _store_live(
    session: Session,
    *,
    repo: MeetingsAndSessions,
    segments: LiveSegmentStore,
    store: TranscriptStore,
    clock: Clock,
    spool_dir: str | None,
) -> FetchResult:

    meeting = repo.get_meeting(session.meeting_key)
    live = store_live_transcript(
        session,
        segments.segments(session.session_id),
        prefix=transcript_prefix(session, meeting.start if meeting else None, clock.now()),
        store=store,
        metadata=_metadata(session, meeting),
        clock=clock,
        spool_dir=spool_dir,
    )
    if live is None:
        why = "the transcript provider streams only, and no final live segment arrived"
        _settle(repo, session.session_id, Outcome.STREAMING_ONLY, why, clock)
        return FetchResult(FetchOutcome.FAILED, session.session_id, reason=why)
    empty = live.summary.is_empty
    _settle(
        repo,
        session.session_id,
        Outcome.EMPTY if empty else Outcome.TRANSCRIPT_STORED,
        "the live transcript has no speech" if empty else None,
        clock,
        transcript=live.figures,
        stored=True,
    )
    return FetchResult(
        FetchOutcome.EMPTY if empty else FetchOutcome.STORED,
        session.session_id,
        keys=live.figures["keys"],
        summary=live.summary,
    )


@runtime_checkable
class TaggingStore(Protocol):
    """A ``TranscriptStore`` that keeps a tag on an object and reads it back (S3: user metadata)."""

    def put_file(
        self, key: str, path: str, *, content_type: str, content_encoding: str | None = None, tag: str | None = None
    ) -> None: ...

    def stored_tag(self, key: str) -> str | None: ...


# Bump when the rendering changes, so objects made by an older version are written again.
_RENDER_VERSION = "1"
# The object written last, after the other three are in: its tag says the whole set is stored.
_MARKER = "txt"
_TYPES = {"json": "application/json", "txt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}


def _gzip_copy(raw_path: str, gz_path: str) -> tuple[int, int]:
    """Gzip the raw body (level 1, no timestamp: the same body gives the same bytes); (crc32, size)."""
    crc, size = 0, 0
    # Level 1: the raw copy is an archive of the provider's answer, kept whole. Level 6 took
    # 2.5x the CPU for a quarter fewer bytes (a 10 MB transcript). zlib and crc32 let go of the
    # GIL on a chunk this size, so this runs beside the parsing on another core.
    with (
        open(raw_path, "rb") as src,
        open(gz_path, "wb") as out,
        gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=out, mtime=0) as gz,
    ):
        while chunk := src.read(_COPY_CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            gz.write(chunk)
    return crc, size


def _submit(pool: ThreadPoolExecutor, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
    """``pool.submit`` in a copy of the caller's context (its logging and tracing fields go along)."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _digest(transcript_id: str | None, crc: int, size: int, metadata: dict[str, Any]) -> str:
    """What the four objects are made from: the provider's body (by size and CRC-32), the
    metadata written into them and the rendering's version."""
    made_of = json.dumps([_RENDER_VERSION, transcript_id, size, crc, metadata], sort_keys=True, default=str)
    return hashlib.sha256(made_of.encode()).hexdigest()


def _store(
    session: Session,
    raw_path: str,
    tmp: str,
    *,
    repo: MeetingsAndSessions,
    store: TranscriptStore,
    clock: Clock,
    now: datetime,
) -> FetchResult:
    meeting = repo.get_meeting(session.meeting_key)
    prefix = transcript_prefix(session, meeting.start if meeting else None, now)
    keys = {
        "raw": prefix + "raw.json.gz",
        "json": prefix + "transcript.json",
        "txt": prefix + "transcript.txt",
        "vtt": prefix + "transcript.vtt",
    }
    metadata = _metadata(session, meeting)
    tagging = store if isinstance(store, TaggingStore) else None
    gz_path = os.path.join(tmp, "raw.json.gz")

    def keep_raw() -> tuple[str, bool]:
        """Gzip the raw body and, unless this very set is stored already, upload it.

        The raw body goes up whatever happens to parsing: the provider's answer is kept.
        """
        crc, size = _gzip_copy(raw_path, gz_path)
        digest = _digest(session.transcript_id, crc, size, metadata)
        # One HeadObject: a retried job (or a second one racing for the session) finds the set in.
        if tagging is not None and tagging.stored_tag(keys[_MARKER]) == digest:
            return digest, True
        store.put_file(keys["raw"], gz_path, content_type="application/json", content_encoding="gzip")
        return digest, False

    paths = {fmt: os.path.join(tmp, f"transcript.{fmt}") for fmt in ("json", "txt", "vtt")}
    # At most three uploads at once (each big one sends two parts at a time): bounded memory.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="transcript-upload") as pool:
        raw_kept = _submit(pool, keep_raw)
        try:
            with (
                open(raw_path, "rb") as raw,
                open(paths["json"], "wb") as jout,
                open(paths["txt"], "wb") as tout,
                open(paths["vtt"], "wb") as vout,
            ):
                writer = TranscriptWriter(jout, tout, vout, metadata)
                for segment in iter_segments(raw):
                    writer.add(normalise_segment(segment))
                summary = writer.close()
        except TranscriptFormatError as exc:
            raw_kept.result()
            why = f"transcript stored raw but unreadable: {exc}"
            _settle(
                repo,
                session.session_id,
                Outcome.TRANSCRIPTION_FAILED,
                why,
                clock,
                transcript={"raw_key": keys["raw"]},
            )
            return FetchResult(FetchOutcome.FAILED, session.session_id, reason=why, keys={"raw": keys["raw"]})
        digest, already = raw_kept.result()
        if not already:
            others = [
                _submit(pool, store.put_file, keys[fmt], path, content_type=_TYPES[fmt])
                for fmt, path in paths.items()
                if fmt != _MARKER
            ]
            for upload in others:
                upload.result()
            if tagging is not None:
                tagging.put_file(keys[_MARKER], paths[_MARKER], content_type=_TYPES[_MARKER], tag=digest)
            else:
                store.put_file(keys[_MARKER], paths[_MARKER], content_type=_TYPES[_MARKER])

    outcome = Outcome.EMPTY if summary.is_empty else Outcome.TRANSCRIPT_STORED
    figures = {
        "bucket": store.bucket,
        "source": "post_call",
        "keys": keys,
        "turns": summary.turns,
        "words": summary.words,
        "speakers": summary.speakers[:50],
        "speaker_count": len(summary.speakers),
        "duration_seconds": round(summary.duration_seconds, 3),
        "stored_at": to_iso(clock.now()),
    }
    reason = "the transcript has no speech" if summary.is_empty else None
    settled = _settle(repo, session.session_id, outcome, reason, clock, transcript=figures, stored=True)
    return FetchResult(
        FetchOutcome.EMPTY if summary.is_empty else FetchOutcome.STORED,
        session.session_id,
        keys=keys,
        summary=summary,
        settled=settled,
    )


def _converge_with_provider(session: Session, *, repo: Sessions, provider: BotProvider, clock: Clock) -> str | None:
    """On a 202, bring the session up to date with the provider's record of the bot.

    Returns the outcome's reason when that record settles the session without a transcript.
    """

    if session.bot_id is None or session.stop_reason is not None:
        return None
    try:
        detail = provider.bot_detail(session.bot_id)
    except ProviderError:
        return None  # keep retrying the transcript; the reconciler will look again later
    apply_provider_timeline(repo, session.session_id, session.bot_id, detail, clock)
    latest = repo.get_session(session.session_id)
    if latest is not None and latest.outcome is not None and latest.transcript_state is not TranscriptState.STORED:
        return latest.outcome_reason or latest.outcome.value
    return None


def _count_try(repo: Sessions, session_id: str, clock: Clock) -> None:
    """Record that the fetcher is still at it, so the reconciler does not take it for lost."""

    def bump(current: Session) -> Session | None:
        if current.outcome is not None or current.transcript_state is TranscriptState.STORED:
            return None
        current.transcript_tries += 1
        return current

    update_session(repo, session_id, bump, clock)


def _remember_transcript_id(repo: Sessions, session_id: str, transcript_id: str, clock: Clock) -> None:
    def keep(current: Session) -> Session | None:
        if current.transcript_id:
            return None
        current.transcript_id = transcript_id
        return current

    update_session(repo, session_id, keep, clock)


def _settle(
    repo: Sessions,
    session_id: str,
    outcome: Outcome,
    reason: str | None,
    clock: Clock,
    *,
    transcript: dict[str, Any] | None = None,
    stored: bool = False,
) -> Session | None:
    """Settle the session; the session as written, or None when there was nothing to write."""

    def settle(current: Session) -> Session | None:
        if current.transcript_state is TranscriptState.STORED:
            return None
        # A stored transcript outranks an earlier verdict (e.g. a failed bot with partial media).
        if current.outcome is not None and not stored:
            if transcript:
                current.transcript = {**current.transcript, **transcript}
                return current
            return None
        current.outcome = outcome
        current.outcome_reason = reason[:500] if reason else None
        current.transcript_state = TranscriptState.STORED if stored else TranscriptState.FAILED
        current.transcript_job_pending = False
        if transcript:
            current.transcript = {**current.transcript, **transcript}
        return current

    return update_session(repo, session_id, settle, clock)


def _span(length: timedelta) -> str:
    """A retry budget as a person reads it: "30 minutes", or "90 seconds" when under ten minutes."""
    seconds = int(length.total_seconds())
    return f"{seconds // 60} minutes" if seconds >= 600 else f"{seconds} seconds"
