"""Settings, read from environment variables once. The only module that reads os.environ."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from meetpilot.errors import ConfigurationError

DEFAULT_MEETSTREAM_BASE_URL = "https://api.meetstream.ai/api/v1"
DEFAULT_GOOGLE_API_BASE = "https://www.googleapis.com/calendar/v3"
DEFAULT_GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_MICROSOFT_LOGIN_BASE = "https://login.microsoftonline.com"
DEFAULT_MICROSOFT_GRAPH_BASE = "https://graph.microsoft.com/v1.0"

# attribute name -> environment variable
_ENV = {
    "table_name": "TABLE_NAME",
    "transcript_bucket": "TRANSCRIPT_BUCKET",
    "dispatch_queue_url": "DISPATCH_QUEUE_URL",
    "bot_events_queue_url": "BOT_EVENTS_QUEUE_URL",
    "transcript_queue_url": "TRANSCRIPT_QUEUE_URL",
    "api_key_param": "MEETSTREAM_API_KEY_PARAM",
    "webhook_secret_param": "WEBHOOK_SECRET_PARAM",
    "signing_secret_param": "WORKSPACE_SIGNING_SECRET_PARAM",
    "meetstream_base_url": "MEETSTREAM_BASE_URL",
    "public_base_url": "PUBLIC_BASE_URL",
    "lead_time_seconds": "LEAD_TIME_SECONDS",
    "schedule_margin_seconds": "SCHEDULE_MARGIN_SECONDS",
    "provider_create_rate": "PROVIDER_CREATE_RATE",
    "transcript_provider": "TRANSCRIPT_PROVIDER",
    "bot_name": "BOT_NAME",
    "schedule_group": "SCHEDULE_GROUP",
    "dispatch_queue_arn": "DISPATCH_QUEUE_ARN",
    "dispatch_dlq_arn": "DISPATCH_DLQ_ARN",
    "scheduler_role_arn": "SCHEDULER_ROLE_ARN",
    "provider_timeout_seconds": "MEETSTREAM_TIMEOUT_SECONDS",
    "spool_dir": "TRANSCRIPT_SPOOL_DIR",
    "time_scale": "MEETPILOT_TIME_SCALE",
    "calendar_sync_queue_url": "CALENDAR_SYNC_QUEUE_URL",
    "calendar_grants_key_id": "CALENDAR_GRANTS_KEY_ID",
    "google_oauth_client_param": "GOOGLE_OAUTH_CLIENT_PARAM",
    "microsoft_oauth_client_param": "MICROSOFT_OAUTH_CLIENT_PARAM",
    "google_api_base": "GOOGLE_CALENDAR_API_BASE",
    "google_token_uri": "GOOGLE_TOKEN_URI",
    "microsoft_login_base": "MICROSOFT_LOGIN_BASE",
    "microsoft_graph_base": "MICROSOFT_GRAPH_BASE",
    "remove_bot_on_cancel": "REMOVE_BOT_ON_CANCEL",
    "event_bus_name": "EVENT_BUS_NAME",
    "live_transcripts": "LIVE_TRANSCRIPTS",
    "feed_allow_networks": "FEED_ALLOW_NETWORKS",
    "transcript_retry_base_seconds": "TRANSCRIPT_RETRY_BASE_SECONDS",
    "transcript_not_ready_budget_seconds": "TRANSCRIPT_NOT_READY_BUDGET_SECONDS",
}


@dataclass(frozen=True)
class Settings:
    table_name: str = ""
    transcript_bucket: str = ""
    dispatch_queue_url: str = ""
    bot_events_queue_url: str = ""
    transcript_queue_url: str = ""
    api_key_param: str = "/meetpilot/meetstream-api-key"
    # meetpilot's own secret: the capability tokens in callback and live-transcript URLs.
    webhook_secret_param: str = "/meetpilot/webhook-secret"
    # The signing secret MeetStream shows for a workspace webhook (X-MeetStream-Signature).
    signing_secret_param: str = "/meetpilot/meetstream-signing-secret"
    meetstream_base_url: str = DEFAULT_MEETSTREAM_BASE_URL
    public_base_url: str = ""
    lead_time_seconds: int = 600
    schedule_margin_seconds: int = 60
    # The provider's create_bot rate (creates a second) the dispatch plan keeps to; 0: no plan
    # (every meeting dispatched at start minus lead, as the original design did).
    provider_create_rate: float = 0.0
    transcript_provider: str | None = "deepgram"
    bot_name: str = "meetpilot notetaker"
    schedule_group: str = ""
    dispatch_queue_arn: str = ""
    dispatch_dlq_arn: str = ""
    scheduler_role_arn: str = ""
    provider_timeout_seconds: float = 10.0
    spool_dir: str | None = None
    # Local runs only: multiplies retry delays and the dispatch lease so a simulated day of
    # retries fits in minutes. Deployed stacks leave it at 1.
    time_scale: float = 1.0
    calendar_sync_queue_url: str = ""
    # The KMS key that seals connected calendars' refresh tokens (a key id, ARN or alias).
    calendar_grants_key_id: str = ""
    # SecureStrings holding the app's OAuth clients: {"client_id", "client_secret"} for Google, and
    # {"client_id", "client_secret", "tenant"} for Microsoft. The operator creates them.
    google_oauth_client_param: str = "/meetpilot/oauth/google"
    microsoft_oauth_client_param: str = "/meetpilot/oauth/microsoft"
    google_api_base: str = DEFAULT_GOOGLE_API_BASE
    google_token_uri: str = DEFAULT_GOOGLE_TOKEN_URI
    microsoft_login_base: str = DEFAULT_MICROSOFT_LOGIN_BASE
    microsoft_graph_base: str = DEFAULT_MICROSOFT_GRAPH_BASE
    # A meeting cancelled in the calendars while its bot is in the call: remove the bot (or let it record).
    remove_bot_on_cancel: bool = True
    # The EventBridge bus (its name) that gets SessionStatusChanged, TranscriptReady and LiveTranscriptSegment.
    event_bus_name: str = "default"
    # Ask MeetStream for live transcription: "auto" (streaming providers only), "true" or "false".
    live_transcripts: str = "auto"
    # Inside networks (CIDR, comma-separated) whose addresses a user's feed URL may still reach. Only
    # the local stack sets it, for its fake feeds on 127.0.0.1; the deployed template never does.
    feed_allow_networks: tuple[str, ...] = ()
    # A transcript not ready yet is asked for again after base * 2**attempt seconds (at most 15
    # minutes), until this budget from the first try; then the session is flagged gave_up.
    transcript_retry_base_seconds: float = 15.0
    transcript_not_ready_budget_seconds: int = 1800

    @property
    def wants_live_transcripts(self) -> bool:
        """Whether bots are created with a live-transcript URL (see ``live_transcripts``)."""
        if self.live_transcripts == "auto":
            return bool(self.transcript_provider and self.transcript_provider.endswith("_streaming"))
        return self.live_transcripts == "true"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = source.get(_ENV[f.name])
            if raw is None or raw == "":
                continue
            if f.name in ("lead_time_seconds", "schedule_margin_seconds"):
                values[f.name] = _int(raw, _ENV[f.name], minimum=0)
            elif f.name in ("provider_timeout_seconds", "transcript_retry_base_seconds"):
                values[f.name] = float(_int(raw, _ENV[f.name], minimum=1))
            elif f.name == "transcript_not_ready_budget_seconds":
                values[f.name] = _int(raw, _ENV[f.name], minimum=1)
            elif f.name == "provider_create_rate":
                try:
                    values[f.name] = float(raw)
                except ValueError:
                    raise ConfigurationError(f"PROVIDER_CREATE_RATE must be a number, got {raw[:40]!r}") from None
                if not 0 <= values[f.name] <= 10_000:  # type: ignore[operator]
                    raise ConfigurationError("PROVIDER_CREATE_RATE must be between 0 (no plan) and 10000")
            elif f.name == "time_scale":
                try:
                    values[f.name] = float(raw)
                except ValueError:
                    raise ConfigurationError(f"MEETPILOT_TIME_SCALE must be a number, got {raw[:40]!r}") from None
                if not 0 < values[f.name] <= 1:  # type: ignore[operator]
                    raise ConfigurationError("MEETPILOT_TIME_SCALE must be in (0, 1]")
            elif f.name == "remove_bot_on_cancel":
                flag = raw.strip().lower()
                if flag not in ("true", "false", "1", "0", "yes", "no"):
                    raise ConfigurationError(f"REMOVE_BOT_ON_CANCEL must be true or false, got {raw[:40]!r}")
                values[f.name] = flag in ("true", "1", "yes")
            elif f.name == "live_transcripts":
                mode = raw.strip().lower()
                if mode not in ("auto", "true", "false"):
                    raise ConfigurationError(f"LIVE_TRANSCRIPTS must be auto, true or false, got {raw[:40]!r}")
                values[f.name] = mode
            elif f.name == "feed_allow_networks":
                values[f.name] = _networks(raw, _ENV[f.name])
            elif f.name == "transcript_provider":
                values[f.name] = None if raw.strip().lower() == "none" else raw.strip()
            else:
                values[f.name] = raw.strip()
        return cls(**values)  # type: ignore[arg-type]

    def require(self, name: str) -> str:
        """The value of a setting a use case cannot run without, or a ConfigurationError."""
        value = getattr(self, name)
        if not value:
            raise ConfigurationError(
                f"{_ENV[name]} is not set; the deployed template sets it, locally run through "
                "'meetpilot dev' or export it"
            )
        return str(value)

    def scaled(self, seconds: float) -> int:
        """A delay in whole seconds after the local time scale (at least 1 when seconds > 0)."""
        if seconds <= 0:
            return 0
        return max(1, round(seconds * self.time_scale))


def _int(raw: str, var: str, *, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{var} must be a whole number, got {raw[:40]!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{var} must be at least {minimum}, got {value}")
    return value


def _networks(raw: str, var: str) -> tuple[str, ...]:
    found: list[str] = []
    for part in raw.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            found.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ConfigurationError(f"{var} must list networks like 127.0.0.1/32, got {text[:40]!r}") from None
    return tuple(found)
