"""EventBridge Scheduler: one one-time ``at()`` schedule per meeting that sends the meeting key to the
dispatch queue ahead of its planned slot, and deletes itself after it fired; and the dispatch plan's
slots (``adapters.dispatch_plan``), claimed and given back with the schedule they go with.

Scheduler fires an ``at()`` anywhere in its minute, so a schedule is set a minute before the
slot's minute and the dispatcher holds the message back (an SQS delay) until the slot itself."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dispatch_plan import DynamoSlotBook
from meetpilot.app.messages import DispatchMeeting
from meetpilot.domain.dispatch_plan import SlotGrid

# A late dispatch is worthless once the meeting is well under way: give up retrying after this.
MAX_EVENT_AGE_SECONDS = 900


def schedule_name(meeting_key: str) -> str:
    """Deterministic, valid schedule name (<= 64 chars of [0-9A-Za-z-_.]) for a meeting."""
    return "mtg-" + hashlib.sha256(meeting_key.encode()).hexdigest()[:48]


def at_expression(when: datetime) -> str:
    return f"at({when.astimezone(UTC):%Y-%m-%dT%H:%M:%S})"


class EventBridgeDispatchScheduler:
    def __init__(
        self,
        client: Any,
        *,
        group: str,
        target_arn: str,
        role_arn: str,
        dead_letter_arn: str | None = None,
        plan: DynamoSlotBook | None = None,
        create_rate_per_second: float | None = None,
    ) -> None:
        self._plan = plan
        self._grid = SlotGrid.for_rate(create_rate_per_second) if create_rate_per_second else None
        self._scheduler = client
        self._group = group
        self._target_arn = target_arn
        self._role_arn = role_arn
        self._dlq_arn = dead_letter_arn

    def schedule(self, meeting_key: str, at: datetime) -> str:
        """Create the meeting's schedule, or move it if it exists. Returns the schedule name."""
        name = schedule_name(meeting_key)
        target: dict[str, Any] = {
            "Arn": self._target_arn,
            "RoleArn": self._role_arn,
            "Input": json.dumps(DispatchMeeting(meeting_key=meeting_key).to_body()),
            "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS},
        }
        if self._dlq_arn:
            target["DeadLetterConfig"] = {"Arn": self._dlq_arn}
        request = {
            "Name": name,
            "GroupName": self._group,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "State": "ENABLED",
            "Target": target,
            "Description": f"dispatch a bot for {meeting_key[:400]}",
        }
        try:
            self._scheduler.create_schedule(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            self._scheduler.update_schedule(**request)
        return name

    def claim_slot(self, *, latest: datetime, earliest: datetime) -> datetime | None:
        """The latest free slot of the plan in ``[earliest, latest]``, taken; None when all are full
        (or no plan is kept: then every meeting is dispatched at its deadline, as before planning)."""
        if self._plan is None or self._grid is None:
            return latest
        return self._plan.claim(self._grid, latest=latest, earliest=earliest)

    def release_slot(self, at: datetime) -> None:
        if self._plan is not None and self._grid is not None:
            self._plan.release(self._grid, at)

    def unschedule(self, meeting_key: str) -> bool:
        """Delete the meeting's schedule; False if there was none (already fired or never made)."""
        try:
            self._scheduler.delete_schedule(Name=schedule_name(meeting_key), GroupName=self._group)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
