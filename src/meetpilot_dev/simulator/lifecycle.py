"""A simulated bot: its record, the events it can emit, and the plan of steps for each scenario.

The event catalogue follows the June-2026 production captures: every delivery has ``event``; the
specific name is in ``bot_event`` except on ``manifest.*``, ``bot.transcriptionready`` and
``bot.uploading``; the one terminal event is ``event: "bot.stopped"`` with the reason in
``bot_event`` (``bot.stopped``, ``bot.kicked``, ``bot.notallowed``, ``bot.denied``, ``bot.failed``)
and ``status_code`` 200 for a normal end, 500 for a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from meetpilot_dev.simulator.config import Scenario, SimulatorConfig

POST_CALL_PROVIDERS = frozenset({"deepgram", "assemblyai", "sarvam", "jigsawstack", "meetstream"})
CAPTION_PROVIDERS = frozenset({"meeting_captions"})
STREAMING_PROVIDERS = frozenset(
    {"deepgram_streaming", "assemblyai_streaming", "meetstream_streaming", "jigsawstack_streaming"}
)
KNOWN_PROVIDERS = POST_CALL_PROVIDERS | CAPTION_PROVIDERS | STREAMING_PROVIDERS

# Statuses after which the bot is out of the meeting for good.
FINAL_STATUSES = frozenset({"Stopped", "NotAllowed", "Denied", "Error", "Done", "Cancelled"})


@dataclass(frozen=True)
class EventSpec:
    event: str  # the generic name in `event`
    has_bot_event: bool  # June-2026 rules: absent on manifest.*, bot.transcriptionready, bot.uploading
    bot_status: str | None  # the status it moves the bot to (None: unchanged)
    status_code: int
    message: str
    timeline: str | None = None  # the StatusTimeline key it sets in /detail
    lifecycle: bool = True  # legacy mode drops `timestamp` on lifecycle (bot.*) events only
    extra: tuple[tuple[str, str], ...] = ()


EVENTS: dict[str, EventSpec] = {
    "bot.scheduled": EventSpec("bot.scheduled", True, "Scheduled", 200, "Bot scheduled to join", "Scheduled"),
    "bot.joining": EventSpec("bot.joining", True, "Joining", 200, "Bot is joining the meeting", "Joining"),
    "bot.in_waiting_room": EventSpec(
        "bot.in_waiting_room", True, "InWaitingRoom", 200, "Bot is in the waiting room", "WaitingRoom"
    ),
    "bot.inmeeting": EventSpec("bot.inmeeting", True, "InMeeting", 200, "Bot joined the meeting", "InMeeting"),
    "bot.recording": EventSpec("bot.recording", True, "Recording", 200, "Bot started recording", "Recording"),
    "bot.leaving": EventSpec("bot.leaving", True, "Leaving", 200, "Bot is leaving the meeting", "Leaving"),
    # terminal: event is always bot.stopped, the reason is bot_event
    "bot.stopped": EventSpec("bot.stopped", True, "Stopped", 200, "Bot left the meeting", "Stopped"),
    "bot.kicked": EventSpec(
        "bot.stopped", True, "Stopped", 200, "Bot was removed from the meeting by a participant", "Stopped"
    ),
    "bot.notallowed": EventSpec(
        "bot.stopped", True, "NotAllowed", 500, "Failed: Not admitted to meeting", "BotNotAllowed"
    ),
    "bot.denied": EventSpec("bot.stopped", True, "Denied", 500, "Failed: Host denied entry", "BotRejected"),
    "bot.failed": EventSpec("bot.stopped", True, "Error", 500, "Failed: Bot process crashed", "Error"),
    # post-call processing
    "bot.uploading": EventSpec("bot.uploading", False, None, 200, "Uploading recording"),
    "manifest.completed": EventSpec(
        "manifest.completed", False, None, 200, "Manifest completed", None, False,
        (("status", "success"), ("manifest_status", "Success")),
    ),
    "audio.processed": EventSpec(
        "audio.processed", True, None, 200, "Audio processed", "AudioProcessing", False,
        (("status", "success"), ("audio_status", "Success")),
    ),
    "transcription.processed": EventSpec(
        "transcription.processed", True, None, 200, "Transcription processed", "TranscriptionReady", False,
        (("status", "success"), ("transcript_status", "Success")),
    ),
    "transcription.failed": EventSpec(
        "transcription.failed", True, None, 500,
        "Transcription failed: the transcription provider returned an error", None, False,
        (("status", "error"), ("transcript_status", "Failed")),
    ),
    "bot.transcriptionready": EventSpec("bot.transcriptionready", False, None, 200, "Transcript is ready"),
    "video.processed": EventSpec(
        "video.processed", True, None, 200, "Video processed", "VideoProcessing", False,
        (("status", "success"), ("video_status", "Success")),
    ),
    "bot.done": EventSpec("bot.done", True, "Done", 200, "Bot finished processing", "Done"),
    "data_deletion": EventSpec(
        "data_deletion", True, None, 200, "Bot data deleted", None, False, (("status", "success"),)
    ),
}  # fmt: skip

TERMINAL_EVENTS = frozenset(name for name, spec in EVENTS.items() if spec.event == "bot.stopped")


@dataclass
class BotRecord:
    """Everything the simulator knows about one bot. Guarded by the API's lock."""

    bot_id: str
    meeting_link: str
    bot_name: str
    callback_url: str | None
    custom_attributes: Any
    request_payload: dict[str, Any]
    created_at: datetime
    scenario: Scenario
    provider: str | None
    video_required: bool
    transcript_id: str | None
    join_at: datetime | None = None
    idempotency_key: str | None = None
    deduplication_key: str | None = None
    status: str = "Joining"
    timeline: dict[str, dict[str, Any]] = field(default_factory=dict)
    events_sent: list[str] = field(default_factory=list)
    generation: int = 0  # bumped to cancel the steps still pending (remove_bot)
    transcript_delay: float = 0.0  # extra simulated seconds before transcription.* (a fault)
    recording: bool = False  # reached bot.recording, so there is media to process
    leaving: bool = False
    transcript_ready: bool = False
    transcript_failed: bool = False
    data_deleted: bool = False
    cancelled: bool = False
    started_at: datetime | None = None  # recording start, the zero of transcript times
    ended_at: datetime | None = None
    last_timestamp: datetime | None = None

    @property
    def platform(self) -> str:
        return platform_of(self.meeting_link)

    @property
    def provider_kind(self) -> str | None:
        if self.provider in POST_CALL_PROVIDERS:
            return "post_call"
        if self.provider in CAPTION_PROVIDERS:
            return "captions"
        if self.provider in STREAMING_PROVIDERS:
            return "streaming"
        return None

    @property
    def scheduled(self) -> bool:
        return self.status == "Scheduled" and not self.cancelled

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def platform_of(meeting_link: str) -> str:
    host = (urlsplit(meeting_link).hostname or "").lower()
    if host == "meet.google.com":
        return "GMeet"
    if host == "zoom.us" or host.endswith(".zoom.us"):
        return "Zoom"
    if host in ("teams.microsoft.com", "teams.live.com"):
        return "Teams"
    return "Unknown"


