"""Forgetting's reads and deletes, which cross aggregates: a session's whole partition (the session
and its live segments), a meeting and its user entries, a calendar event link.

``app.forget`` decides what to delete; this knows where each thing lies (see ``dynamo_table``).
Index entries follow their items.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import (
    TableAdapter,
    is_condition_failure,
    item,
    link_pk,
    link_sk,
    meeting_pk,
    plain,
    session_index_attrs,
    session_pk,
    user_pk,
)


class DynamoErasure(TableAdapter):
    """The erasure port (``app.ports.Erasure``) over one table."""

    def session_ids_of_meeting(self, key: str) -> list[str]:
        """Every session ever made for a meeting (a revived meeting has had more than one): its
        month's partition of ``sessions-by-month`` at its exact start minute, filtered on the key."""
        attrs = session_index_attrs(key)
        if not attrs:
            return []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "sessions-by-month",
            "KeyConditionExpression": "start_month = :m AND meeting_start = :s",
            "FilterExpression": "meeting_key = :k",
            "ExpressionAttributeValues": item({":m": attrs["start_month"], ":s": attrs["meeting_start"], ":k": key}),
            "ProjectionExpression": "session_id",
        }
        found: list[str] = []
        while True:
            page = self._ddb.query(**request)
            found.extend(str(plain(i)["session_id"]) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(set(found))
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete_session_items(self, session_id: str, *, keep_session: bool = False) -> int:
        """Delete a session's partition: the session item (its history and dedupe hashes go
        with it) and its live segments; return how many items went. With ``keep_session`` the
        session item stays, as the map from its bot to what is still to be erased."""
        keys = [
            {"pk": a["pk"], "sk": a["sk"]}
            for a in self._query_all(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=item({":pk": session_pk(session_id)}),
                ProjectionExpression="pk, sk",
            )
            if not (keep_session and a["sk"] == "SESSION")
        ]
        return self._delete_keys(keys)

    def detach_session(self, key: str, session_id: str) -> bool:
        """Take a forgotten session (and its bot id) off its meeting, if the meeting still points at it."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="REMOVE session_id, bot",
                ConditionExpression="session_id = :sid",
                ExpressionAttributeValues=item({":sid": session_id}),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True

    def delete_meeting(self, key: str) -> bool:
        """Delete a meeting item; False if there was none."""
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=item({"pk": meeting_pk(key), "sk": "MEETING"}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in resp

    def user_meeting_entries(self, user_id: str) -> list[tuple[str, str]]:
        """(sort key, meeting key) of every meeting item in a user's partition."""
        return [
            (str(a["sk"]), str(a["meeting_key"]))
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :mtg)",
                ExpressionAttributeValues=item({":pk": user_pk(user_id), ":mtg": "MTG#"}),
                ProjectionExpression="sk, meeting_key",
            )
        ]

    def delete_user_meeting_entries(self, user_id: str, key: str) -> int:
        """Delete a user's index entries for one meeting (one per start the meeting was seen with)."""
        entries = [(sk, k) for sk, k in self.user_meeting_entries(user_id) if k == key]
        return self._delete_keys([{"pk": user_pk(user_id), "sk": sk} for sk, _ in entries])

    def remove_user_from_meeting(self, key: str, user_id: str) -> bool:
        """Take one user off a meeting others keep; False if the meeting is gone."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=item({"pk": meeting_pk(key), "sk": "MEETING"}),
                UpdateExpression="DELETE user_ids :u",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=item({":u": {user_id}}),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True

    def delete_calendar_link_if_present(self, calendar_id: str, event_id: str) -> bool:
        """Delete one calendar event link; False if there was none."""
        resp = self._ddb.delete_item(
            TableName=self._table,
            Key=item({"pk": link_pk(calendar_id), "sk": link_sk(event_id)}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in resp
