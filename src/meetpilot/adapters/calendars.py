"""Registered calendars, their Google push channels and their event links, in the single table.

A calendar item holds its sync state (ETag or sync token, lease, last error, current channel); a
sync holds the calendar's lease so two syncs of one calendar never interleave. An event link says
which meeting a calendar event asks a bot for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from meetpilot.adapters.dynamo_table import (
    CALENDARS_PK,
    TableAdapter,
    calendar_sk,
    channel_pk,
    is_condition_failure,
    item,
    link_pk,
    link_sk,
    plain,
    when,
)
from meetpilot.app.ports import ClaimUnavailable
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.calendar import Calendar, CalendarKind, CalendarLink, CalendarRules, PushChannel
from meetpilot.domain.clock import parse_iso, to_iso
from meetpilot.domain.retention import channel_expires_at, link_expires_at


class DynamoCalendars(TableAdapter):
    """The calendars port (``app.ports.Calendars``): registrations and their sync state."""

    def put_calendar(self, calendar: Calendar, now: datetime) -> bool:
        """Store a newly registered calendar; False if one with that id is registered already."""
        calendar.created_at = calendar.created_at or now
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=item(_calendar_attrs(calendar)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def get_calendar(self, calendar_id: str) -> Calendar | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
            ConsistentRead=True,
        )
        return _calendar_from(plain(resp["Item"])) if "Item" in resp else None

    def list_calendars(self) -> list[Calendar]:
        """Every registered calendar: one Query on their shared partition."""
        return [
            _calendar_from(a)
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :cal)",
                ExpressionAttributeValues=item({":pk": CALENDARS_PK, ":cal": "CAL#"}),
            )
        ]

    def delete_calendar(self, calendar_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}))

    def mark_calendar_removing(self, calendar_id: str) -> bool:
        """Flag a calendar as being removed: syncs and renewals leave it alone from now on."""
        return self._update_calendar(calendar_id, "SET removing = :yes", {":yes": True})

    def claim_calendar_sync(
        self, calendar_id: str, *, now: datetime, lease_seconds: int, removal: bool = False
    ) -> Calendar:
        """Take a calendar's sync lease, so two syncs of one calendar (or a sync and its removal) never interleave.

        Raises ClaimUnavailable: ``missing``, ``removing`` (a calendar being removed is only claimed
        with ``removal=True``), or ``busy`` with the seconds left on the other holder's lease.
        """
        until = now + timedelta(seconds=lease_seconds)
        not_removing = "" if removal else "attribute_not_exists(removing) AND "
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
                UpdateExpression="SET sync_lease_until = :until",
                ConditionExpression=(
                    "attribute_exists(pk) AND "
                    + not_removing
                    + "(attribute_not_exists(sync_lease_until) OR sync_lease_until < :now)"
                ),
                ExpressionAttributeValues=item({":until": to_iso(until), ":now": to_iso(now)}),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            old = exc.response.get("Item")
            if not old:
                raise ClaimUnavailable("missing") from None
            current = _calendar_from(plain(old))
            if current.removing and not removal:
                raise ClaimUnavailable("removing") from None
            held = current.sync_lease_until
            raise ClaimUnavailable("busy", max(1.0, (held - now).total_seconds()) if held else 1.0) from None
        return _calendar_from(plain(resp["Attributes"]))

    def release_calendar_sync(self, calendar_id: str) -> None:
        self._update_calendar(calendar_id, "REMOVE sync_lease_until", {})

    def record_calendar_sync(
        self,
        calendar_id: str,
        *,
        now: datetime,
        full: bool,
        etag: str | None = None,
        sync_token: str | None = None,
        problem: str | None = None,
    ) -> None:
        """A sync went through: store its cursor (ETag or sync token), release the lease, and clear the
        last error, or set it to ``problem`` when part of the source was left out."""
        sets = ["last_synced_at = :now"]
        removes = ["sync_lease_until"]
        values: dict[str, Any] = {":now": to_iso(now)}
        if problem:
            sets += ["last_error = :err", "last_error_at = :now"]
            values[":err"] = problem[:500]
        else:
            removes += ["last_error", "last_error_at"]
        if full:
            sets.append("last_full_sync_at = :now")
        for name, value in (("etag", etag), ("sync_token", sync_token)):
            if value:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
            else:
                removes.append(name)
        self._update_calendar(calendar_id, "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes), values)

    def record_calendar_error(
        self, calendar_id: str, *, now: datetime, message: str, drop_sync_token: bool = False
    ) -> None:
        """A sync failed: keep the last good state, say why, release the lease."""
        removes = ["sync_lease_until"] + (["sync_token"] if drop_sync_token else [])
        self._update_calendar(
            calendar_id,
            "SET last_error = :err, last_error_at = :now REMOVE " + ", ".join(removes),
            {":err": message[:500], ":now": to_iso(now)},
        )

    def drop_sync_token(self, calendar_id: str) -> None:
        self._update_calendar(calendar_id, "REMOVE sync_token", {})

    def mark_calendar_disconnected(self, calendar_id: str, *, reason: str, now: datetime) -> bool:
        """The grant stopped working: say why on the calendar, release the lease; True if newly so."""
        values = {":reason": reason[:500], ":now": to_iso(now)}
        if self._update_calendar(
            calendar_id,
            "SET disconnected_reason = :reason, disconnected_at = :now, last_error = :reason, last_error_at = :now"
            " REMOVE sync_lease_until",
            values,
            condition="attribute_not_exists(disconnected_reason)",
        ):
            return True
        self.release_calendar_sync(calendar_id)
        return False

    def set_calendar_channel(self, calendar_id: str, channel: PushChannel, *, expect_channel_id: str | None) -> bool:
        """Point the calendar at a new push channel, if its current one is still ``expect_channel_id``."""
        condition = "channel_id = :old" if expect_channel_id else "attribute_not_exists(channel_id)"
        values: dict[str, Any] = {":id": channel.channel_id, ":exp": to_iso(channel.expires_at)}
        if expect_channel_id:
            values[":old"] = expect_channel_id
        return self._update_calendar(
            calendar_id,
            "SET channel_id = :id, channel_expires_at = :exp",
            values,
            condition=f"attribute_not_exists(removing) AND {condition}",
        )

    def set_calendar_rules(
        self, calendar_id: str, *, rules: CalendarRules | None = None, bot: BotSettings | None = None
    ) -> bool:
        """Replace the calendar's rules and/or bot settings; False if the calendar is gone."""
        sets: list[str] = []
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        for name, value in (("filters", rules), ("bot", bot)):
            if value is not None:
                sets.append(f"#{name} = :{name}")
                names[f"#{name}"] = name
                values[f":{name}"] = value.as_dict()
        if not sets:
            return self.get_calendar(calendar_id) is not None
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=item(values),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True

    def store_refresh_token(self, calendar_id: str, sealed: str, *, expect_sealed: str | None) -> bool:
        """A rotated refresh token, written at once, unless another one was stored meanwhile."""
        condition = "sealed_refresh_token = :old" if expect_sealed else "attribute_not_exists(sealed_refresh_token)"
        values: dict[str, Any] = {":new": sealed}
        if expect_sealed:
            values[":old"] = expect_sealed
        return self._update_calendar(calendar_id, "SET sealed_refresh_token = :new", values, condition=condition)

    def reconnect_calendar(self, calendar_id: str, sealed: str) -> bool:
        """A new grant: store it, clear the disconnection and the error, drop the sync token (full resync)."""
        return self._update_calendar(
            calendar_id,
            "SET sealed_refresh_token = :new REMOVE disconnected_reason, disconnected_at, last_error, "
            "last_error_at, sync_token",
            {":new": sealed},
            condition="attribute_not_exists(removing)",
        )

    def update_calendar_details(
        self, calendar_id: str, *, label: str | None = None, owner_email: str | None = None
    ) -> bool:
        sets: list[str] = []
        removes: list[str] = []
        values: dict[str, Any] = {}
        for name, value in (("label", label), ("owner_email", owner_email)):
            if value is None:
                continue
            if value:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
            else:
                removes.append(name)
        if not sets and not removes:
            return self.get_calendar(calendar_id) is not None
        expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        return self._update_calendar(calendar_id, expression.strip(), values)

    def _update_calendar(
        self, calendar_id: str, expression: str, values: dict[str, Any], *, condition: str | None = None
    ) -> bool:
        full_condition = "attribute_exists(pk)" + (f" AND {condition}" if condition else "")
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": item(values)} if values else {}
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=item({"pk": CALENDARS_PK, "sk": calendar_sk(calendar_id)}),
                UpdateExpression=expression,
                ConditionExpression=full_condition,
                **kwargs,
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True


