"""Microsoft Graph change and lifecycle notifications: answer the validation handshake, check each
notification's ``clientState``, queue one sync per calendar, answer at once.

A notification carries no event data, only "something changed under subscription X" with the
``clientState`` we gave that subscription; it is compared in constant time with the stored one
(an unknown subscription costs the same comparison), and a mismatch queues nothing. Lifecycle
notifications ask for more: ``missed`` a full round, ``reauthorizationRequired`` a renewal (PATCH)
before the round, ``subscriptionRemoved`` a new subscription and then a full round.

The handshake is answered before anything else is read: Graph gives the endpoint 10 seconds, and
its validation POST is not JSON.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meetpilot.app.ports import MessageQueue, PushChannels

MAX_SUBSCRIPTION_ID_LENGTH = 200
MAX_VALIDATION_TOKEN_LENGTH = 1024
# Compared against when no subscription is found, so an unknown id costs the same work.
_NO_CLIENT_STATE = "no-such-subscription-" + "x" * 32


@dataclass(frozen=True)
class GraphAnswer:
    """What Graph gets back: ``text`` for the handshake, else a small JSON body."""

    status: int
    reason: str
    text: str | None = None
    calendar_ids: tuple[str, ...] = ()
    rejected: int = 0
    lifecycle: dict[str, int] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        return {"message": self.reason}


def validation_answer(query: Mapping[str, str] | None) -> GraphAnswer | None:
    """The handshake's answer when Graph is validating the URL (``?validationToken=``), else None.

    API Gateway hands the query value decoded; the decoded token is what must come back.
    """
    if not query or "validationToken" not in query:
        return None
    token = str(query["validationToken"])
    if not token or len(token) > MAX_VALIDATION_TOKEN_LENGTH:
        return GraphAnswer(400, "validation token missing or too long")
    return GraphAnswer(200, "validation", text=token)


def receive_graph_notification(
    query: Mapping[str, str] | None,
    body: str | bytes | None,
    *,
    repo: PushChannels,
    queue: MessageQueue,
) -> GraphAnswer:
    """Answer the handshake, or queue a sync of every calendar a genuine notification names (202).

    A body that is not a notification batch is 400; notifications whose subscription is unknown or
    whose ``clientState`` is wrong are counted in ``rejected`` and queue nothing. A queue that cannot
    be reached raises, so Graph gets a 5xx and delivers again.
    """
    handshake = validation_answer(query)
    if handshake is not None:
        return handshake
    try:
        data = json.loads(body or b"")
    except ValueError:
        return GraphAnswer(400, "body is not JSON")
    items = data.get("value") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        return GraphAnswer(400, "body has no value list")
    # Imported here, not at the top: the handshake above must not wait for pydantic.
    from meetpilot.app.messages import CalendarSyncJob

    jobs: dict[str, CalendarSyncJob] = {}
    rejected = 0
    lifecycle: dict[str, int] = {}
    for item in items:
        calendar_id = _authentic(item, repo)
        if calendar_id is None:
            rejected += 1
            continue
        event = item.get("lifecycleEvent")
        job = jobs.get(calendar_id) or CalendarSyncJob(calendar_id=calendar_id, reason="graph_notification")
        if isinstance(event, str) and event:
            lifecycle[event] = lifecycle.get(event, 0) + 1
            if event == "missed":
                job = job.updated(full=True, reason="graph_missed")
            elif event == "reauthorizationRequired":
                job = job.updated(renew_subscription=True, reason="graph_reauthorize")
            elif event == "subscriptionRemoved":
                job = job.updated(resubscribe=True, full=True, reason="graph_subscription_removed")
        jobs[calendar_id] = job
    for job in jobs.values():
        queue.send(job.to_body())
    reason = f"{len(jobs)} sync(s) queued" + (f", {rejected} notification(s) refused" if rejected else "")
    return GraphAnswer(202, reason, calendar_ids=tuple(jobs), rejected=rejected, lifecycle=lifecycle)


def _authentic(item: object, repo: PushChannels) -> str | None:
    """The calendar a notification is for, when its subscription is ours and its clientState matches."""
    if not isinstance(item, Mapping):
        return None
    sub_id = item.get("subscriptionId")
    state = item.get("clientState")
    channel = None
    if isinstance(sub_id, str) and sub_id and len(sub_id) <= MAX_SUBSCRIPTION_ID_LENGTH:
        channel = repo.get_channel(sub_id)
    expected = channel.token if channel is not None else _NO_CLIENT_STATE
    given = state if isinstance(state, str) else ""
    # Always compared, so the timing says nothing about whether the subscription exists.
    matches = hmac.compare_digest(given.encode(), expected.encode())
    if channel is None or not matches or not expected:
        return None
    return channel.calendar_id
