"""Fires EventBridge Scheduler schedules locally (the emulator stores schedules but never runs them).

One-time ``at()`` schedules that are due send their target input to the target queue, then are
deleted when ``ActionAfterCompletion`` is DELETE; ``rate()`` schedules declared in the template
(``ScheduleV2`` events) invoke their function on their period.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from meetpilot.domain.clock import Clock
from meetpilot_dev.stack.invoke import Handler, LambdaContext

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def at_time(expression: str, timezone: str | None) -> datetime | None:
    """The moment an ``at(yyyy-mm-ddThh:mm:ss)`` expression names, in UTC; None if not an at()."""
    found = _AT.match(expression.strip())
    if not found:
        return None
    local = datetime.fromisoformat(found.group(1))
    return local.replace(tzinfo=ZoneInfo(timezone or "UTC")).astimezone(UTC)


def rate_seconds(expression: str) -> int | None:
    found = _RATE.match(expression.strip())
    if not found:
        return None
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


@dataclass
class RateSchedule:
    name: str
    every_seconds: int
    handler: Handler
    function_name: str
    payload: dict[str, Any]
    next_run: datetime | None = None


def rate_schedules_from_template(tpl: dict[str, Any], load: Any) -> list[RateSchedule]:
    """Every ``ScheduleV2`` event with a ``rate()`` expression on a function of the template."""
    out: list[RateSchedule] = []
    for logical_id, resource in (tpl.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "ScheduleV2":
                continue
            eprops = event.get("Properties") or {}
            every = rate_seconds(str(eprops.get("ScheduleExpression", "")))
            if every is None:
                continue
            raw_input = eprops.get("Input")
            payload = json.loads(raw_input) if isinstance(raw_input, str) else {}
            out.append(RateSchedule(f"{logical_id}.{event_name}", every, load(props["Handler"]), logical_id, payload))
    return out


class SchedulerRunner:
    def __init__(
        self,
        scheduler: Any,
        sqs: Any,
        *,
        group: str,
        clock: Clock,
        rate_schedules: list[RateSchedule] | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._sqs = sqs
        self._group = group
        self._clock = clock
        self._rates = rate_schedules or []
        self._fired: set[str] = set()  # schedules kept after firing (ActionAfterCompletion NONE)
        self.fired = 0
        self.errors: list[str] = []

    def _names(self) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"GroupName": self._group}
        while True:
            page = self._scheduler.list_schedules(**kwargs)
            names.extend(s["Name"] for s in page.get("Schedules", []))
            token = page.get("NextToken")
            if not token:
                return names
            kwargs["NextToken"] = token

    def _send(self, target: dict[str, Any]) -> None:
        arn = target["Arn"]
        parts = arn.split(":", 5)  # arn:aws:sqs:<region>:<account>:<queue name>
        if len(parts) != 6 or parts[2] != "sqs":
            raise ValueError(f"local scheduler only delivers to SQS targets, not {arn}")
        account, queue_name = parts[4], parts[5]
        url = self._sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=target.get("Input") or "{}")

    def fire_due(self) -> int:
        """Deliver every one-time schedule whose time has come; return how many fired."""
        now = self._clock.now()
        count = 0
        for name in self._names():
            if name in self._fired:
                continue
            try:
                schedule = self._scheduler.get_schedule(Name=name, GroupName=self._group)
            except ClientError:
                continue  # deleted meanwhile (a meeting was cancelled or moved)
            if schedule.get("State", "ENABLED") != "ENABLED":
                continue
            due = at_time(schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone"))
            if due is None or due > now:
                continue
            try:
                self._send(schedule["Target"])
            except Exception as exc:  # keep going; a broken target must not stop the others
                self.errors.append(f"{name}: {exc}")
                continue
            count += 1
            if schedule.get("ActionAfterCompletion") == "DELETE":
                with contextlib.suppress(ClientError):  # already gone is fine
                    self._scheduler.delete_schedule(Name=name, GroupName=self._group)
            else:
                self._fired.add(name)
        now = self._clock.now()
        for rate in self._rates:
            if rate.next_run is None:
                rate.next_run = now + timedelta(seconds=rate.every_seconds)
            elif rate.next_run <= now:
                rate.next_run = now + timedelta(seconds=rate.every_seconds)
                try:
                    rate.handler(dict(rate.payload), LambdaContext(rate.function_name))
                except Exception as exc:
                    self.errors.append(f"{rate.name}: {exc}")
                count += 1
        self.fired += count
        return count


class SchedulerThread(threading.Thread):
    def __init__(self, runner: SchedulerRunner, *, interval_seconds: float = 0.5) -> None:
        super().__init__(name="scheduler-runner", daemon=True)
        self.runner = runner
        self._interval = interval_seconds
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.runner.fire_due()
            except Exception as exc:  # the emulator may be shutting down; keep the reason
                self.runner.errors.append(f"runner: {exc}")
            self._stop_event.wait(self._interval)

    def stop(self) -> None:
        self._stop_event.set()