class DynamoPushChannels(TableAdapter):
    """The push channels port (``app.ports.PushChannels``): the push endpoint's one lookup."""

    def put_channel(self, channel: PushChannel) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item=item(
                {
                    "pk": channel_pk(channel.channel_id),
                    "sk": "CHANNEL",
                    "type": "channel",
                    "channel_id": channel.channel_id,
                    "calendar_id": channel.calendar_id,
                    "resource_id": channel.resource_id,
                    "token": channel.token,
                    "expires_at_iso": to_iso(channel.expires_at),
                    "expires_at": channel_expires_at(channel),
                }
            ),
        )

    def get_channel(self, channel_id: str) -> PushChannel | None:
        resp = self._ddb.get_item(
            TableName=self._table, Key=item({"pk": channel_pk(channel_id), "sk": "CHANNEL"}), ConsistentRead=True
        )
        if "Item" not in resp:
            return None
        a = plain(resp["Item"])
        return PushChannel(
            channel_id=a["channel_id"],
            calendar_id=a["calendar_id"],
            resource_id=a["resource_id"],
            expires_at=parse_iso(a["expires_at_iso"]),
            token=a["token"],
        )

    def delete_channel(self, channel_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=item({"pk": channel_pk(channel_id), "sk": "CHANNEL"}))


