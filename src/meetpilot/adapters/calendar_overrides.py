"""Per-event overrides ("record this one", "skip this one", for an occurrence or a series), in the
calendar's partition: ``OVERRIDE#<scope>#<event or series id>``, so an event keeps its override when
it moves, and the calendar's removal finds them with one Query."""

from __future__ import annotations

from typing import Any

from meetpilot.adapters.dynamo_table import TableAdapter, item, link_pk, plain, when
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.clock import to_iso
from meetpilot.domain.decisions import EventOverride, OverrideScope
from meetpilot.domain.retention import override_expires_at


def override_sk(scope: OverrideScope, target_id: str) -> str:
    return f"OVERRIDE#{scope.value}#{target_id}"


class DynamoEventOverrides(TableAdapter):
    """The overrides port (``app.ports.EventOverrides``)."""

    def get_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> EventOverride | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=item({"pk": link_pk(calendar_id), "sk": override_sk(scope, target_id)}),
            ConsistentRead=True,
        )
        return _override_from(plain(resp["Item"])) if "Item" in resp else None

    def put_override(self, override: EventOverride) -> None:
        attrs: dict[str, Any] = {
            "pk": link_pk(override.calendar_id),
            "sk": override_sk(override.scope, override.target_id),
            "type": "event_override",
            "calendar_id": override.calendar_id,
            "target_id": override.target_id,
            "scope": override.scope.value,
            "record": override.record,
            "bot": override.bot.as_dict() or None,
            "set_at": to_iso(override.set_at) if override.set_at else None,
            "until": to_iso(override.until) if override.until else None,
            "expires_at": override_expires_at(override),
        }
        self._ddb.put_item(TableName=self._table, Item=item(attrs))

    def delete_override(self, calendar_id: str, scope: OverrideScope, target_id: str) -> bool:
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=item({"pk": link_pk(calendar_id), "sk": override_sk(scope, target_id)}),
            ReturnValues="ALL_OLD",
        )
        return bool(resp.get("Attributes"))

    def list_overrides(self, calendar_id: str) -> list[EventOverride]:
        return [
            _override_from(a)
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :o)",
                ExpressionAttributeValues=item({":pk": link_pk(calendar_id), ":o": "OVERRIDE#"}),
            )
        ]


def _override_from(a: dict[str, Any]) -> EventOverride:
    return EventOverride(
        calendar_id=a["calendar_id"],
        target_id=a["target_id"],
        scope=OverrideScope(a["scope"]),
        record=bool(a["record"]),
        bot=BotSettings.from_dict(a.get("bot")),
        set_at=when(a.get("set_at")),
        until=when(a.get("until")),
    )
