"""MeetStream as meetpilot's BotProvider, over the official ``meetstream`` SDK.

The SDK's own retries are off (``max_retries=0``): meetpilot decides when to retry, from the error
class raised here (``ProviderRetryable`` and its ``retry_after``). Every SDK error becomes one of
``meetpilot.errors.Provider*``; the provider's own ``message`` is kept, the API key never is.

Replays. ``create_bot`` answers 201 for a new bot, 507 for a replay of an ``Idempotency-Key`` and
200 for a ``deduplication_key`` hit; the SDK returns all three as plain bodies. The status is read
from an httpx response hook installed on the HTTP client (a thread-local keeps concurrent callers
apart). Should the status be unknown, a ``message`` in the body marks a replay: a 201 body has none.

Transcripts are downloaded with a streamed GET on the same HTTP client rather than the SDK, whose
``transcripts.get`` parses the whole JSON document into memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
import meetstream

from meetpilot.app.ports import BotRequest, CreatedBot
from meetpilot.domain.clock import to_iso
from meetpilot.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    TranscriptNotReady,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.meetstream.ai/api/v1"

# Providers that produce a post-call transcript (and so a transcript_id).
POST_CALL_PROVIDERS = frozenset({"deepgram", "assemblyai", "sarvam", "jigsawstack", "meetstream"})
_PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {
    "deepgram": {"model": "nova-3", "language": "en"},
    "assemblyai": {"speech_models": ["universal-2"], "language_code": "en_us"},
}
_CHUNK_BYTES = 64 * 1024
_ERROR_BODY_LIMIT = 64 * 1024  # an error body is read at most this far
_USER_AGENT = "meetpilot"

T = TypeVar("T")


class MeetStreamProvider:
    """BotProvider over the MeetStream REST API.

    >>> provider = MeetStreamProvider(lambda: secrets.api_key(), timeout=10.0)
    >>> created = provider.create_bot(request, idempotency_key=session.idempotency_key)

    ``api_key`` is called on every operation (the caller caches it); the SDK client is built on
    first use, reused while the key stays the same, and rebuilt when it changes (rotation). One
    ``httpx.Client`` serves every call; pass ``http_client`` to share one, else it is created here.
    A supplied client gets one extra response hook (it records the status and Retry-After of the
    last answer for this provider, per thread); its other settings are left as they are.
    """

    def __init__(
        self,
        api_key: Callable[[], str],
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = http_client
        self._owns_http = http_client is None
        if http_client is not None:
            http_client.event_hooks["response"] = [*http_client.event_hooks["response"], self._remember]
        self._sdk: meetstream.MeetStream | None = None
        self._lock = threading.Lock()
        self._last = threading.local()

    def __repr__(self) -> str:
        return f"MeetStreamProvider(base_url={self._base_url!r}, timeout={self._timeout!r})"

    def close(self) -> None:
        """Close the HTTP client if this provider created it."""
        with self._lock:
            if self._owns_http and self._http is not None:
                self._http.close()
                self._http = None
            self._sdk = None

    # --- BotProvider ------------------------------------------------------------------------

    def create_bot(self, request: BotRequest, *, idempotency_key: str) -> CreatedBot:
        body = create_bot_body(request)
        result = self._call("create_bot", lambda sdk: sdk.bots.create(body, idempotency_key=idempotency_key))
        status: int | None = getattr(self._last, "status", None)
        if not isinstance(result, Mapping) or not isinstance(result.get("bot_id"), str) or not result["bot_id"]:
            raise ProviderError("MeetStream create_bot answered without a bot_id", status=status)
        replayed = status in (200, 507) if status is not None else bool(result.get("message"))
        bot_id: str = result["bot_id"]
        transcript_id = result.get("transcript_id") or None
        if replayed:
            logger.info("MeetStream create_bot replay (HTTP %s) returned bot %s", status, bot_id)
            if transcript_id is None and request.transcript_provider in POST_CALL_PROVIDERS:
                # A replay may answer transcript_id: null; the bot record still has it.
                transcript_id = self.find_transcript_id(bot_id)
        raw_status = result.get("status")
        return CreatedBot(
            bot_id=bot_id,
            transcript_id=str(transcript_id) if transcript_id else None,
            status=raw_status if isinstance(raw_status, str) else None,
            replayed=replayed,
        )

    def bot_status(self, bot_id: str) -> str | None:
        result = self._call("status", lambda sdk: sdk.bots.status(bot_id))
        status = result.get("status") if isinstance(result, Mapping) else None
        return status if isinstance(status, str) else None

    def bot_detail(self, bot_id: str) -> Mapping[str, Any]:
        """The ``bot_details`` object of ``/bots/{id}/detail`` (the whole body if it has none)."""
        result = self._call("detail", lambda sdk: sdk.bots.detail(bot_id))
        if not isinstance(result, Mapping):
            return {}
        details = result.get("bot_details")
        return details if isinstance(details, Mapping) else result

    def find_transcript_id(self, bot_id: str) -> str | None:
        return find_transcript_id_in(self.bot_detail(bot_id))

    def remove_bot(self, bot_id: str) -> None:
        self._call("remove_bot", lambda sdk: sdk.bots.remove(bot_id))

    def reschedule_bot(self, bot_id: str, join_at: datetime) -> None:
        when = to_iso(join_at)
        self._call("reschedule_bot", lambda sdk: sdk.calendar.reschedule_bot(bot_id, when))

    def cancel_scheduled_bot(self, bot_id: str) -> None:
        self._call("cancel_scheduled_bot", lambda sdk: sdk.calendar.delete_scheduled_bot(bot_id))

    def delete_bot_data(self, bot_id: str) -> int:
        """Erase the provider's copy (media, transcripts); return the objects it says it deleted."""
        result = self._call("delete_bot_data", lambda sdk: sdk.bots.delete_data(bot_id))
        deleted = result.get("deleted_objects") if isinstance(result, Mapping) else None
        return deleted if isinstance(deleted, int) else 0

    def download_transcript(self, transcript_id: str, sink: BinaryIO) -> int:
        """Stream the processed transcript into ``sink`` in 64 KiB pieces; return the byte count.

        On an error raised mid-body, ``sink`` holds a partial document: discard it.
        """
        key = self._key()
        http = self._http_client()
        url = f"{self._base_url}/transcript/{quote(transcript_id, safe='')}/get_transcript"
        headers = {"Authorization": f"Token {key}", "Accept": "application/json", "User-Agent": _USER_AGENT}
        try:
            with http.stream("GET", url, params={"raw": "false"}, headers=headers, timeout=self._timeout) as response:
                if response.status_code != 200:
                    raise self._error_from_response("get_transcript", response, key)
                written = 0
                for chunk in response.iter_bytes(chunk_size=_CHUNK_BYTES):
                    sink.write(chunk)
                    written += len(chunk)
                return written
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"MeetStream get_transcript timed out after {self._timeout:g}s; try again later"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"MeetStream get_transcript failed: could not reach the API ({type(exc).__name__})"
            ) from None

    # --- plumbing ---------------------------------------------------------------------------

    def _key(self) -> str:
        key = (self._api_key() or "").strip()
        if not key:
            raise ProviderAuthError("The MeetStream API key is empty; set the API key parameter in SSM")
        return key

    def _http_client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout, event_hooks={"response": [self._remember]})
            return self._http

    def _client(self, key: str) -> meetstream.MeetStream:
        http = self._http_client()
        with self._lock:
            if self._sdk is None or self._sdk.http.api_key != key:
                logger.debug("building the MeetStream client for %s", self._base_url)
                self._sdk = meetstream.MeetStream(
                    api_key=key, base_url=self._base_url, timeout=self._timeout, max_retries=0, http_client=http
                )
            return self._sdk

    def _remember(self, response: httpx.Response) -> None:
        self._last.status = response.status_code
        self._last.retry_after = response.headers.get("retry-after")

    def _call(self, operation: str, action: Callable[[meetstream.MeetStream], T]) -> T:
        key = self._key()
        sdk = self._client(key)
        self._last.status = None
        self._last.retry_after = None
        try:
            return action(sdk)
        except meetstream.MeetStreamError as exc:
            raise self._translate(operation, exc, key) from None

    def _translate(self, operation: str, exc: meetstream.MeetStreamError, key: str) -> ProviderError:
        if isinstance(exc, meetstream.TimeoutError):
            return ProviderUnavailable(f"MeetStream {operation} timed out after {self._timeout:g}s; try again later")
        if isinstance(exc, meetstream.ConnectionError):
            return ProviderUnavailable(_redact(f"MeetStream {operation} failed: {exc.message}", key))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is None:
            retry_after = parse_retry_after(getattr(self._last, "retry_after", None))
        return error_for_status(operation, exc.status, _redact(exc.message, key), retry_after)

    def _error_from_response(self, operation: str, response: httpx.Response, key: str) -> ProviderError:
        raw = bytearray()
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) >= _ERROR_BODY_LIMIT:
                break
        message = _redact(_message_from(bytes(raw[:_ERROR_BODY_LIMIT]), response.status_code), key)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return error_for_status(operation, response.status_code, message, retry_after)


