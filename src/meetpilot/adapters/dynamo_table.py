"""The single table's keys and item codec, shared by the per-aggregate DynamoDB adapters.

Item layout (``pk`` / ``sk``):
- meeting  ``MEETING#<meeting key>`` / ``MEETING`` (``adapters.meetings``)
- session  ``SESSION#<session id>`` / ``SESSION`` (``adapters.sessions``; ``bot_id`` feeds the
  ``by-bot`` index, ``meeting_start`` and ``start_month`` the listing indexes)
- session event ``SESSION#<session id>`` / ``SESSION#E#<dedupe key>`` (one per accepted event: the
  session's history, read with the session by one Query)
- live segment ``SESSION#<session id>`` / ``LIVE#...`` (``adapters.live_segments``)
- calendar ``CALENDARS`` / ``CAL#<calendar id>`` (all in one partition: listing them is one Query)
- calendar event link ``CALENDAR#<calendar id>`` / ``EVENT#<event id>`` (``calendar_event_id`` =
  ``<calendar id>#<event id>`` feeds the ``by-calendar-event`` index)
- calendar decision ``CALENDAR#<calendar id>`` / ``DECISION#<event id>`` (``adapters.calendar_decisions``)
- event override ``CALENDAR#<calendar id>`` / ``OVERRIDE#<scope>#<event or series id>``
  (``adapters.calendar_overrides``)
- Google push channel ``CHANNEL#<channel id>`` / ``CHANNEL`` (``adapters.calendars``)
- user's bot settings ``USER#<user id>`` / ``BOT_SETTINGS`` (``adapters.bot_settings``)
- user's meeting ``USER#<user id>`` / ``MTG#<start>#<meeting key>`` (a user's meetings by start)
Meetings and sessions that want the reconciler carry ``attention_shard`` + ``attention_due``, the
keys of the sparse ``attention`` index (``adapters.attention``). Forgetting deletes by these keys
(``adapters.erasure``).
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.meeting import start_of_meeting_key
from meetpilot.errors import ConcurrentUpdate

ATTENTION_SHARDS = 4  # spreads the reconciler's index over a few partitions
CALENDARS_PK = "CALENDARS"

_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_ddb(value: Any) -> Any:
    """Python value -> DynamoDB-ready value (floats become Decimals)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_ddb(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_ddb(v) for v in value]
    return value


def _from_ddb(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_ddb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_ddb(v) for v in value]
    if isinstance(value, set):
        return {_from_ddb(v) for v in value}
    return value


def item(attrs: dict[str, Any]) -> dict[str, Any]:
    """Plain attributes -> a low-level DynamoDB item; None values are left out."""
    return {k: _ser.serialize(_to_ddb(v)) for k, v in attrs.items() if v is not None}


def plain(raw: dict[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item -> plain Python attributes (whole Decimals become ints)."""
    return {k: _from_ddb(_de.deserialize(v)) for k, v in raw.items()}


def when(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) and value else None


def is_condition_failure(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def meeting_pk(key: str) -> str:
    return f"MEETING#{key}"


def session_pk(session_id: str) -> str:
    return f"SESSION#{session_id}"


def calendar_sk(calendar_id: str) -> str:
    return f"CAL#{calendar_id}"


def link_pk(calendar_id: str) -> str:
    return f"CALENDAR#{calendar_id}"


def link_sk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def channel_pk(channel_id: str) -> str:
    return f"CHANNEL#{channel_id}"


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def user_meeting_sk(start: datetime, key: str) -> str:
    return f"MTG#{to_iso(start)}#{key}"


def attention_shard(ident: str) -> str:
    """The attention index partition of a meeting or session (a stable hash of its id)."""
    return f"A#{int(hashlib.sha256(ident.encode()).hexdigest(), 16) % ATTENTION_SHARDS}"


def session_index_attrs(meeting_key: str) -> dict[str, str]:
    """The keys of the session listing indexes: the meeting's start (from its dedup key) and its month.

    ``sessions-by-status`` (status, meeting_start) and ``sessions-by-month`` (start_month,
    meeting_start) list sessions without a Scan; a session whose key carries no start stays out.
    """
    start = start_of_meeting_key(meeting_key)
    if start is None:
        return {}
    return {"meeting_start": to_iso(start), "start_month": start.strftime("%Y-%m")}


class TableAdapter:
    """One aggregate's view of the table, through a low-level boto3 DynamoDB client."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item a consistent Query finds, page by page, as plain attributes."""
        items: list[dict[str, Any]] = []
        request = {"TableName": self._table, "ConsistentRead": True, **kwargs}
        while True:
            page = self._ddb.query(**request)
            items.extend(plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _delete_keys(self, keys: list[dict[str, Any]]) -> int:
        """Delete items by key, 25 to a BatchWriteItem, retrying what DynamoDB leaves unprocessed."""
        for start in range(0, len(keys), 25):
            request = {self._table: [{"DeleteRequest": {"Key": item(k)}} for k in keys[start : start + 25]]}
            for attempt in range(10):
                resp = self._ddb.batch_write_item(RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off before the rest
            if request:
                raise ConcurrentUpdate("DynamoDB kept throttling the deletes; run forget again")
        return len(keys)
