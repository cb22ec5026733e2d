"""Read-modify-write of a session with optimistic concurrency, shared by every use case.

Every write also records, in the same conditional write, the events downstream consumers get for
it (a status or outcome change, a stored transcript): the session's outbox. ``publish_outbox``
sends them afterwards and clears what EventBridge accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meetpilot.app.ports import EventPublisher, Sessions
from meetpilot.domain.clock import Clock
from meetpilot.domain.notifications import OUTBOX_CAP, status_changed, transcript_ready
from meetpilot.domain.session import Session
from meetpilot.errors import ConcurrentUpdate, NotFound

MAX_ATTEMPTS = 8


def update_session(
    repo: Sessions,
    session_id: str,
    change: Callable[[Session], Session | None],
    clock: Clock,
    *,
    read: Session | None = None,
) -> Session | None:
    """Apply ``change`` to the latest stored session and write it conditionally.

    ``change`` returns the new session, or None when there is nothing to write. It may be called
    more than once (after a concurrent update), so it must be a pure function of its input.
    ``read`` is the session as the caller just read or wrote it: the first try starts from it
    instead of reading it again (a stale copy only costs a retry). Returns the written session, or
    None when nothing was written.
    """
    for attempt in range(MAX_ATTEMPTS):
        current = read if attempt == 0 and read is not None else repo.get_session(session_id)
        if current is None:
            raise NotFound(f"session {session_id} does not exist")
        # ``change`` may edit ``current`` in place: remember what the events compare against.
        before = (current.status, current.outcome, _transcript_json_key(current), current.version)
        changed = change(current)
        if changed is None:
            return None
        _record_events(before, changed, clock)
        try:
            return repo.save_session(changed, clock.now())
        except ConcurrentUpdate:
            continue
    raise ConcurrentUpdate(f"session {session_id} kept changing; giving up after {MAX_ATTEMPTS} tries")


def _transcript_json_key(session: Session) -> str | None:
    keys = session.transcript.get("keys") if session.transcript else None
    key = keys.get("json") if isinstance(keys, dict) else None
    return key if isinstance(key, str) else None


def _record_events(before: tuple[Any, ...], after: Session, clock: Clock) -> None:
    old_status, old_outcome, old_json_key, version = before
    now = clock.now()
    entries: list[dict[str, Any]] = []
    if after.status is not old_status or after.outcome is not old_outcome:
        entries.append(
            status_changed(
                session_id=after.session_id,
                meeting_key=after.meeting_key,
                bot_id=after.bot_id,
                old_status=old_status,
                new_status=after.status,
                old_outcome=old_outcome,
                new_outcome=after.outcome,
                outcome_reason=after.outcome_reason,
                version=version + 1,
                at=now,
            )
        )
    json_key = _transcript_json_key(after)
    if json_key is not None and json_key != old_json_key:
        # A transcript (or, after a failed post-call transcription, the partial live one) landed.
        entries.append(
            transcript_ready(
                session_id=after.session_id,
                meeting_key=after.meeting_key,
                bot_id=after.bot_id,
                transcript=after.transcript,
                outcome=after.outcome,
                at=now,
            )
        )
    if entries:
        # Bounded: if EventBridge stays unreachable for long, the oldest events give way.
        after.outbox = [*after.outbox, *entries][-OUTBOX_CAP:]


@dataclass(frozen=True)
class PublishReport:
    published: list[dict[str, Any]] = field(default_factory=list)  # outbox entries EventBridge accepted
    failed: int = 0  # entries left in the outbox for a later try
    error: str | None = None  # why publishing failed, without any payload


def publish_outbox(repo: Sessions, publisher: EventPublisher, session_id: str, clock: Clock) -> PublishReport:
    """Publish a session's pending events and drop the accepted ones from its outbox.

    Never raises for a publishing failure: the state change is already stored and the events stay
    in the outbox, where the next write of the session or the reconciler's next round (the outbox
    keeps the session in its index) picks them up. Consumers may see an event twice (the outbox
    is cleared after EventBridge accepted it); ``detail.event_id`` is stable, so they can dedupe.
    """
    session = repo.get_session(session_id)
    if session is None or not session.outbox:
        return PublishReport()
    pending = list(session.outbox)
    try:
        accepted = publisher.publish(pending)
    except Exception as exc:  # any failure: keep the events, never fail the caller's work
        return PublishReport(failed=len(pending), error=type(exc).__name__)
    done = {entry["detail"]["event_id"] for entry in pending if entry["detail"]["event_id"] in accepted}

    def drop(current: Session) -> Session | None:
        kept = [e for e in current.outbox if e["detail"]["event_id"] not in done]
        if len(kept) == len(current.outbox):
            return None
        current.outbox = kept
        return current

    if done:
        update_session(repo, session_id, drop, clock)
    published = [entry for entry in pending if entry["detail"]["event_id"] in done]
    failed = len(pending) - len(published)
    return PublishReport(published, failed, None if not failed else "rejected by EventBridge")
