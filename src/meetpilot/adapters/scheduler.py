"""EventBridge Scheduler: one one-time ``at()`` schedule per meeting that sends the meeting key to the
dispatch queue at start minus lead time, and deletes itself after it fired."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.app.messages import DispatchMeeting

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
    ) -> None:
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

    def unschedule(self, meeting_key: str) -> bool:
        """Delete the meeting's schedule; False if there was none (already fired or never made)."""
        try:
            self._scheduler.delete_schedule(Name=schedule_name(meeting_key), GroupName=self._group)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
