"""A user's bot settings, one item in the user's partition (``USER#<user id>`` / ``BOT_SETTINGS``)."""

from __future__ import annotations

from datetime import datetime

from meetpilot.adapters.dynamo_table import TableAdapter, item, plain, user_pk
from meetpilot.domain.bot_settings import BotSettings
from meetpilot.domain.clock import to_iso

SETTINGS_SK = "BOT_SETTINGS"


class DynamoUserBotSettings(TableAdapter):
    """The user settings port (``app.ports.UserBotSettings``)."""

    def get_user_bot_settings(self, user_id: str) -> BotSettings:
        resp = self._ddb.get_item(
            TableName=self._table, Key=item({"pk": user_pk(user_id), "sk": SETTINGS_SK}), ConsistentRead=True
        )
        return BotSettings.from_dict(plain(resp["Item"]).get("bot")) if "Item" in resp else BotSettings()

    def put_user_bot_settings(self, user_id: str, settings: BotSettings, now: datetime) -> None:
        attrs = {
            "pk": user_pk(user_id),
            "sk": SETTINGS_SK,
            "type": "user_bot_settings",
            "user_id": user_id,
            "bot": settings.as_dict(),
            "updated_at": to_iso(now),
        }
        self._ddb.put_item(TableName=self._table, Item=item(attrs))

    def delete_user_bot_settings(self, user_id: str) -> bool:
        resp = self._ddb.delete_item(
            TableName=self._table, Key=item({"pk": user_pk(user_id), "sk": SETTINGS_SK}), ReturnValues="ALL_OLD"
        )
        return bool(resp.get("Attributes"))
