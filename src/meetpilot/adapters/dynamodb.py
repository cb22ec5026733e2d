"""The whole single table as one object, for the composition root: every aggregate's adapter over
one client. Use cases are typed against the narrow ports in ``app.ports``; this only saves the
root from handing each handler seven objects that share a client and a table.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from meetpilot.adapters.attention import DynamoAttentionIndex
from meetpilot.adapters.bot_settings import DynamoUserBotSettings
from meetpilot.adapters.calendar_decisions import DynamoCalendarDecisions
from meetpilot.adapters.calendar_overrides import DynamoEventOverrides
from meetpilot.adapters.calendars import DynamoCalendarLinks, DynamoCalendars, DynamoPushChannels
from meetpilot.adapters.erasure import DynamoErasure
from meetpilot.adapters.meetings import DynamoMeetings
from meetpilot.adapters.sessions import DynamoSessions
from meetpilot.domain.meeting import DEFAULT_LEAD_TIME


class DynamoRepository(
    DynamoMeetings,
    DynamoSessions,
    DynamoAttentionIndex,
    DynamoCalendars,
    DynamoPushChannels,
    DynamoCalendarLinks,
    DynamoCalendarDecisions,
    DynamoEventOverrides,
    DynamoUserBotSettings,
    DynamoErasure,
):
    """Every storage port (``app.ports.Storage``) over one table."""

    def __init__(self, client: Any, table_name: str, *, lead_time: timedelta = DEFAULT_LEAD_TIME) -> None:
        super().__init__(client, table_name, lead_time=lead_time)
