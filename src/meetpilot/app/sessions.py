"""Read-modify-write of a session with optimistic concurrency, shared by every use case.

Downstream events are not written here: the table's stream carries each write's old and new image
to the publisher (``app.stream_events``), which derives them from what changed.
"""

from __future__ import annotations

from collections.abc import Callable

from meetpilot.app.ports import Sessions
from meetpilot.domain.clock import Clock
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
        changed = change(current)
        if changed is None:
            return None
        try:
            return repo.save_session(changed, clock.now())
        except ConcurrentUpdate:
            continue
    raise ConcurrentUpdate(f"session {session_id} kept changing; giving up after {MAX_ATTEMPTS} tries")
