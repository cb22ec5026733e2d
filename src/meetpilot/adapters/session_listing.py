"""Session lists from the single table, by index Query only: ``sessions-by-status``,
``sessions-by-month``, a user's meeting items and ``by-calendar-event``.

A page's resume position is DynamoDB's LastEvaluatedKey. It comes back from clients inside a
cursor, so it is checked against the partition it is for before DynamoDB sees it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import item as _item
from meetpilot.adapters.dynamo_table import meeting_pk, session_pk, user_pk
from meetpilot.adapters.dynamo_table import plain as _plain
from meetpilot.app.queries import IndexPage, SessionSummary
from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.errors import InvalidInput

_BAD_RESUME = "cursor is not one this API gave out (or the data moved on); list again without it"
_SUMMARY = (
    "session_id, meeting_key, bot_id, #status, outcome, outcome_reason, needs_review, transcript_state, "
    "meeting_start, created_at"
)
_BATCH = 100  # BatchGetItem's limit


def _summary(a: dict[str, Any]) -> SessionSummary:
    def when(name: str) -> datetime | None:
        value = a.get(name)
        return parse_iso(value) if isinstance(value, str) and value else None

    return SessionSummary(
        session_id=a["session_id"],
        meeting_key=a["meeting_key"],
        status=a.get("status", "pending"),
        bot_id=a.get("bot_id"),
        outcome=a.get("outcome"),
        outcome_reason=a.get("outcome_reason"),
        needs_review=bool(a.get("needs_review", False)),
        transcript_state=a.get("transcript_state"),
        meeting_start=when("meeting_start"),
        created_at=when("created_at"),
    )


def _range(start_from: datetime | None, start_to: datetime | None, prefix: str = "") -> tuple[str, str]:
    low = prefix + (to_iso(start_from) if start_from else "0000")  # a key value may not be empty
    high = prefix + (to_iso(start_to) if start_to else "9999") + "\uffff"
    return low, high


class DynamoSessionListing:
    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def _check_resume(self, resume: Any, expected: dict[str, str]) -> dict[str, Any] | None:
        """``resume`` as an ExclusiveStartKey, if it has exactly the index's key attributes and stays
        in the partition being read."""
        if resume is None:
            return None
        if not isinstance(resume, dict) or not all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in resume.values()
        ):
            raise InvalidInput(_BAD_RESUME)
        if set(resume) != set(expected) | {"pk", "sk"} and set(resume) != set(expected):
            raise InvalidInput(_BAD_RESUME)
        for name, value in expected.items():
            if value and resume[name]["S"] != value:
                raise InvalidInput(_BAD_RESUME)
        return resume

    def _query(self, request: dict[str, Any], resume: dict[str, Any] | None) -> dict[str, Any]:
        if resume is not None:
            request["ExclusiveStartKey"] = resume
        try:
            page: dict[str, Any] = self._ddb.query(TableName=self._table, ScanIndexForward=False, **request)
        except ClientError as exc:
            # A well-formed but made-up start key is refused by DynamoDB; that is the caller's cursor.
            if resume is not None and exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise InvalidInput(_BAD_RESUME) from None
            raise
        return page

    def _index_page(
        self,
        index: str,
        partition_attr: str,
        partition: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        resume: Any,
    ) -> IndexPage:
        start_key = self._check_resume(resume, {partition_attr: partition, "meeting_start": ""})
        low, high = _range(start_from, start_to)
        page = self._query(
            {
                "IndexName": index,
                "KeyConditionExpression": "#p = :p AND meeting_start BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": {"#p": partition_attr, "#status": "status"},
                "ExpressionAttributeValues": _item({":p": partition, ":lo": low, ":hi": high}),
                "ProjectionExpression": _SUMMARY,
                "Limit": limit,
            },
            start_key,
        )
        items = [_summary(_plain(i)) for i in page.get("Items", [])]
        return IndexPage(items, page.get("LastEvaluatedKey"))

    def by_status(
        self, status: str, *, start_from: datetime | None, start_to: datetime | None, limit: int, resume: Any
    ) -> IndexPage:
        return self._index_page(
            "sessions-by-status",
            "status",
            status,
            start_from=start_from,
            start_to=start_to,
            limit=limit,
            resume=resume,
        )

    def by_month(
        self, month: str, *, start_from: datetime | None, start_to: datetime | None, limit: int, resume: Any
    ) -> IndexPage:
        """A month's sessions, newest meeting first. The index holds only what never changes (its
        entries are written once per session); the summaries come from the table, one BatchGetItem
        per page."""
        start_key = self._check_resume(resume, {"start_month": month, "meeting_start": ""})
        low, high = _range(start_from, start_to)
        page = self._query(
            {
                "IndexName": "sessions-by-month",
                "KeyConditionExpression": "start_month = :p AND meeting_start BETWEEN :lo AND :hi",
                "ExpressionAttributeValues": _item({":p": month, ":lo": low, ":hi": high}),
                "ProjectionExpression": "session_id",
                "Limit": limit,
            },
            start_key,
        )
        session_ids = [str(_plain(i)["session_id"]) for i in page.get("Items", [])]
        sessions = self._batch_get([session_pk(s) for s in session_ids], "SESSION", _SUMMARY)
        items = [_summary(sessions[session_pk(s)]) for s in session_ids if session_pk(s) in sessions]
        return IndexPage(items, page.get("LastEvaluatedKey"))

    def by_user(
        self, user_id: str, *, start_from: datetime | None, start_to: datetime | None, limit: int, resume: Any
    ) -> IndexPage:
        """The sessions of a user's meetings: their meeting items (one Query), then the meetings and
        sessions they point at (BatchGetItem). Meetings without a bot yet are left out."""
        start_key = self._check_resume(resume, {"pk": user_pk(user_id), "sk": ""})
        low, high = _range(start_from, start_to, prefix="MTG#")
        page = self._query(
            {
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
                "ExpressionAttributeValues": _item({":pk": user_pk(user_id), ":lo": low, ":hi": high}),
                "ProjectionExpression": "meeting_key",
                "Limit": limit,
                "ConsistentRead": True,
            },
            start_key,
        )
        keys = [_plain(i)["meeting_key"] for i in page.get("Items", [])]
        meetings = self._batch_get([meeting_pk(k) for k in keys], "MEETING", "meeting_key, session_id")
        session_ids = [
            meetings[meeting_pk(k)]["session_id"] for k in keys if meetings.get(meeting_pk(k), {}).get("session_id")
        ]
        sessions = self._batch_get([session_pk(s) for s in session_ids], "SESSION", _SUMMARY)
        items = [_summary(sessions[session_pk(s)]) for s in session_ids if session_pk(s) in sessions]
        return IndexPage(items, page.get("LastEvaluatedKey"))

    def by_calendar_event(self, calendar_event_id: str) -> list[SessionSummary]:
        """The session of the meeting a calendar event points at (none, or one)."""
        page = self._ddb.query(
            TableName=self._table,
            IndexName="by-calendar-event",
            KeyConditionExpression="calendar_event_id = :c",
            ExpressionAttributeValues=_item({":c": calendar_event_id}),
            ProjectionExpression="meeting_key",
        )
        keys = sorted({k for i in page.get("Items", []) if isinstance(k := _plain(i).get("meeting_key"), str)})
        meetings = self._batch_get([meeting_pk(k) for k in keys], "MEETING", "meeting_key, session_id")
        session_ids = [m["session_id"] for m in meetings.values() if m.get("session_id")]
        sessions = self._batch_get([session_pk(s) for s in session_ids], "SESSION", _SUMMARY)
        return [_summary(a) for a in sessions.values()]

    def _batch_get(self, pks: list[str], sk: str, projection: str) -> dict[str, dict[str, Any]]:
        """Items by pk (each with the one sort key ``sk``), as plain dicts keyed by pk."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(pks))
        for start in range(0, len(unique), _BATCH):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [_item({"pk": pk, "sk": sk}) for pk in unique[start : start + _BATCH]],
                    "ProjectionExpression": "pk, " + projection,
                    "ExpressionAttributeNames": {"#status": "status"} if "#status" in projection else None,
                    "ConsistentRead": True,
                }
            }
            if request[self._table]["ExpressionAttributeNames"] is None:
                del request[self._table]["ExpressionAttributeNames"]
            for _ in range(8):
                resp = self._ddb.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    plain = _plain(item)
                    found[plain["pk"]] = plain
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found
