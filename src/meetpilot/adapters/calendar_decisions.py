"""What the last sync decided for each calendar occurrence, in the calendar's partition of the table.

One item per occurrence (``DECISION#<event id>``): a moved event overwrites its own item. Listing a
calendar's decisions is one Query on its partition; the items expire with their event's link.
"""

from __future__ import annotations

from typing import Any

from meetpilot.adapters.dynamo_table import TableAdapter, item, link_pk, plain, when
from meetpilot.domain.calendar import EventFacts
from meetpilot.domain.clock import to_iso
from meetpilot.domain.decisions import Decision
from meetpilot.domain.retention import decision_expires_at


def decision_sk(event_id: str) -> str:
    return f"DECISION#{event_id}"


class DynamoCalendarDecisions(TableAdapter):
    """The decisions port (``app.ports.CalendarDecisions``)."""

    def get_decision(self, calendar_id: str, event_id: str) -> Decision | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=item({"pk": link_pk(calendar_id), "sk": decision_sk(event_id)}),
            ConsistentRead=True,
        )
        return decision_from(plain(resp["Item"])) if "Item" in resp else None

    def put_decision(self, decision: Decision) -> None:
        self._ddb.put_item(TableName=self._table, Item=item(decision_attrs(decision)))

    def delete_decision(self, calendar_id: str, event_id: str) -> None:
        self._ddb.delete_item(
            TableName=self._table, Key=item({"pk": link_pk(calendar_id), "sk": decision_sk(event_id)})
        )

    def list_decisions(self, calendar_id: str) -> list[Decision]:
        found = [
            decision_from(a)
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
                ExpressionAttributeValues=item({":pk": link_pk(calendar_id), ":d": "DECISION#"}),
            )
        ]
        return sorted(found, key=decision_order)


def decision_order(d: Decision) -> tuple[str, str]:
    return (to_iso(d.start) if d.start else "", d.event_id)


def decision_attrs(d: Decision) -> dict[str, Any]:
    f = d.facts
    return {
        "pk": link_pk(d.calendar_id),
        "sk": decision_sk(d.event_id),
        "type": "calendar_decision",
        "calendar_id": d.calendar_id,
        "event_id": d.event_id,
        "start": to_iso(d.start) if d.start else None,
        "end": to_iso(d.end) if d.end else None,
        "recorded": d.recorded,
        "reason": d.reason[:500],
        "meeting_key": d.meeting_key,
        "decided_at": to_iso(d.decided_at) if d.decided_at else None,
        "meeting_url": d.meeting_url,
        "all_day": d.all_day or None,
        "cancelled": d.cancelled or None,
        "recurring_event_id": d.recurring_event_id,
        "title": f.title[:300],
        "declined_by_owner": f.declined_by_owner or None,
        "owner_response": f.owner_response,
        "organized_by_owner": f.organized_by_owner,
        "organizer": f.organizer,
        "attendee_count": f.attendee_count,
        "attendee_domains": list(f.attendee_domains) or None,
        "expires_at": decision_expires_at(d),
    }


def decision_from(a: dict[str, Any]) -> Decision:
    return Decision(
        calendar_id=a["calendar_id"],
        event_id=a["event_id"],
        start=when(a.get("start")),
        end=when(a.get("end")),
        recorded=bool(a.get("recorded", False)),
        reason=str(a.get("reason") or ""),
        meeting_key=a.get("meeting_key"),
        decided_at=when(a.get("decided_at")),
        facts=EventFacts(
            title=str(a.get("title") or ""),
            declined_by_owner=bool(a.get("declined_by_owner", False)),
            owner_response=a.get("owner_response"),
            organized_by_owner=a.get("organized_by_owner"),
            organizer=a.get("organizer"),
            attendee_count=int(a.get("attendee_count") or 0),
            attendee_domains=tuple(a.get("attendee_domains") or ()),
        ),
        meeting_url=a.get("meeting_url"),
        all_day=bool(a.get("all_day", False)),
        cancelled=bool(a.get("cancelled", False)),
        recurring_event_id=a.get("recurring_event_id"),
    )
