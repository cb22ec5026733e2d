"""Live-transcript segments in the single table, under their session.

Item: ``pk = SESSION#<session id>``, ``sk = LIVE#<spoken at>#<segment id>``, so one query returns a
session's segments in the order they were spoken, and a conditional put on the key is the dedupe.
Segments expire (``expires_at``) once the assembled transcript is long in S3. About 0.5 KB each:
one write unit per final result, far cheaper than an S3 PUT per segment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.live_transcript import LiveSegment

_PREFIX = "LIVE#"


def _pk(session_id: str) -> str:
    return f"SESSION#{session_id}"


class DynamoLiveSegments:
    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def put_segment(
        self,
        session_id: str,
        segment: LiveSegment,
        *,
        expires_at: int,
        meeting_key: str | None = None,
        bot_id: str | None = None,
        received_at: datetime | None = None,
    ) -> bool:
        item: dict[str, Any] = {
            "pk": {"S": _pk(session_id)},
            "sk": {"S": f"{_PREFIX}{to_iso(segment.spoken_at)}#{segment.segment_id}"},
            "type": {"S": "live_segment"},
            "speaker": {"S": segment.speaker},
            "text": {"S": segment.text},
            "spoken_at": {"S": to_iso(segment.spoken_at)},
            # Words with their times, as one JSON string: compact, and never read on their own.
            "words": {"S": _compact(segment)},
            "expires_at": {"N": str(expires_at)},
        }
        if segment.bot_id:
            item["segment_bot"] = {"S": segment.bot_id}  # not bot_id: the by-bot index is for sessions
        # What the stream publisher needs for the segment's event, so it never reads the session.
        item["session_id"] = {"S": session_id}
        if meeting_key:
            item["meeting_key"] = {"S": meeting_key}
        if bot_id and not segment.bot_id:
            item["session_bot"] = {"S": bot_id}
        if received_at is not None:
            item["received_at"] = {"S": to_iso(received_at)}
        try:
            self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def segments(self, session_id: str) -> Iterator[LiveSegment]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :live)",
            "ExpressionAttributeValues": {":pk": {"S": _pk(session_id)}, ":live": {"S": _PREFIX}},
        }
        while True:
            page = self._ddb.query(**kwargs)
            for item in page.get("Items", []):
                yield _segment(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _compact(segment: LiveSegment) -> str:
    return json.dumps({"start": segment.start, "end": segment.end, "words": list(segment.words)}, separators=(",", ":"))


def _segment(item: dict[str, Any]) -> LiveSegment:
    extra = json.loads(item.get("words", {}).get("S") or "{}")
    return LiveSegment(
        segment_id=item["sk"]["S"].rsplit("#", 1)[-1],
        bot_id=item.get("segment_bot", {}).get("S"),
        spoken_at=parse_iso(item["spoken_at"]["S"]),
        speaker=item["speaker"]["S"],
        text=item["text"]["S"],
        start=extra.get("start"),
        end=extra.get("end"),
        words=tuple(extra.get("words") or ()),
    )
