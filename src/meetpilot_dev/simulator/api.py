"""The MeetStream REST API as the simulator answers it: auth, injected faults, routes, bot state and
the per-bot lifecycle that produces webhooks.

It knows nothing about HTTP sockets: ``handle`` takes a parsed Request and returns a Reply, which
the server module writes out (streaming the transcript body when there is one).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

from meetpilot.domain.clock import Clock, parse_iso
from meetpilot_dev.simulator.config import Faults, Scenario, SimulatorConfig
from meetpilot_dev.simulator.faults import FaultInjector
from meetpilot_dev.simulator.lifecycle import (
    EVENTS,
    KNOWN_PROVIDERS,
    TERMINAL_EVENTS,
    BotRecord,
    Step,
    exit_plan,
    join_plan,
    webhook_payload,
)
from meetpilot_dev.simulator.live import live_plan, live_webhook_url
from meetpilot_dev.simulator.timers import Timers
from meetpilot_dev.simulator.transcripts import encode_transcript, transcript_segments
from meetpilot_dev.simulator.webhooks import Delivery, WebhookDispatcher, sign

API_PREFIX = "/api/v1"
ADMIN_PREFIX = "/_sim"
_SCHEDULE_POLL_SECONDS = 0.02  # how often scheduled bots look at the clock
_TIMESTAMP_STEP = timedelta(milliseconds=1)  # keeps one bot's event timestamps distinct


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: Any = None
    stream: Iterator[bytes] | None = None  # sent chunked instead of ``body``
    headers: dict[str, str] = field(default_factory=dict)
    hold_seconds: float = 0.0  # the timeout fault: wait this long before answering


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message})


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


Handler = Callable[..., Reply]


class MeetStreamAPI:
    """State and behaviour of one simulated MeetStream workspace. Thread-safe."""

    def __init__(
        self,
        config: SimulatorConfig,
        clock: Clock,
        faults: FaultInjector,
        timers: Timers,
        webhooks: WebhookDispatcher,
    ) -> None:
        self.config = config
        self._clock = clock
        self._faults = faults
        self._timers = timers
        self._webhooks = webhooks
        self._lock = threading.RLock()
        self._bots: dict[str, BotRecord] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._by_dedup_key: dict[str, str] = {}
        self._by_transcript: dict[str, str] = {}
        self._scenarios: dict[str, Scenario] = {}
        self._create_calls = 0
        self._watching_schedule = False
        self.stopping = threading.Event()
        self._api_routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/bots/create_bot"), {"POST": self._create_bot}),
            (re.compile(r"/bots"), {"GET": self._list_bots}),
            (re.compile(r"/bots/(?P<bot_id>[^/]+)/status"), {"GET": self._bot_status}),
            (re.compile(r"/bots/(?P<bot_id>[^/]+)/detail"), {"GET": self._bot_detail}),
            (re.compile(r"/bots/(?P<bot_id>[^/]+)/remove_bot"), {"GET": self._remove_bot}),
            (re.compile(r"/bots/(?P<bot_id>[^/]+)/delete"), {"DELETE": self._delete_data}),
            (re.compile(r"/bots/(?P<bot_id>[^/]+)/transcriptions"), {"GET": self._transcriptions}),
            (
                re.compile(r"/transcript/(?P<transcript_id>[^/]+)/get_transcript"),
                {"GET": self._get_transcript},
            ),
            (re.compile(r"/calendar/scheduled_bots"), {"GET": self._scheduled_bots}),
            (
                re.compile(r"/calendar/scheduled_bots/(?P<bot_id>[^/]+)"),
                {"PATCH": self._reschedule, "DELETE": self._cancel_scheduled},
            ),
        ]
        self._admin_routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/scenarios"), {"GET": self._admin_scenarios, "POST": self._admin_set_scenario}),
            (re.compile(r"/bots"), {"GET": self._admin_bots}),
            (re.compile(r"/faults"), {"GET": self._admin_faults, "POST": self._admin_set_faults}),
            (re.compile(r"/deliveries"), {"GET": self._admin_deliveries}),
        ]

    # --- entry point ------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        path = request.path.rstrip("/") or "/"
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return self._route(self._admin_routes, path[len(ADMIN_PREFIX) :], request)
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            denied = self._authenticate(request.headers)
            if denied is not None:
                return denied
            return self._route(self._api_routes, path[len(API_PREFIX) :], request, faults=True)
        return _error(404, "Not found.")

    def _route(
        self,
        routes: list[tuple[re.Pattern[str], dict[str, Handler]]],
        path: str,
        request: Request,
        *,
        faults: bool = False,
    ) -> Reply:
        for pattern, methods in routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                return _error(405, f'Method "{request.method}" not allowed.')
            params = {name: unquote(value) for name, value in match.groupdict().items()}
            fault = self._faults.for_request(path, is_create=handler == self._create_bot) if faults else None
            if fault is not None and fault.kind in ("rate_limit", "create_rate_limit"):
                reply = _error(429, "Request was throttled.")
                reply.headers["Retry-After"] = fault.retry_after or "1"
                return reply
            if fault is not None and fault.kind == "server_error":
                return _error(fault.status, "Service temporarily unavailable.")
            reply = handler(request, **params)
            if fault is not None and fault.kind == "timeout":
                reply.hold_seconds = fault.hold_seconds  # the work is done; only the answer is late
            return reply
        return _error(404, "Not found.")

    def _authenticate(self, headers: Mapping[str, str]) -> Reply | None:
        scheme, _, key = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "token" or not key.strip():
            return _error(401, "Authentication credentials were not provided.")
        if key.strip() not in self.config.api_keys:
            return _error(403, "Invalid token.")
        return None

    # --- facade helpers (used by Simulator) -------------------------------------------------

    @property
    def create_calls(self) -> int:
        with self._lock:
            return self._create_calls

    def set_scenario(self, meeting_link: str, scenario: Scenario | str) -> Scenario:
        chosen = Scenario(scenario)
        with self._lock:
            self._scenarios[meeting_link.strip()] = chosen
        return chosen

    def bots(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._snapshot(bot) for bot in self._bots.values()]

    def _snapshot(self, bot: BotRecord) -> dict[str, Any]:
        return {
            "bot_id": bot.bot_id,
            "meeting_link": bot.meeting_link,
            "status": "Cancelled" if bot.cancelled else bot.status,
            "custom_attributes": bot.custom_attributes,
            "created_at": _iso(bot.created_at),
            "idempotency_key": bot.idempotency_key,
            "deduplication_key": bot.deduplication_key,
            "transcript_id": bot.transcript_id,
            "events_sent": list(bot.events_sent),
            "scenario": bot.scenario.value,
            "join_at": _iso(bot.join_at),
            "callback_url": bot.callback_url,
            "provider": bot.provider,
            "transcript_ready": bot.transcript_ready,
            "data_deleted": bot.data_deleted,
            "cancelled": bot.cancelled,
        }

    # --- create_bot -------------------------------------------------------------------------

    def _create_bot(self, request: Request) -> Reply:
        data = _json_object(request.body)
        if data is None:
            return _error(400, "Request body must be a JSON object.")
        idempotency_key = request.headers.get("idempotency-key", "").strip() or None
        with self._lock:
            if idempotency_key and idempotency_key in self._by_idempotency_key:
                original = self._bots[self._by_idempotency_key[idempotency_key]]
                body = self._created_body(original)
                body["message"] = "Idempotent replay: returning the bot created with this Idempotency-Key."
                if self.config.replay_omits_transcript_id:
                    body["transcript_id"] = None
                return Reply(507, body)
            problem, provider, join_at = self._validate_create(data)
            if problem:
                return _error(400, problem)
            meeting_link = data["meeting_link"].strip()
            dedup_key = data.get("deduplication_key")
            if dedup_key is not None and dedup_key in self._by_dedup_key:
                original = self._bots[self._by_dedup_key[dedup_key]]
                if original.meeting_link != meeting_link:
                    return _error(409, "deduplication_key is already used by a bot for a different meeting link.")
                if idempotency_key:
                    self._by_idempotency_key[idempotency_key] = original.bot_id
                body = self._created_body(original)
                body["message"] = "A bot already exists for this deduplication_key; returning it."
                return Reply(200, body)
            bot = self._new_bot(data, meeting_link, provider, join_at, idempotency_key)
            return Reply(201, self._created_body(bot))

    def _created_body(self, bot: BotRecord) -> dict[str, Any]:
        return {
            "bot_id": bot.bot_id,
            "transcript_id": bot.transcript_id,
            "meeting_url": bot.meeting_link,
            "status": "Cancelled" if bot.cancelled else bot.status,
        }

    def _validate_create(self, data: dict[str, Any]) -> tuple[str | None, str | None, datetime | None]:
        """Return (problem, transcript provider, join_at); problem is the 400 message, if any."""
        link = data.get("meeting_link")
        if not isinstance(link, str) or not link.strip():
            return "meeting_link is required.", None, None
        if not _is_http_url(link.strip()):
            return "meeting_link must be a valid http(s) meeting URL.", None, None
        name = data.get("bot_name")
        if not isinstance(name, str) or not name.strip():
            return "bot_name is required.", None, None
        if data.get("callback_url") is not None and not _is_http_url(data["callback_url"]):
            return "callback_url must be a valid http(s) URL.", None, None
        if "video_required" in data and not isinstance(data["video_required"], bool):
            return "video_required must be a boolean.", None, None
        if "custom_attributes" in data and not isinstance(data["custom_attributes"], dict):
            return "custom_attributes must be an object.", None, None
        dedup = data.get("deduplication_key")
        if dedup is not None and not (
            isinstance(dedup, str) and 1 <= len(dedup) <= 2000 and all(" " <= c <= "~" for c in dedup)
        ):
            return "deduplication_key must be 1 to 2000 printable ASCII characters.", None, None
        problem = _check_automatic_leave(data.get("automatic_leave"))
        if problem:
            return problem, None, None
        provider, problem = _transcript_provider(data.get("recording_config"))
        if problem:
            return problem, None, None
        live = data.get("live_transcription_required")
        if live is not None and not (isinstance(live, dict) and _is_http_url(live.get("webhook_url"))):
            return "live_transcription_required.webhook_url must be a valid http(s) URL.", None, None
        join_at: datetime | None = None
        if data.get("join_at") is not None:
            raw = data["join_at"]
            try:
                join_at = parse_iso(raw) if isinstance(raw, str) else None
            except ValueError:
                join_at = None
            if join_at is None:
                return (
                    "join_at must be an ISO-8601 date-time with a timezone, e.g. 2026-07-02T15:00:00Z.",
                    None,
                    None,
                )
            if join_at <= self._clock.now() and self.config.past_join_at == "reject":
                return "join_at must be in the future.", None, None
        return None, provider, join_at

    def _new_bot(
        self,
        data: dict[str, Any],
        meeting_link: str,
        provider: str | None,
        join_at: datetime | None,
        idempotency_key: str | None,
    ) -> BotRecord:
        now = self._clock.now()
        scenario = self._scenarios.get(meeting_link, self.config.default_scenario)
        bot = BotRecord(
            bot_id=str(uuid.uuid4()),
            meeting_link=meeting_link,
            bot_name=data["bot_name"],
            callback_url=data.get("callback_url"),
            custom_attributes=data.get("custom_attributes", {}),
            request_payload=data,
            created_at=now,
            scenario=scenario,
            provider=provider,
            video_required=data.get("video_required", True),
            transcript_id=None,
            join_at=join_at,
            idempotency_key=idempotency_key,
            deduplication_key=data.get("deduplication_key"),
        )
        if bot.provider_kind == "post_call":
            bot.transcript_id = str(uuid.uuid4())
            self._by_transcript[bot.transcript_id] = bot.bot_id
        future_join = join_at is not None and join_at > now
        bot.status = "Scheduled" if future_join else "Joining"
        self._bots[bot.bot_id] = bot
        if idempotency_key:
            self._by_idempotency_key[idempotency_key] = bot.bot_id
        if bot.deduplication_key is not None:
            self._by_dedup_key[bot.deduplication_key] = bot.bot_id
        self._create_calls += 1
        if scenario is Scenario.NO_SHOW:
            return bot  # never heard of again
        if future_join:
            self._emit(bot, "bot.scheduled", message=f"Bot scheduled to join at {_iso(join_at)}")
            self._watch_schedule()
        else:
            self._begin_join(bot)
        return bot

    # --- lifecycle --------------------------------------------------------------------------

    def _begin_join(self, bot: BotRecord) -> None:
        bot.status = "Joining"
        if bot.provider_kind == "post_call" and bot.scenario is not Scenario.STREAMING_ONLY:
            bot.transcript_delay = self._faults.transcript_delay()
        self._run(bot, join_plan(bot, self.config, bot.transcript_delay))

    def _run(self, bot: BotRecord, steps: list[Step]) -> None:
        self._schedule_step(bot, steps, 0, bot.generation)

    def _schedule_step(self, bot: BotRecord, steps: list[Step], index: int, generation: int) -> None:
        if index < len(steps):
            delay = steps[index].after / self.config.speed
            self._timers.call_later(delay, lambda: self._do_step(bot, steps, index, generation))

    def _do_step(self, bot: BotRecord, steps: list[Step], index: int, generation: int) -> None:
        with self._lock:
            if bot.generation != generation or bot.cancelled:
                return  # superseded by remove_bot or a cancellation
            step = steps[index]
            self._emit(bot, step.name, message=step.message)
            self._schedule_step(bot, steps, index + 1, generation)

    def _emit(
        self, bot: BotRecord, name: str, *, message: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        spec = EVENTS[name]
        now = self._clock.now()
        if bot.last_timestamp is not None and now <= bot.last_timestamp:
            now = bot.last_timestamp + _TIMESTAMP_STEP
        bot.last_timestamp = now
        if spec.bot_status is not None:
            bot.status = spec.bot_status
        if spec.timeline is not None:
            bot.timeline[spec.timeline] = {
                "status": True,
                "timestamp": _iso(now),
                "message": message or spec.message,
            }
        if name == "bot.recording":
            bot.recording, bot.started_at = True, now
            self._start_live(bot, now)
        elif name == "bot.leaving":
            bot.leaving = True
        elif name in TERMINAL_EVENTS:
            bot.ended_at = now
        elif name == "transcription.processed":
            bot.transcript_ready = True
        elif name == "transcription.failed":
            bot.transcript_failed = True
        bot.events_sent.append(name)
        payload = webhook_payload(bot, name, now, legacy=self.config.legacy_webhooks, message=message, extra=extra)
        raw = json.dumps(payload).encode()
        if bot.callback_url:
            self._webhooks.submit(Delivery(bot.callback_url, raw, name, bot.bot_id))
        if self.config.workspace_url and self.config.workspace_secret:
            headers = {
                "X-MeetStream-Signature": sign(self.config.workspace_secret, raw),
                "X-MeetStream-Timestamp": now.isoformat(),
            }
            self._webhooks.submit(
                Delivery(self.config.workspace_url, raw, name, bot.bot_id, workspace=True, headers=headers)
            )

    def _start_live(self, bot: BotRecord, started_at: datetime) -> None:
        """Post live transcription results while the bot records, if it was asked for them."""
        url = live_webhook_url(bot.request_payload)
        if url is None:
            return
        plan = live_plan(
            bot.bot_id,
            segments=self.config.live_segments,
            started_at=started_at,
            meeting_seconds=self.config.meeting_seconds,
            custom_attributes=bot.custom_attributes,
            interim=self.config.live_interim,
        )
        generation = bot.generation
        for item in plan:
            self._timers.call_later(
                item.after / self.config.speed, partial(self._send_live, bot, url, item.payload, generation)
            )

    def _send_live(self, bot: BotRecord, url: str, payload: dict[str, Any], generation: int) -> None:
        with self._lock:
            # Nothing more is heard once the bot has left (or was removed).
            if bot.generation != generation or bot.cancelled or bot.leaving or bot.final:
                return
            self._webhooks.submit(Delivery(url, json.dumps(payload).encode(), "live_transcript", bot.bot_id))

    def _watch_schedule(self) -> None:
        if not self._watching_schedule:
            self._watching_schedule = True
            self._timers.call_later(0.0, self._check_schedule)

    def _check_schedule(self) -> None:
        with self._lock:
            now = self._clock.now()
            waiting = [
                bot
                for bot in self._bots.values()
                if bot.scheduled and not bot.leaving and bot.scenario is not Scenario.NO_SHOW
            ]
            for bot in waiting:
                if bot.join_at is None or bot.join_at <= now:
                    self._begin_join(bot)
            if any(bot.scheduled for bot in waiting):
                self._timers.call_later(_SCHEDULE_POLL_SECONDS, self._check_schedule)
            else:
                self._watching_schedule = False

    # --- reading bots -----------------------------------------------------------------------

    def _find(self, bot_id: str) -> BotRecord | None:
        bot = self._bots.get(bot_id)
        return None if bot is None or bot.cancelled else bot

    def _bot_status(self, request: Request, bot_id: str) -> Reply:
        with self._lock:
            bot = self._find(bot_id)
            if bot is None:
                return _error(404, "Bot not found.")
            return Reply(200, {"bot_id": bot.bot_id, "status": bot.status, "custom_attributes": bot.custom_attributes})

    def _list_bots(self, request: Request) -> Reply:
        wanted = request.query.get("status")
        with self._lock:
            bots = [
                {
                    "bot_id": bot.bot_id,
                    "status": bot.status,
                    "meeting_link": bot.meeting_link,
                    "platform": bot.platform,
                    "created_at": _iso(bot.created_at),
                    "custom_attributes": bot.custom_attributes,
                }
                for bot in self._bots.values()
                if not bot.cancelled and (wanted is None or bot.status == wanted)
            ]
        return Reply(200, {"bots": bots, "hasNextPage": False, "nextCursor": None})

    def _bot_detail(self, request: Request, bot_id: str) -> Reply:
        with self._lock:
            bot = self._find(bot_id)
            if bot is None:
                return _error(404, "Bot not found.")
            duration = (bot.ended_at - bot.started_at).total_seconds() if bot.ended_at and bot.started_at else None
            details = {
                "BotID": bot.bot_id,
                "BotUsername": bot.bot_name,
                "MeetingLink": bot.meeting_link,
                "Platform": bot.platform,
                "Status": bot.status,
                "StatusTimeline": {key: dict(value) for key, value in bot.timeline.items()},
                "transcript_id": bot.transcript_id,
                "custom_attributes": bot.custom_attributes,
                "RequestPayload": bot.request_payload,
                "CreatedAt": _iso(bot.created_at),
                "LastUpdatedAt": int((bot.last_timestamp or bot.created_at).timestamp()),
                "StartTime": _iso(bot.started_at),
                "EndTime": _iso(bot.ended_at),
                "Duration": duration,
                "ScheduledJoinTime": _iso(bot.join_at),
                "NativeSTT": bot.provider == "meeting_captions",
                "AudioStatus": "Success" if "audio.processed" in bot.events_sent else None,
                "TranscriptStatus": (
                    "Success" if bot.transcript_ready else "Failed" if bot.transcript_failed else None
                ),
                "ManifestStatus": "Success" if "manifest.completed" in bot.events_sent else None,
                "caption_file": {"available": False},
                "OfferingType": "api",
            }
            return Reply(200, {"bot_details": details})

    def _transcriptions(self, request: Request, bot_id: str) -> Reply:
        with self._lock:
            bot = self._find(bot_id)
            if bot is None:
                return _error(404, "Bot not found.")
            runs = []
            if bot.transcript_id and not bot.data_deleted:
                state = "Success" if bot.transcript_ready else "Failed" if bot.transcript_failed else "Processing"
                runs.append(
                    {
                        "transcript_id": bot.transcript_id,
                        "provider": bot.provider,
                        "status": state,
                        "created_at": _iso(bot.created_at),
                        "config": (bot.request_payload.get("recording_config") or {}).get("transcript"),
                        "download_urls": None,
                    }
                )
            return Reply(200, {"bot_id": bot.bot_id, "transcriptions": runs})

    def _get_transcript(self, request: Request, transcript_id: str) -> Reply:
        with self._lock:
            bot_id = self._by_transcript.get(transcript_id)
            bot = self._find(bot_id) if bot_id else None
            if bot is None or bot.data_deleted:
                return _error(404, "Transcript not found.")
            if not bot.transcript_ready:
                return _error(202, "Transcript is still being processed.")
            if bot.scenario is Scenario.EMPTY_TRANSCRIPT:
                count = 0
            elif bot.scenario is Scenario.LONG_TRANSCRIPT:
                count = self.config.long_transcript_segments
            else:
                count = self.config.transcript_segments
            started = bot.started_at or bot.created_at
        segments = transcript_segments(bot.bot_id, count, started)
        return Reply(200, stream=encode_transcript(segments, self.config.transcript_envelope))

    # --- changing bots ----------------------------------------------------------------------

    def _remove_bot(self, request: Request, bot_id: str) -> Reply:
        with self._lock:
            bot = self._find(bot_id)
            if bot is None or bot.final:
                return _error(404, "Bot not found or it has already left the meeting.")
            if bot.leaving:
                return Reply(200, {"message": "Bot is already leaving the meeting."})
            bot.generation += 1  # cancels the steps still pending
            bot.leaving = True
            if bot.scenario is Scenario.NO_SHOW:
                bot.status, bot.ended_at = "Stopped", self._clock.now()
            elif bot.status == "Scheduled":
                self._run(
                    bot,
                    [
                        Step(0.0, "bot.stopped", "Bot was removed before it joined the meeting"),
                        Step(self.config.processing_seconds, "bot.done"),
                    ],
                )
            else:
                plan = exit_plan(
                    bot, self.config, "bot.stopped", after=0.0, media=bot.recording,
                    message="Bot was removed from the meeting", transcript_delay=bot.transcript_delay,
                )  # fmt: skip
                self._run(bot, plan)
            return Reply(200, {"message": "Bot is leaving the meeting."})

    def _delete_data(self, request: Request, bot_id: str) -> Reply:
        with self._lock:
            bot = self._find(bot_id)
            if bot is None or bot.data_deleted:
                return _error(404, "Bot not found.")
            if not bot.final:
                return _error(400, "Bot is still active; remove it from the meeting before deleting its data.")
            artifacts = ("manifest.completed", "audio.processed", "transcription.processed", "video.processed")
            deleted = sum(1 for name in artifacts if name in bot.events_sent)
            bot.data_deleted = True
            self._emit(bot, "data_deletion", extra={"deleted_objects": deleted})
            return Reply(200, {"message": "Bot data deleted.", "bot_id": bot.bot_id, "deleted_objects": deleted})

    def _scheduled_bots(self, request: Request) -> Reply:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return _error(400, "limit must be an integer between 1 and 100.")
        with self._lock:
            waiting = sorted((b for b in self._bots.values() if b.scheduled), key=lambda b: (b.join_at, b.bot_id))
            listed = [
                {
                    "bot_id": bot.bot_id,
                    "platform": bot.platform,
                    "status": bot.status,
                    "scheduled_join_time": _iso(bot.join_at),
                    "bot_username": bot.bot_name,
                    "meeting_link": bot.meeting_link,
                    "custom_attributes": bot.custom_attributes,
                }
                for bot in waiting[:limit]
            ]
        return Reply(200, {"scheduled_bots": listed})

    def _reschedule(self, request: Request, bot_id: str) -> Reply:
        data = _json_object(request.body)
        if data is None:
            return _error(400, "Request body must be a JSON object.")
        raw = data.get("scheduled_join_time")
        if not isinstance(raw, str) or not raw.strip():
            return _error(400, "scheduled_join_time is required.")
        try:
            when = parse_iso(raw)
        except ValueError:
            return _error(400, "Invalid date format: scheduled_join_time must be ISO-8601 with a timezone.")
        with self._lock:
            bot = self._find(bot_id)
            if bot is None:
                return _error(404, "Bot not found.")
            if not bot.scheduled or bot.leaving:
                return _error(400, "Bot has already joined the meeting; it can no longer be rescheduled.")
            if when <= self._clock.now():
                return _error(400, "scheduled_join_time must be in the future.")
            bot.join_at = when
            bot.request_payload = {**bot.request_payload, "join_at": raw}
            return Reply(
                200,
                {
                    "message": "Scheduled bot updated.",
                    "bot_id": bot.bot_id,
                    "updated_fields": ["scheduled_join_time"],
                    "schedule_updated": True,
                },
            )

    def _cancel_scheduled(self, request: Request, bot_id: str) -> Reply:
        with self._lock:
            bot = self._find(bot_id)
            if bot is None:
                return _error(404, "Bot not found.")
            if not bot.scheduled or bot.leaving:
                return _error(400, "Bot has already joined the meeting; use remove_bot instead.")
            bot.cancelled = True
            bot.generation += 1
            return Reply(200, {"message": "Scheduled bot deleted.", "bot_id": bot.bot_id})

    # --- admin (no auth, no faults) ---------------------------------------------------------

    def _admin_scenarios(self, request: Request) -> Reply:
        with self._lock:
            return Reply(200, {"scenarios": {link: s.value for link, s in self._scenarios.items()}})

    def _admin_set_scenario(self, request: Request) -> Reply:
        data = _json_object(request.body)
        if data is None or not isinstance(data.get("meeting_link"), str) or not data["meeting_link"].strip():
            return _error(400, 'Send {"meeting_link": "...", "scenario": "..."}.')
        try:
            scenario = self.set_scenario(data["meeting_link"], str(data.get("scenario", "")))
        except ValueError:
            known = ", ".join(s.value for s in Scenario)
            return _error(400, f"Unknown scenario {data.get('scenario')!r}; known: {known}.")
        return Reply(200, {"meeting_link": data["meeting_link"].strip(), "scenario": scenario.value})

    def _admin_bots(self, request: Request) -> Reply:
        return Reply(200, {"bots": self.bots()})

    def _admin_faults(self, request: Request) -> Reply:
        return Reply(200, {"faults": self._faults.faults.to_dict(), "counts": self._faults.counts()})

    def _admin_set_faults(self, request: Request) -> Reply:
        data = _json_object(request.body)
        if data is None:
            return _error(400, "Send a JSON object of fault settings.")
        try:
            faults = Faults.from_dict(data)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        self._faults.set(faults)
        return Reply(200, {"faults": faults.to_dict()})

    def _admin_deliveries(self, request: Request) -> Reply:
        return Reply(200, {"deliveries": self._webhooks.deliveries()})


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _check_automatic_leave(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "automatic_leave must be an object."
    for key, seconds in value.items():
        if key == "bot_detection":
            continue
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            return f"automatic_leave.{key} must be a whole number of seconds."
    in_call = value.get("in_call_recording_timeout")
    if in_call is not None and in_call < 600:
        return "in_call_recording_timeout must be at least 600 seconds."
    if in_call is not None and in_call > 18000:
        return "in_call_recording_timeout must be at most 18000 seconds."
    denied = value.get("recording_permission_denied_timeout")
    if denied is not None and not 60 <= denied <= 300:
        return "recording_permission_denied_timeout must be between 60 and 300 seconds."
    return None


def _transcript_provider(recording_config: Any) -> tuple[str | None, str | None]:
    """Return (provider key, problem)."""
    if recording_config is None:
        return None, None
    if not isinstance(recording_config, dict):
        return None, "recording_config must be an object."
    transcript = recording_config.get("transcript")
    if transcript is None:
        return None, None
    provider = transcript.get("provider") if isinstance(transcript, dict) else None
    if not isinstance(provider, dict) or len(provider) != 1:
        return None, "recording_config.transcript.provider must be an object with exactly one provider."
    (name,) = provider
    if name not in KNOWN_PROVIDERS:
        return None, f"Unknown transcript provider {name!r}."
    if not isinstance(provider[name], dict):
        return None, f"recording_config.transcript.provider.{name} must be an object."
    return name, None
