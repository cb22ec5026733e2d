"""The calendar-sync queue's use case: sync one calendar, or come back when another sync holds it."""

from __future__ import annotations

from collections.abc import Callable

from meetpilot.app.calendar_sync import SyncDeps, SyncReport, sync_calendar
from meetpilot.app.messages import CalendarSyncJob
from meetpilot.app.ports import GoogleCalendars, IcsFeeds, MicrosoftCalendars
from meetpilot.app.workers.followups import Done, FollowUps, FollowUpStep, carry_out

# When a busy calendar's lease end is not known (seconds).
CALENDAR_BUSY_FALLBACK = 30.0


def work_calendar_sync(
    job: CalendarSyncJob,
    *,
    deps: SyncDeps,
    ics: Callable[[], IcsFeeds],
    google: Callable[[], GoogleCalendars],
    after: FollowUpStep,
    microsoft: Callable[[], MicrosoftCalendars] | None = None,
) -> Done[SyncReport]:
    """Sync the calendar. When another sync holds it, come back once its lease ends, so the change
    that triggered this message is not lost."""
    subscription = "recreate" if job.resubscribe else "renew" if job.renew_subscription else None
    report = sync_calendar(
        job.calendar_id,
        deps=deps,
        ics=ics,
        google=google,
        microsoft=microsoft,
        full=job.full,
        subscription=subscription,
    )
    if report.outcome != "busy":
        return Done(report)
    retry = job.updated(reason="retry_busy")
    return Done(report, carry_out(FollowUps(retry=retry, retry_in=report.retry_in or CALENDAR_BUSY_FALLBACK), after))