def create_bot_body(request: BotRequest) -> dict[str, Any]:
    """The MeetStream ``create_bot`` body for a BotRequest."""
    body: dict[str, Any] = {
        "meeting_link": request.meeting_url,
        "bot_name": request.bot_name,
        "video_required": False,  # the API defaults to true; meetpilot only needs audio
        "callback_url": request.callback_url,
        "deduplication_key": request.deduplication_key,
        "custom_attributes": dict(request.custom_attributes),
    }
    if request.join_at is not None:
        body["join_at"] = to_iso(request.join_at)
    if request.automatic_leave:
        body["automatic_leave"] = dict(request.automatic_leave)
    if request.transcript_provider:
        options = dict(_PROVIDER_DEFAULTS.get(request.transcript_provider, {}))
        body["recording_config"] = {"transcript": {"provider": {request.transcript_provider: options}}}
    if request.live_transcription_url:
        body["live_transcription_required"] = {"webhook_url": request.live_transcription_url}
    return body


def find_transcript_id_in(details: Mapping[str, Any]) -> str | None:
    """Search a bot record for its transcript id, breadth first (the layout varies between API
    versions: top level, nested under a transcription object, or in a list of runs)."""
    queue: deque[Any] = deque([details])
    while queue:
        node = queue.popleft()
        if isinstance(node, Mapping):
            for name, value in node.items():
                if str(name).replace("_", "").lower() == "transcriptid" and isinstance(value, str) and value:
                    return value
            queue.extend(value for name, value in node.items() if name != "RequestPayload")
        elif isinstance(node, list):
            queue.extend(node)
    return None


def error_for_status(operation: str, status: int | None, message: str, retry_after: float | None) -> ProviderError:
    """The meetpilot error for a MeetStream HTTP status."""
    text = f"MeetStream {operation} failed: {message}" + (f" (HTTP {status})" if status else "")
    if status == 202:
        return TranscriptNotReady(f"MeetStream {operation}: not ready yet: {message}", status=status)
    if status in (401, 403):
        return ProviderAuthError(text + "; check the MeetStream API key parameter", status=status)
    if status == 404:
        return ProviderNotFound(text, status=status)
    if status == 409:
        return ProviderConflict(text, status=status)
    if status == 429:
        return ProviderRateLimited(text, status=status, retry_after=retry_after)
    if status is not None and (status >= 500 or status == 408):
        return ProviderUnavailable(text, status=status, retry_after=retry_after)
    if status is not None and 400 <= status < 500:
        return ProviderRejected(text, status=status)
    return ProviderError(text, status=status)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (never negative)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _message_from(raw: bytes, status: int) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] or f"HTTP {status}"
    if isinstance(body, Mapping):
        for name in ("message", "detail", "error"):
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
    return f"HTTP {status}"


def _redact(text: str, key: str) -> str:
    return text.replace(key, "[redacted]") if key else text
