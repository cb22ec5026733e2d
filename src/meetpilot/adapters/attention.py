"""The reconciler's work list: meetings and sessions whose attention time has passed.

Both aggregates write ``attention_shard`` + ``attention_due`` while they want a look (when is the
domain's rule: ``meeting_attention_due``, ``session.attention_due``) and drop them once settled, so
the sparse ``attention`` index holds only what is unsettled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meetpilot.adapters.dynamo_table import ATTENTION_SHARDS, TableAdapter, item, plain
from meetpilot.domain.clock import to_iso

_KINDS = {"MEETING": "meeting", "SESSION": "session"}


class DynamoAttentionIndex(TableAdapter):
    """The attention port (``app.ports.AttentionIndex``) over the table's sparse index."""

    def due_for_attention(self, now: datetime, *, limit: int = 500) -> list[tuple[str, str]]:
        """(kind, id) of meetings and sessions whose attention time has passed, oldest first.

        One Query per shard of the sparse ``attention`` index; never a Scan.
        """
        found: list[tuple[str, str, str]] = []
        for shard in range(ATTENTION_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "attention",
                "KeyConditionExpression": "attention_shard = :s AND attention_due <= :now",
                "ExpressionAttributeValues": item({":s": f"A#{shard}", ":now": to_iso(now)}),
                "ProjectionExpression": "pk, attention_due",
            }
            while len(found) < limit * ATTENTION_SHARDS:
                page = self._ddb.query(**kwargs)
                for raw in page.get("Items", []):
                    attrs = plain(raw)
                    found.append((attrs["attention_due"], *attrs["pk"].split("#", 1)))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort()
        return [(_KINDS[kind], ident) for _, kind, ident in found[:limit] if kind in _KINDS]
