"""Settings of the MeetStream simulator: what happens to bots (Scenario), which faults it injects
(Faults) and how fast and in which dialect it speaks (SimulatorConfig)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, Literal

TranscriptEnvelope = Literal["array", "transcript", "message"]
PastJoinAt = Literal["join_now", "reject"]


class Scenario(StrEnum):
    """What happens to the bots sent to one meeting link (see ``Simulator.set_scenario``)."""

    NORMAL = "normal"  # admitted, records, leaves when the meeting ends, full post-call processing
    NOT_ADMITTED = "not_admitted"  # waits in the lobby until the timeout: bot.notallowed (500)
    DENIED = "denied"  # the host refuses it: bot.denied (500)
    KICKED = "kicked"  # removed by a participant mid-meeting: bot.kicked (200), media kept
    BOT_FAILED = "bot_failed"  # crashes while recording: bot.failed (500), no media
    TRANSCRIPTION_FAILED = "transcription_failed"  # transcription.failed; transcript 202 forever
    LONG_TRANSCRIPT = "long_transcript"  # normal, with a very large transcript
    EMPTY_TRANSCRIPT = "empty_transcript"  # normal, transcript is an empty array
    STREAMING_ONLY = "streaming_only"  # no transcription.* events; transcript 202 forever
    NO_SHOW = "no_show"  # created, then never heard of again


@dataclass(frozen=True)
class Faults:
    """Fault injection. Every ``*_rate``-like field is a probability in 0..1.

    Draws come from ``random.Random(seed)``, so a run with the same requests in the same order
    injects the same faults. ``paths`` limits the request faults (rate_limit, server_error, timeout)
    to API paths containing one of the given strings, e.g. ``("create_bot",)``.
    """

    rate_limit: float = 0.0  # answer 429 with Retry-After
    retry_after_seconds: float = 1.0  # the Retry-After value (rounded up to whole seconds)
    retry_after_http_date: float = 0.0  # share of 429s whose Retry-After is an HTTP-date
    server_error: float = 0.0  # answer 500, 502 or 503 without doing anything
    timeout: float = 0.0  # do the work, then hold the answer for timeout_seconds
    timeout_seconds: float = 15.0
    duplicate_webhook: float = 0.0  # deliver a webhook twice
    reorder_webhook: float = 0.0  # hold a webhook back and deliver it after the next one
    drop_webhook: float = 0.0  # never deliver a webhook (recorded as dropped)
    slow_transcript_seconds: float = 0.0  # extra simulated delay before transcription.processed
    create_rate_per_second: float | None = None  # token bucket on create_bot; above it: 429
    seed: int = 0
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "rate_limit",
            "retry_after_http_date",
            "server_error",
            "timeout",
            "duplicate_webhook",
            "reorder_webhook",
            "drop_webhook",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, got {value!r}")
        for name in ("retry_after_seconds", "timeout_seconds", "slow_transcript_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"Faults.{name} must not be negative")
        if self.create_rate_per_second is not None and self.create_rate_per_second <= 0:
            raise ValueError("Faults.create_rate_per_second must be positive (or None for no limit)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Build from JSON (the admin endpoint); unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if "paths" in values:
            values["paths"] = tuple(str(p) for p in values["paths"] or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["paths"] = list(self.paths)
        return data


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator behaves. Durations are in simulated seconds; real = simulated / speed."""

    api_keys: tuple[str, ...] = ("ms_sim_key",)
    speed: float = 60.0
    port: int = 0  # on 127.0.0.1 only; 0 picks a free port

    # lifecycle timing (simulated seconds)
    step_seconds: float = 5.0  # between two lifecycle steps (joining -> waiting room -> ...)
    meeting_seconds: float = 1800.0  # from recording start to leaving
    waiting_room_seconds: float = 120.0  # how long a not-admitted bot waits before giving up
    processing_seconds: float = 30.0  # between two post-call events
    joining_attempts: int = 1  # bot.joining is sent this many times (1..3), like join retries
    default_scenario: Scenario = Scenario.NORMAL
    past_join_at: PastJoinAt = "join_now"  # a join_at in the past: join at once, or answer 400
    extra_events: bool = False  # also send bot.uploading and bot.transcriptionready

    # transcripts
    transcript_segments: int = 40
    long_transcript_segments: int = 20_000  # about 2 KB per segment: 20 000 is ~40 MB
    transcript_envelope: TranscriptEnvelope = "array"
    replay_omits_transcript_id: bool = False  # a 507 replay answers transcript_id: null

    # live transcription (bots created with live_transcription_required.webhook_url)
    live_segments: int = 6  # final results posted while a bot records, each after an interim one
    live_interim: bool = True  # also post an interim (is_final: false) result before each final one

    # webhooks
    legacy_webhooks: bool = False  # only `event`, no `bot_event`, no timestamps on bot.* events
    webhook_retries: int = 0  # MeetStream does not retry; set >0 to retry non-2xx deliveries
    webhook_timeout_seconds: float = 5.0  # real seconds
    workspace_url: str | None = None  # also deliver every event here, signed
    workspace_secret: str | None = None

    faults: Faults = Faults()

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("SimulatorConfig.speed must be positive")
        if not self.api_keys:
            raise ValueError("SimulatorConfig.api_keys needs at least one key")
        if not 1 <= self.joining_attempts <= 3:
            raise ValueError("SimulatorConfig.joining_attempts must be 1, 2 or 3")
        if self.transcript_envelope not in ("array", "transcript", "message"):
            raise ValueError("SimulatorConfig.transcript_envelope must be array, transcript or message")
        if self.past_join_at not in ("join_now", "reject"):
            raise ValueError("SimulatorConfig.past_join_at must be join_now or reject")
        if bool(self.workspace_url) != bool(self.workspace_secret):
            raise ValueError("SimulatorConfig.workspace_url and workspace_secret go together")
        if (
            self.webhook_retries < 0
            or self.transcript_segments < 0
            or self.long_transcript_segments < 0
            or self.live_segments < 0
        ):
            raise ValueError("SimulatorConfig counts must not be negative")