class DynamoCalendarLinks(TableAdapter):
    """The calendar links port (``app.ports.CalendarLinks``): which meeting each event asks for."""

    def get_calendar_link(self, calendar_id: str, event_id: str) -> CalendarLink | None:
        resp = self._ddb.get_item(
            TableName=self._table,
            Key=item({"pk": link_pk(calendar_id), "sk": link_sk(event_id)}),
            ConsistentRead=True,
        )
        return _link_from(plain(resp["Item"])) if "Item" in resp else None

    def put_calendar_link(self, link: CalendarLink, now: datetime) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item=item(
                {
                    "pk": link_pk(link.calendar_id),
                    "sk": link_sk(link.event_id),
                    "type": "calendar_event",
                    "calendar_id": link.calendar_id,
                    "event_id": link.event_id,
                    "calendar_event_id": link.calendar_event_id,
                    "meeting_key": link.meeting_key,
                    "start": to_iso(link.start),
                    "end": to_iso(link.end) if link.end else None,
                    "recurring_event_id": link.recurring_event_id,
                    "updated_at": to_iso(now),
                    "expires_at": link_expires_at(link),
                }
            ),
        )

    def delete_calendar_link(self, calendar_id: str, event_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=item({"pk": link_pk(calendar_id), "sk": link_sk(event_id)}))

    def list_calendar_links(self, calendar_id: str) -> list[CalendarLink]:
        """Every event of one calendar that points at a meeting: one Query on the calendar's partition."""
        return [
            _link_from(a)
            for a in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :ev)",
                ExpressionAttributeValues=item({":pk": link_pk(calendar_id), ":ev": "EVENT#"}),
            )
        ]

    def meeting_for_calendar_event(self, calendar_id: str, event_id: str) -> str | None:
        """Which meeting a calendar event asks a bot for, through the ``by-calendar-event`` index."""
        resp = self._ddb.query(
            TableName=self._table,
            IndexName="by-calendar-event",
            KeyConditionExpression="calendar_event_id = :c",
            ExpressionAttributeValues=item({":c": f"{calendar_id}#{event_id}"}),
        )
        for found in resp.get("Items", []):
            key = plain(found).get("meeting_key")
            if isinstance(key, str):
                return key
        return None


def _calendar_attrs(c: Calendar) -> dict[str, Any]:
    return {
        "pk": CALENDARS_PK,
        "sk": calendar_sk(c.calendar_id),
        "type": "calendar",
        "calendar_id": c.calendar_id,
        "kind": c.kind.value,
        "user_id": c.user_id,
        "owner_email": c.owner_email,
        "label": c.label or None,
        "filters": c.filters.as_dict(),
        "bot": c.bot.as_dict() or None,
        "feed_url": c.feed_url,
        "etag": c.etag,
        "source_calendar_id": c.source_calendar_id,
        "sealed_refresh_token": c.sealed_refresh_token,
        "disconnected_reason": c.disconnected_reason,
        "disconnected_at": to_iso(c.disconnected_at) if c.disconnected_at else None,
        "sync_token": c.sync_token,
        "channel_id": c.channel_id,
        "channel_expires_at": to_iso(c.channel_expires_at) if c.channel_expires_at else None,
        "last_synced_at": to_iso(c.last_synced_at) if c.last_synced_at else None,
        "last_full_sync_at": to_iso(c.last_full_sync_at) if c.last_full_sync_at else None,
        "last_error": c.last_error,
        "last_error_at": to_iso(c.last_error_at) if c.last_error_at else None,
        "removing": True if c.removing else None,
        "created_at": to_iso(c.created_at) if c.created_at else None,
    }


def _calendar_from(a: dict[str, Any]) -> Calendar:
    return Calendar(
        calendar_id=a["calendar_id"],
        kind=CalendarKind(a["kind"]),
        user_id=a["user_id"],
        owner_email=a.get("owner_email"),
        label=a.get("label") or "",
        filters=CalendarRules.from_dict(a.get("filters")),
        bot=BotSettings.from_dict(a.get("bot")),
        feed_url=a.get("feed_url"),
        etag=a.get("etag"),
        source_calendar_id=a.get("source_calendar_id") or a.get("google_calendar_id"),
        sealed_refresh_token=a.get("sealed_refresh_token"),
        disconnected_reason=a.get("disconnected_reason"),
        disconnected_at=when(a.get("disconnected_at")),
        sync_token=a.get("sync_token"),
        channel_id=a.get("channel_id"),
        channel_expires_at=when(a.get("channel_expires_at")),
        last_synced_at=when(a.get("last_synced_at")),
        last_full_sync_at=when(a.get("last_full_sync_at")),
        last_error=a.get("last_error"),
        last_error_at=when(a.get("last_error_at")),
        sync_lease_until=when(a.get("sync_lease_until")),
        removing=bool(a.get("removing", False)),
        created_at=when(a.get("created_at")),
    )


def _link_from(a: dict[str, Any]) -> CalendarLink:
    return CalendarLink(
        calendar_id=a["calendar_id"],
        event_id=a["event_id"],
        meeting_key=a["meeting_key"],
        start=parse_iso(a["start"]),
        end=when(a.get("end")),
        recurring_event_id=a.get("recurring_event_id"),
    )
