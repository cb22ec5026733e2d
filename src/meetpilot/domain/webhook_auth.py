"""Who may deliver webhooks: capability tokens for per-bot callbacks, HMAC signatures for
workspace deliveries. Every comparison is constant-time; nothing here ever formats a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from meetpilot.domain.clock import parse_iso

_TOKEN_CONTEXT = b"meetpilot:callback:v1:"
# Live-transcript URLs get tokens of their own: one route's token never opens the other.
_LIVE_TOKEN_CONTEXT = b"meetpilot:live-transcript:v1:"
SIGNATURE_TOLERANCE_SECONDS = 300


def parse_secrets(value: str) -> tuple[str, ...]:
    """Split a secret parameter (the token or the signing secret): one secret per line (or comma);
    the first is current.

    During a rotation the parameter holds the new secret first and the old one second, so both
    are accepted; once the provider uses the new one, the old line is removed.
    """
    secrets = tuple(part.strip() for part in value.replace(",", "\n").splitlines() if part.strip())
    if not secrets:
        raise ValueError("the secret parameter is empty; put at least one secret in it")
    return secrets


def capability_token(secret: str, session_id: str, *, live: bool = False) -> str:
    """The token embedded in a session's callback URL: HMAC-SHA256 of the session id, base64url.

    ``live=True`` gives the token of the session's live-transcript URL instead.
    """
    context = _LIVE_TOKEN_CONTEXT if live else _TOKEN_CONTEXT
    digest = hmac.new(secret.encode(), context + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_capability_token(secrets: Sequence[str], session_id: str, token: str, *, live: bool = False) -> bool:
    """True when ``token`` was minted for ``session_id`` (and route kind) under any accepted secret."""
    if not token or not session_id:
        return False
    ok = False
    for secret in secrets:
        # No early exit: the time taken does not say which secret matched.
        ok |= hmac.compare_digest(capability_token(secret, session_id, live=live).encode(), token.encode())
    return ok


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-MeetStream-Signature`` value for a body: ``sha256=<lowercase hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secrets: Sequence[str], body: bytes, header: str | None) -> bool:
    """Check an HMAC-SHA256 signature over the raw body; the ``sha256=`` prefix is optional."""
    if not header:
        return False
    candidate = header.strip()
    if candidate.lower().startswith("sha256="):
        candidate = candidate[7:]
    candidate = candidate.lower()
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(expected.encode(), candidate.encode())
    return ok


def timestamp_problem(header: str | None, now: datetime, tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> str | None:
    """Why a delivery timestamp is unacceptable, or None if it is within the window."""
    if not header:
        return "missing X-MeetStream-Timestamp header"
    try:
        sent = parse_iso(header)
    except ValueError:
        return "X-MeetStream-Timestamp is not an ISO-8601 time with a zone"
    skew = (now - sent).total_seconds()
    if skew > tolerance:
        return "X-MeetStream-Timestamp is too old (replayed delivery?)"
    if skew < -tolerance:
        return "X-MeetStream-Timestamp is in the future"
    return None