@dataclass(frozen=True)
class Step:
    """Emit ``name`` (a key of EVENTS) ``after`` simulated seconds after the previous step."""

    after: float
    name: str
    message: str | None = None


def join_plan(bot: BotRecord, config: SimulatorConfig, transcript_delay: float) -> list[Step]:
    """The steps from the first bot.joining to the end of post-call processing."""
    step = config.step_seconds
    steps = [Step(0.0, "bot.joining")]
    steps += [Step(step, "bot.joining")] * (config.joining_attempts - 1)
    steps.append(Step(step, "bot.in_waiting_room"))
    scenario = bot.scenario
    if scenario is Scenario.NOT_ADMITTED:
        return steps + exit_plan(bot, config, "bot.notallowed", after=config.waiting_room_seconds)
    if scenario is Scenario.DENIED:
        return steps + exit_plan(bot, config, "bot.denied", after=step)
    steps += [Step(step, "bot.inmeeting"), Step(step, "bot.recording")]
    if scenario is Scenario.KICKED:
        return steps + exit_plan(
            bot, config, "bot.kicked", after=config.meeting_seconds / 2, media=True,
            transcript_delay=transcript_delay,
        )  # fmt: skip
    if scenario is Scenario.BOT_FAILED:
        return steps + exit_plan(bot, config, "bot.failed", after=config.meeting_seconds / 2, leave=False)
    return steps + exit_plan(
        bot, config, "bot.stopped", after=config.meeting_seconds, media=True, transcript_delay=transcript_delay
    )


def exit_plan(
    bot: BotRecord,
    config: SimulatorConfig,
    reason: str,
    *,
    after: float,
    media: bool = False,
    leave: bool = True,
    message: str | None = None,
    transcript_delay: float = 0.0,
) -> list[Step]:
    """Leaving, the terminal bot.stopped with ``reason``, then post-call processing or just bot.done."""
    steps: list[Step] = []
    if leave:
        steps.append(Step(after, "bot.leaving"))
        after = config.step_seconds
    steps.append(Step(after, reason, message))
    if not media:
        return [*steps, Step(config.processing_seconds, "bot.done")]
    wait = config.processing_seconds
    if config.extra_events:
        steps.append(Step(wait, "bot.uploading"))
    steps += [Step(wait, "manifest.completed"), Step(wait, "audio.processed")]
    if bot.provider_kind == "post_call" and bot.scenario is not Scenario.STREAMING_ONLY:
        if bot.scenario is Scenario.TRANSCRIPTION_FAILED:
            steps.append(Step(wait + transcript_delay, "transcription.failed"))
        else:
            steps.append(Step(wait + transcript_delay, "transcription.processed"))
            if config.extra_events:
                steps.append(Step(0.0, "bot.transcriptionready"))
    if bot.video_required:
        steps.append(Step(wait, "video.processed"))
    steps.append(Step(wait, "bot.done"))
    return steps


def webhook_payload(
    bot: BotRecord,
    name: str,
    timestamp: datetime,
    *,
    legacy: bool,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body MeetStream posts for event ``name`` of ``bot``."""
    spec = EVENTS[name]
    payload: dict[str, Any] = {"event": spec.event}
    if spec.has_bot_event and not legacy:
        payload["bot_event"] = name
    payload["bot_id"] = bot.bot_id
    payload["bot_status"] = bot.status
    payload["message"] = message or spec.message
    payload["status_code"] = spec.status_code
    payload.update(spec.extra)
    payload.update(extra or {})
    if not (legacy and spec.lifecycle):
        payload["timestamp"] = timestamp.isoformat()
    if name != "data_deletion":
        payload["custom_attributes"] = bot.custom_attributes
    return payload
