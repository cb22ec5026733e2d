"""Secrets from SSM Parameter Store through Powertools Parameters: decrypted, cached per warm instance."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

from meetpilot.domain.webhook_auth import parse_secrets
from meetpilot.errors import ConfigurationError

CACHE_SECONDS = 300


class SsmSecrets:
    """The MeetStream API key, the two webhook secrets and calendar credentials. Never logs or
    formats a value.

    The token secret is meetpilot's own (it mints the capability tokens in callback URLs); the
    signing secret is the one MeetStream shows for a workspace webhook. They are separate
    parameters, so neither can stand in for the other, and each rotates on its own.
    """

    def __init__(
        self, client: Any, *, api_key_param: str, webhook_secret_param: str, signing_secret_param: str
    ) -> None:
        self._provider = SSMProvider(boto3_client=client)
        self._api_key_param = api_key_param
        self._token_secret_param = webhook_secret_param
        self._signing_secret_param = signing_secret_param

    def _get(self, name: str) -> str:
        try:
            value = self._provider.get(name, decrypt=True, max_age=CACHE_SECONDS)
        except Exception as exc:  # Powertools wraps every failure in GetParameterError
            # The exception text names the parameter, never its value.
            raise ConfigurationError(
                f"cannot read SSM parameter {name}: {type(exc).__name__}; create it as a SecureString "
                "and allow ssm:GetParameter on it"
            ) from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"SSM parameter {name} is empty")
        return value.strip()

    def api_key(self) -> str:
        return self._get(self._api_key_param)

    def get_secret(self, name: str) -> str:
        """Any SecureString by name (a calendar's OAuth credentials), decrypted and cached like the others."""
        return self._get(name)

    def token_secrets(self) -> tuple[str, ...]:
        return self._secrets(self._token_secret_param)

    def signing_secrets(self) -> tuple[str, ...]:
        return self._secrets(self._signing_secret_param)

    def _secrets(self, name: str) -> tuple[str, ...]:
        try:
            return parse_secrets(self._get(name))
        except ValueError as exc:
            raise ConfigurationError(f"SSM parameter {name}: {exc}") from None
