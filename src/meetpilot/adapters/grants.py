"""The OAuth grants behind connected calendars: the app's OAuth clients from SSM SecureStrings, the
users' refresh tokens sealed with the stack's KMS key and bound to their calendar.

A sealed token is ``kms1:`` and the base64 of a KMS ciphertext made with the encryption context
``{"meetpilot:calendar": <calendar id>}``: KMS refuses to open it under any other calendar id, so a
sealed token copied onto another calendar's item is useless. Messages name the parameter, the key
or the calendar, never a value::

    grants = KmsSsmGrants(kms, ssm, repo=calendars, key_id="alias/meetpilot-calendar-grants",
                          client_params={CalendarKind.GOOGLE: "/meetpilot/oauth/google"})
    sealed = grants.seal(refresh_token, calendar_id="google-0123")
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.exceptions import BotoCoreError, ClientError

from meetpilot.app.ports import Calendars
from meetpilot.domain.calendar import AccessRevoked, Calendar, CalendarKind, CalendarSourceError, OAuthClient

SEAL_PREFIX = "kms1:"
CONTEXT_KEY = "meetpilot:calendar"
# OAuth clients are re-read this often: a rotated client secret reaches warm instances within it.
CLIENT_CACHE_SECONDS = 300

_CLIENT_FIELDS: Mapping[CalendarKind, tuple[str, ...]] = {
    CalendarKind.GOOGLE: ("client_id", "client_secret"),
    CalendarKind.MICROSOFT: ("client_id", "client_secret", "tenant"),
}
_PROVIDER_NAMES = {CalendarKind.GOOGLE: "Google", CalendarKind.MICROSOFT: "Microsoft"}
# KMS errors that mean this ciphertext will never open here (as opposed to KMS having a bad minute).
_WILL_NOT_OPEN = ("InvalidCiphertextException", "IncorrectKeyException")
_RETRYABLE_KMS = ("KMSInternalException", "DependencyTimeoutException", "ThrottlingException", "LimitExceededException")


class KmsSsmGrants:
    """``app.ports.CalendarGrants`` on KMS (sealing) and SSM Parameter Store (OAuth clients)."""

    def __init__(
        self,
        kms: Any,
        ssm: Any,
        *,
        repo: Calendars,
        key_id: str,
        client_params: Mapping[CalendarKind, str],
    ) -> None:
        self._kms = kms
        self._parameters = SSMProvider(boto3_client=ssm)
        self._repo = repo
        self._key_id = key_id
        self._client_params = dict(client_params)
        # kind -> (fingerprint of the parameter's value, the client read from it)
        self._clients: dict[CalendarKind, tuple[str, OAuthClient]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KmsSsmGrants(key_id={self._key_id!r})"

    # --- OAuth clients ----------------------------------------------------------------------------

    def client(self, kind: CalendarKind) -> OAuthClient:
        """The app's OAuth client for ``kind``, read from its SecureString and cached per warm instance."""
        fields = _CLIENT_FIELDS.get(kind)
        name = self._client_params.get(kind)
        if fields is None or not name:
            raise CalendarSourceError(f"{kind.value} calendars need no OAuth client")
        provider = _PROVIDER_NAMES[kind]
        shape = ", ".join(f'"{f}": ...' for f in fields)
        try:
            text = self._parameters.get(name, decrypt=True, max_age=CLIENT_CACHE_SECONDS)
        except Exception as exc:  # Powertools wraps every failure in GetParameterError; its text names no value
            if "ParameterNotFound" in str(exc):
                raise CalendarSourceError(
                    f"the {provider} OAuth client is not configured: create the SSM SecureString {name} "
                    f"holding {{{shape}}}"
                ) from None
            raise CalendarSourceError(
                f"cannot read the {provider} OAuth client from SSM parameter {name}: {type(exc).__name__}",
                retryable=True,
            ) from None
        if not isinstance(text, str):
            raise CalendarSourceError(f"SSM parameter {name} is not a string")
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            cached = self._clients.get(kind)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
        client = _parse_client(text, name=name, fields=fields, provider=provider)
        with self._lock:
            self._clients[kind] = (fingerprint, client)
        return client

    # --- refresh tokens ---------------------------------------------------------------------------

    def seal(self, refresh_token: str, *, calendar_id: str) -> str:
        """KMS-encrypt a refresh token under the stack's key, bound to ``calendar_id``."""
        if not refresh_token or not calendar_id:
            raise ValueError("sealing needs a refresh token and the calendar it belongs to")
        try:
            answer = self._kms.encrypt(
                KeyId=self._key_id,
                Plaintext=refresh_token.encode("utf-8"),
                EncryptionContext={CONTEXT_KEY: calendar_id},
            )
        except (ClientError, BotoCoreError) as exc:
            raise CalendarSourceError(
                f"could not seal the refresh token of calendar {calendar_id} with KMS key {self._key_id}: "
                f"{_code(exc)}; the function needs kms:Encrypt on it",
                retryable=_code(exc) in _RETRYABLE_KMS or isinstance(exc, BotoCoreError),
            ) from None
        return SEAL_PREFIX + base64.b64encode(answer["CiphertextBlob"]).decode("ascii")

    def refresh_token(self, calendar: Calendar) -> str:
        """Open the calendar's sealed refresh token.

        A calendar without one, or whose seal does not open under its own id (copied from another
        calendar, damaged), raises AccessRevoked: only a new token helps. KMS unreachable or
        throttling is a retryable CalendarSourceError.
        """
        sealed = calendar.sealed_refresh_token
        cid = calendar.calendar_id
        if not sealed:
            raise AccessRevoked(f"calendar {cid} holds no refresh token; reconnect it with a new one", status=None)
        blob = _ciphertext(sealed)
        if blob is None:
            raise AccessRevoked(f"the stored refresh token of calendar {cid} is damaged; reconnect it", status=None)
        try:
            answer = self._kms.decrypt(CiphertextBlob=blob, KeyId=self._key_id, EncryptionContext={CONTEXT_KEY: cid})
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc)
            if code in _WILL_NOT_OPEN:
                raise AccessRevoked(
                    f"the stored refresh token of calendar {cid} does not open for this calendar; reconnect it",
                    status=None,
                ) from None
            raise CalendarSourceError(
                f"could not open the refresh token of calendar {cid} with KMS key {self._key_id}: {code}; "
                "the function needs kms:Decrypt on it",
                retryable=code in _RETRYABLE_KMS or isinstance(exc, BotoCoreError),
            ) from None
        try:
            return bytes(answer["Plaintext"]).decode("utf-8")
        except UnicodeDecodeError:
            raise AccessRevoked(f"the stored refresh token of calendar {cid} is damaged; reconnect it") from None

    def store_rotated(self, calendar: Calendar, refresh_token: str) -> None:
        """Seal and store a refresh token the provider just issued in place of the calendar's one.

        Written at once with a condition on the old seal: a reconnect stored meanwhile is newer and
        stays. ``calendar`` is updated in place either way, so whoever holds it goes on with the
        token that works now, and a calendar being connected (not stored yet) is stored with it.
        """
        sealed = self.seal(refresh_token, calendar_id=calendar.calendar_id)
        expected = calendar.sealed_refresh_token
        calendar.sealed_refresh_token = sealed
        self._repo.store_refresh_token(calendar.calendar_id, sealed, expect_sealed=expected)


def _parse_client(text: str, *, name: str, fields: tuple[str, ...], provider: str) -> OAuthClient:
    shape = ", ".join(fields)
    try:
        data = json.loads(text)
    except ValueError:
        raise CalendarSourceError(f"SSM parameter {name} is not JSON; store an object with {shape}") from None
    if not isinstance(data, Mapping):
        raise CalendarSourceError(f"SSM parameter {name} must be a JSON object with {shape}")
    missing = [f for f in fields if not isinstance(data.get(f), str) or not data[f].strip()]
    if missing:
        raise CalendarSourceError(f"SSM parameter {name} (the {provider} OAuth client) lacks {', '.join(missing)}")
    return OAuthClient(
        client_id=data["client_id"].strip(),
        client_secret=data["client_secret"].strip(),
        tenant=data["tenant"].strip() if "tenant" in fields else None,
    )


def _ciphertext(sealed: str) -> bytes | None:
    if not sealed.startswith(SEAL_PREFIX):
        return None
    try:
        return base64.b64decode(sealed[len(SEAL_PREFIX) :], validate=True)
    except (ValueError, binascii.Error):
        return None


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__
