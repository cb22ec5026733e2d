"""The vocabulary of a bot session: its statuses (each with a rank), stop reasons and outcomes."""

from __future__ import annotations

from enum import StrEnum


class BotStatus(StrEnum):
    """Where a bot session is. Statuses only ever move to a higher rank."""

    PENDING = "pending"  # session claimed, create_bot not yet acknowledged by the provider
    SCHEDULED = "scheduled"  # provider accepted a bot with a future join_at
    JOINING = "joining"
    IN_WAITING_ROOM = "in_waiting_room"
    IN_MEETING = "in_meeting"
    RECORDING = "recording"
    LEAVING = "leaving"
    STOPPED = "stopped"  # the bot has left the meeting; post-call processing may follow
    DONE = "done"  # the provider finished post-call processing
    DISPATCH_FAILED = "dispatch_failed"  # the provider refused to create the bot

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_terminal(self) -> bool:
        """True once the bot can no longer be in the meeting."""
        return self.rank >= _RANK[BotStatus.STOPPED]


_RANK: dict[BotStatus, int] = {
    BotStatus.PENDING: 0,
    BotStatus.SCHEDULED: 10,
    BotStatus.JOINING: 20,
    BotStatus.IN_WAITING_ROOM: 30,
    BotStatus.IN_MEETING: 40,
    BotStatus.RECORDING: 50,
    BotStatus.LEAVING: 60,
    BotStatus.STOPPED: 70,
    BotStatus.DONE: 80,
    BotStatus.DISPATCH_FAILED: 90,
}


class StopReason(StrEnum):
    """Why the bot left (MeetStream puts it in ``bot_event`` of the terminal ``bot.stopped``)."""

    STOPPED = "stopped"  # clean exit: meeting ended, remove_bot, timeout
    KICKED = "kicked"  # removed by a participant; media up to then is kept
    NOT_ALLOWED = "not_allowed"  # waiting-room timeout, never admitted; no media
    DENIED = "denied"  # host refused the bot; no media; do not auto-retry
    FAILED = "failed"  # the bot crashed; partial media possible

    @property
    def has_media(self) -> bool:
        return self in (StopReason.STOPPED, StopReason.KICKED, StopReason.FAILED)


class TranscriptSignal(StrEnum):
    """What a post-call webhook says about the transcript."""

    PROCESSED = "processed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """How a session ended. Every stopped bot ends with exactly one of these (invariant 4)."""

    TRANSCRIPT_STORED = "transcript_stored"
    EMPTY = "empty"  # completed, transcript fetched, but nobody said anything
    NOT_ADMITTED = "not_admitted"
    DENIED = "denied"
    BOT_FAILED = "bot_failed"
    TRANSCRIPTION_FAILED = "transcription_failed"
    STREAMING_ONLY = "streaming_only"  # provider streams only; no post-call transcript exists
    NO_TRANSCRIPT = "no_transcript"  # no transcript was requested (no post-call provider)
    GAVE_UP = "gave_up"  # transcript still not ready after the retry budget
    DISPATCH_FAILED = "dispatch_failed"
    # The meeting was cancelled (in every calendar that had it) and its bot withdrawn: cancelled
    # while scheduled, or removed from the meeting. Nothing to review.
    CANCELLED = "cancelled"

    @property
    def is_success(self) -> bool:
        return self is Outcome.TRANSCRIPT_STORED

    @property
    def needs_review(self) -> bool:
        return self in (Outcome.BOT_FAILED, Outcome.GAVE_UP, Outcome.DISPATCH_FAILED)

    @property
    def rules_out_transcript(self) -> bool:
        """True when no post-call transcript can come any more, so a fetch would only wait.

        Not ``BOT_FAILED`` (a crashed bot may leave partial media) nor ``GAVE_UP`` (a verdict on
        waiting, not on the transcript: a late one is still stored and outranks it).
        """
        return self in _NO_TRANSCRIPT_POSSIBLE


_NO_TRANSCRIPT_POSSIBLE = frozenset(
    {
        Outcome.NOT_ADMITTED,
        Outcome.DENIED,
        Outcome.CANCELLED,
        Outcome.TRANSCRIPTION_FAILED,
        Outcome.STREAMING_ONLY,
        Outcome.NO_TRANSCRIPT,
        Outcome.DISPATCH_FAILED,
    }
)


class EventKind(StrEnum):
    """How meetpilot treats a normalised webhook event."""

    LIFECYCLE = "lifecycle"  # moves the status forward (scheduled .. leaving)
    TERMINAL = "terminal"  # bot.stopped with its reason
    ERROR = "error"  # bot.error: non-terminal, recorded only
    POST_CALL = "post_call"  # manifest/audio/video/transcription/uploading events
    DONE = "done"  # bot.done, the provider's last pipeline event
    DATA_DELETION = "data_deletion"
    PARTICIPANT = "participant"  # participant_events.join/leave
    UNKNOWN = "unknown"  # kept in history and counted, otherwise ignored
