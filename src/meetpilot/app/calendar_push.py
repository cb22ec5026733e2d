"""Google Calendar push notifications: authenticate the channel, queue a sync, answer at once.

A notification carries no event data, only "something changed on the calendar behind channel X"
(``X-Goog-Channel-ID``) with the token we gave that channel (``X-Goog-Channel-Token``). Both are
checked in constant time against the stored channel; anything else is 401 and nothing is queued.
The first message of every channel (``X-Goog-Resource-State: sync``) only says it is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meetpilot.app.messages import CalendarSyncJob
from meetpilot.app.ports import MessageQueue, PushChannels
from meetpilot.domain.calendar import channel_matches, push_resource_state

MAX_CHANNEL_ID_LENGTH = 200
# Compared against when no channel is found, so an unknown channel id costs the same work.
_NO_CHANNEL_TOKEN = "no-such-channel-" + "x" * 32


@dataclass(frozen=True)
class PushResult:
    status: int
    reason: str
    calendar_id: str | None = None

    @property
    def body(self) -> dict[str, str]:
        return {"message": self.reason}


def receive_google_push(headers: Mapping[str, str], *, repo: PushChannels, queue: MessageQueue) -> PushResult:
    """Check a notification and queue a sync of its calendar; the status is what Google gets back."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    channel_id = lowered.get("x-goog-channel-id", "").strip()
    channel = None
    if channel_id and len(channel_id) <= MAX_CHANNEL_ID_LENGTH:
        channel = repo.get_channel(channel_id)
    expected_id = channel.channel_id if channel else channel_id or "-"
    expected_token = channel.token if channel else _NO_CHANNEL_TOKEN
    if not channel_matches(expected_id, expected_token, lowered) or channel is None:
        return PushResult(401, "unknown channel or wrong channel token")
    if push_resource_state(lowered) == "sync":
        return PushResult(200, "channel open; nothing to sync", channel.calendar_id)
    queue.send(CalendarSyncJob(calendar_id=channel.calendar_id, reason="push").to_body())
    return PushResult(200, "sync queued", channel.calendar_id)
