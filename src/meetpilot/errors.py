"""The errors meetpilot raises, as one small hierarchy.

Every message says what happened and, where there is one, what to do next. None of them ever
carries a secret (API key, webhook secret, capability token).
"""

from __future__ import annotations


class MeetpilotError(Exception):
    """Base class for every error meetpilot raises on purpose."""


class ConfigurationError(MeetpilotError):
    """A setting is missing or invalid; the message names the environment variable to fix."""


class InvalidInput(MeetpilotError):
    """Input from outside (a webhook, a meeting request, a queue message) cannot be used as is."""


class InvalidEvent(InvalidInput):
    """A webhook payload is not a MeetStream event we can read.

    ``reason`` is a short code for metrics and logs ("not_json", "bad_field", ...); the message is
    the one line a sender is told.
    """

    def __init__(self, message: str, *, reason: str = "invalid_event") -> None:
        super().__init__(message)
        self.reason = reason


class TranscriptFormatError(InvalidInput):
    """A transcript body is not one of the shapes MeetStream documents."""


class NotFound(MeetpilotError):
    """The meeting, session or bot asked for does not exist."""


class Conflict(MeetpilotError):
    """The request cannot be carried out in the current state (a transcript not stored yet, a meeting
    that calendars still want); the message says what would change that."""


class ConcurrentUpdate(MeetpilotError):
    """Someone else changed the item between our read and our conditional write; retry."""


# --- URLs a user gave ---------------------------------------------------------------------------


class RefusedDestination(InvalidInput):
    """A URL a user gave points inside (loopback, link-local, private, ...): meetpilot does not fetch it."""


class UnresolvableHost(InvalidInput):
    """The host of a URL a user gave has no address (a typo, or a name that was taken down)."""


class DeadlineExceeded(MeetpilotError):
    """A fetch took longer than its overall deadline (connecting, redirects and reading together)."""


# --- bot provider -----------------------------------------------------------------------------


class ProviderError(MeetpilotError):
    """The bot provider (MeetStream) answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderRejected(ProviderError):
    """4xx: the provider refused the request; retrying it unchanged will not help."""


class ProviderAuthError(ProviderRejected):
    """401/403: the MeetStream API key is missing, wrong or revoked. Check the SSM parameter."""


class ProviderNotFound(ProviderRejected):
    """404: the provider does not know this bot or transcript."""


class ProviderConflict(ProviderRejected):
    """409: a deduplication key was reused for a different meeting, or the bot is past that state."""


class ProviderRetryable(ProviderError):
    """A transient failure: try again later, after ``retry_after`` seconds when known."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderRateLimited(ProviderRetryable):
    """429: slow down; ``retry_after`` carries the provider's Retry-After when it sent one."""


class ProviderUnavailable(ProviderRetryable):
    """5xx, timeout or connection failure."""


class TranscriptNotReady(ProviderError):
    """202: the transcript is still being processed (or never will be, for streaming providers)."""
