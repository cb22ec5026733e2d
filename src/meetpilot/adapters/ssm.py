"""Secrets from SSM Parameter Store through Powertools Parameters: decrypted, cached per warm instance."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

from meetpilot.domain.webhook_auth import parse_secrets
from meetpilot.errors import ConfigurationError

CACHE_SECONDS = 300


class SsmSecrets:
    """The MeetStream API key, the webhook secret(s) and calendar credentials. Never logs or formats a value."""

    def __init__(self, client: Any, *, api_key_param: str, webhook_secret_param: str) -> None:
        self._provider = SSMProvider(boto3_client=client)
        self._api_key_param = api_key_param
        self._webhook_secret_param = webhook_secret_param

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

    def webhook_secrets(self) -> tuple[str, ...]:
        try:
            return parse_secrets(self._get(self._webhook_secret_param))
        except ValueError as exc:
            raise ConfigurationError(f"SSM parameter {self._webhook_secret_param}: {exc}") from None
