"""Cancel a meeting nobody wants any more, and withdraw its bot wherever it is.

A meeting is cancelled once the last calendar event pointing at it is gone (and nobody asked for it
directly): its schedule is deleted, and a bot it already has is cancelled while it is only
scheduled, or removed from the call when the configuration says so. The session then ends with
``Outcome.CANCELLED``. Every step can be repeated, so an interrupted cancellation is finished by
running it again.
"""

from __future__ import annotations

import contextlib

from meetpilot.app.ports import BotProvider, DispatchScheduler, MeetingsAndSessions, Sessions
from meetpilot.app.sessions import update_session
from meetpilot.domain.clock import Clock
from meetpilot.domain.session import Session
from meetpilot.domain.status import BotStatus, Outcome
from meetpilot.errors import ProviderAuthError, ProviderNotFound, ProviderRejected


def withdraw_bot(
    session_id: str,
    *,
    repo: Sessions,
    provider: BotProvider,
    clock: Clock,
    remove_in_meeting: bool,
    reason: str,
) -> str:
    """Take a session's bot out of its meeting, as far as it got; returns what was done.

    ``bot_cancelled``: it was only scheduled. ``bot_removed``: it was joining or in the call.
    ``bot_left_in_meeting``: it is in the call and ``remove_in_meeting`` is off, so it records as
    usual. ``no_bot``: nothing was created yet (a dispatcher mid-create checks the meeting after
    creating and withdraws its bot itself). ``already_over``: the session had ended anyway.
    Provider errors other than "no such bot" propagate, so the caller's message is retried.
    """
    session = repo.get_session(session_id)
    if session is None or session.outcome is not None or session.status.is_terminal:
        return "already_over"
    if session.bot_id is None:
        _mark_cancelled(repo, session_id, reason, clock)
        return "no_bot"
    action: str | None = None
    if session.status.rank <= BotStatus.SCHEDULED.rank:
        try:
            provider.cancel_scheduled_bot(session.bot_id)
            action = "bot_cancelled"
        except ProviderNotFound:
            action = "bot_cancelled"  # the provider no longer has it: nothing left to cancel
        except ProviderAuthError:
            raise
        except ProviderRejected:
            action = None  # it joined meanwhile (the webhook has not arrived yet): remove it instead
    if action is None:
        if not remove_in_meeting:
            return "bot_left_in_meeting"
        with contextlib.suppress(ProviderNotFound):  # already gone
            provider.remove_bot(session.bot_id)
        action = "bot_removed"
    _mark_cancelled(repo, session_id, reason, clock)
    return action


def _mark_cancelled(repo: Sessions, session_id: str, reason: str, clock: Clock) -> None:
    def mark(current: Session) -> Session | None:
        if current.outcome is not None:
            return None
        current.outcome = Outcome.CANCELLED
        current.outcome_reason = reason[:500]
        return current

    update_session(repo, session_id, mark, clock)


def cancel_meeting(
    key: str,
    *,
    repo: MeetingsAndSessions,
    scheduler: DispatchScheduler,
    provider: BotProvider,
    clock: Clock,
    remove_in_meeting: bool,
    reason: str = "the meeting was cancelled in every calendar that had it",
) -> str:
    """Cancel a meeting unless something still wants it; returns what happened to its bot.

    ``kept``: an event or a direct request still wants it (nothing changed). Otherwise the meeting
    is ``desired=cancelled`` (the dispatch claim refuses it), its schedule is gone, and the answer
    is ``cancelled`` (no bot yet) or what ``withdraw_bot`` did.
    """
    old = repo.cancel_meeting(key)
    if old is None:
        return "kept"
    scheduler.unschedule(key)
    if old.dispatch_at is not None and old.dispatch_at > clock.now():
        scheduler.release_slot(old.dispatch_at)  # its place in the plan goes to another meeting
    if not old.session_id:
        return "cancelled"
    return withdraw_bot(
        old.session_id, repo=repo, provider=provider, clock=clock, remove_in_meeting=remove_in_meeting, reason=reason
    )
