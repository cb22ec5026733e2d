"""Calendar sync: converge meetings on what the calendars say, one changed event at a time.

Nothing is patched incrementally. For every event a source reports, ``converge_event`` works out
which meeting (if any) it should point at now and makes that true: a new event adds its meeting
(one meeting per meeting key, however many calendars carry it) and plans its dispatch; a moved
event attaches to its new meeting and leaves the old one; an event that is gone, cancelled,
declined or lost its link leaves its meeting. A meeting that loses its last event is cancelled and
its bot withdrawn (see ``meetpilot.app.cancellation``); an event pointing at a cancelled meeting
again revives it with a fresh session.

The event link items (``calendar id + event id -> meeting key``) are what the calendar asked for
last time; they are written after the meetings they name, so a sync that dies half-way is finished
by the next one. A source that fails (a feed that is down or returns garbage, a revoked Google
grant) changes nothing: the calendar keeps its last good state and records the error.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from meetpilot.app.cancellation import cancel_meeting
from meetpilot.app.dispatch import DispatchConfig, delay_until, plan_dispatch
from meetpilot.app.messages import CalendarSyncJob, DispatchMeeting
from meetpilot.app.ports import (
    BotProvider,
    CalendarRepository,
    Calendars,
    CalendarStorage,
    ClaimUnavailable,
    DeltaSync,
    DispatchScheduler,
    GoogleCalendars,
    IcsFeeds,
    MessageQueue,
    MicrosoftCalendars,
)
from meetpilot.domain.calendar import (
    AccessRevoked,
    Calendar,
    CalendarEvent,
    CalendarKind,
    CalendarLink,
    CalendarSourceError,
    EventFacts,
    PushChannel,
    SyncTokenExpired,
    calendar_event_id,
    describe_skipped,
)
from meetpilot.domain.clock import Clock
from meetpilot.domain.decisions import (
    Decision,
    EventOverride,
    OverrideScope,
    Verdict,
    applicable_override,
    decision_for,
    evaluate,
)
from meetpilot.domain.meeting import DesiredState, Meeting
from meetpilot.errors import ConfigurationError


@dataclass(frozen=True)
class CalendarSyncConfig:
    # The window an ICS feed is expanded over, and how far ahead any calendar gets meetings.
    window_before: timedelta = timedelta(hours=1)
    horizon: timedelta = timedelta(days=14)
    # How long one sync may hold a calendar (the sync function's timeout).
    lease_seconds: int = 120
    # An ICS feed is re-read in full this often even when it answers 304, so occurrences that
    # enter the window at its far end are seen although the feed did not change.
    ics_revalidate_every: timedelta = timedelta(hours=6)
    # Google: a full resync this often (events entering the horizon, anything a push missed), and
    # an incremental sync at least this often even without a push.
    google_full_sync_every: timedelta = timedelta(hours=24)
    google_safety_sync_every: timedelta = timedelta(hours=1)
    # Push channels are renewed when they expire within this long; new ones ask for this lifetime.
    renew_within: timedelta = timedelta(days=1)
    channel_ttl_seconds: int = 7 * 86400
    # Microsoft: a full round this often (the delta link's window is frozen, so this is what moves
    # it), an incremental round at least this often, and the lifetime new subscriptions ask for
    # (Graph refuses more than 10,070 minutes).
    microsoft_full_sync_every: timedelta = timedelta(hours=24)
    microsoft_safety_sync_every: timedelta = timedelta(hours=1)
    subscription_lifetime: timedelta = timedelta(minutes=10000)


@dataclass(frozen=True)
class GraphSubscriptions:
    """Where Graph sends a Microsoft calendar's change and lifecycle notifications, and how a new
    subscription's ``clientState`` secret is made."""

    notification_url: str
    lifecycle_url: str
    new_client_state: Callable[[], str]


@dataclass
class SyncDeps:
    """Everything converging needs."""

    repo: CalendarRepository
    scheduler: DispatchScheduler
    provider: BotProvider
    dispatch_queue: MessageQueue
    dispatch_config: DispatchConfig
    clock: Clock
    config: CalendarSyncConfig = field(default_factory=CalendarSyncConfig)
    # Microsoft subscriptions recreated or renewed by a sync job (lifecycle notifications).
    graph: GraphSubscriptions | None = None


@dataclass
class SyncReport:
    calendar_id: str
    outcome: str  # synced, not_modified, failed, busy, missing, removing, disconnected
    actions: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    retry_in: float | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"calendar_id": self.calendar_id, "outcome": self.outcome, **dict(self.actions)}
        if self.error:
            out["error"] = self.error
        return out


# --- converging one event ---------------------------------------------------------------------

# What a sync says of an occurrence a complete listing no longer has.
REMOVED_AT_SOURCE = "removed from the calendar"
# Decisions are kept for occurrences up to this many horizons ahead ("beyond the 14-day horizon").
KEEP_DECISIONS_AHEAD = 2


@dataclass
class Known:
    """What one sync loaded once for all its events: the calendar's overrides and last decisions.

    Without it (one event converged alone, as after an override is set) each is read by key.
    """

    overrides: dict[tuple[OverrideScope, str], EventOverride] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)

    @classmethod
    def load(cls, repo: CalendarRepository, calendar_id: str) -> Known:
        return cls(
            overrides={(o.scope, o.target_id): o for o in repo.list_overrides(calendar_id)},
            decisions={d.event_id: d for d in repo.list_decisions(calendar_id)},
        )


def converge_event(
    event: CalendarEvent,
    calendar: Calendar,
    deps: SyncDeps,
    *,
    facts: EventFacts | None = None,
    known: Known | None = None,
) -> str:
    """Make meetings, links and the event's decision match what this one event says now; returns what was done.

    ``facts`` stands in for the event's attendees when it is rebuilt from a stored decision.
    """
    repo = deps.repo
    now = deps.clock.now()
    link = repo.get_calendar_link(calendar.calendar_id, event.event_id)
    if event.cancelled:
        # An override goes with its event (and a series' with its series).
        _drop_override(repo, calendar.calendar_id, OverrideScope.OCCURRENCE, event.event_id, known)
    if link is None and event.cancelled and event.start is None:
        # Google reports a deleted series by the series id alone: every instance goes.
        _drop_override(repo, calendar.calendar_id, OverrideScope.SERIES, event.event_id, known)
        series = [
            other
            for other in repo.list_calendar_links(calendar.calendar_id)
            if other.recurring_event_id == event.event_id and other.last_moment > now
        ]
        for other in series:
            leave_meeting(other, deps)
        _record_series_cancelled(event, calendar, deps, known)
        return "series_cancelled" if series else "ignored"
    verdict = _target_key(event, calendar, now, deps, facts=facts, known=known)
    previous = (
        known.decisions.get(event.event_id)
        if known is not None
        else repo.get_decision(calendar.calendar_id, event.event_id)
    )
    if event.start is not None and (event.end or event.start + timedelta(hours=1)) <= now:
        # Moved into (or edited in) the past: no bot for it. A future meeting it was moved away
        # from loses it, though; a past or running one is left alone, and so is what was decided.
        if link is not None and link.start > now:
            leave_meeting(link, deps)
            _keep_decision(event, verdict, previous, deps, facts)
            return "moved_into_past"
        if previous is None:
            _keep_decision(event, verdict, previous, deps, facts)
        return "past"
    target = verdict.meeting_key if verdict.record else None
    _keep_decision(event, verdict, previous, deps, facts)
    if link is not None and link.meeting_key == target:
        current = repo.get_meeting(target)
        if (
            current is not None
            and current.desired is DesiredState.RECORD
            and link.calendar_event_id in current.calendar_event_ids
        ):
            return "unchanged"
        # The link says attached, the meeting disagrees (an earlier sync died half-way): repair.
        _attach(event, calendar, target, deps)
        return "repaired"
    if target is not None:
        assert event.start is not None and event.meeting_url is not None
        _attach(event, calendar, target, deps)
    if link is not None:
        leave_meeting(link, deps, keep_link=target is not None)
    if target is not None:
        assert event.start is not None
        repo.put_calendar_link(
            CalendarLink(
                calendar_id=calendar.calendar_id,
                event_id=event.event_id,
                meeting_key=target,
                start=event.start,
                end=event.end,
                recurring_event_id=event.recurring_event_id,
            ),
            now,
        )
        return "moved" if link is not None else "added"
    return "removed" if link is not None else "ignored"


def _target_key(
    event: CalendarEvent,
    calendar: Calendar,
    now: datetime,
    deps: SyncDeps,
    *,
    facts: EventFacts | None = None,
    known: Known | None = None,
) -> Verdict:
    """Whether the event wants a bot now (then under which meeting key), and why, in readable words."""
    return evaluate(
        event,
        rules=calendar.filters,
        owner_email=calendar.owner_email,
        override=override_for(event, calendar.calendar_id, deps.repo, known),
        now=now,
        horizon=deps.config.horizon,
        facts=facts,
    )


def override_for(
    event: CalendarEvent, calendar_id: str, repo: CalendarRepository, known: Known | None = None
) -> EventOverride | None:
    """The override that applies to this occurrence: its own, else its series'."""

    def get(scope: OverrideScope, target: str) -> EventOverride | None:
        if known is not None:
            return known.overrides.get((scope, target))
        return repo.get_override(calendar_id, scope, target)

    occurrence = get(OverrideScope.OCCURRENCE, event.event_id)
    series = get(OverrideScope.SERIES, event.recurring_event_id) if event.recurring_event_id else None
    return applicable_override(event.event_id, event.recurring_event_id, occurrence, series)


def _keep_decision(
    event: CalendarEvent, verdict: Verdict, previous: Decision | None, deps: SyncDeps, facts: EventFacts | None
) -> None:
    now = deps.clock.now()
    if previous is None and event.start is not None and event.start > now + KEEP_DECISIONS_AHEAD * deps.config.horizon:
        # Google lists a series' instances far ahead: those are decided when they come closer.
        return
    decision = decision_for(event, verdict, now, facts)
    if not decision.same_as(previous):
        deps.repo.put_decision(decision)


def _drop_override(
    repo: CalendarRepository, calendar_id: str, scope: OverrideScope, target: str, known: Known | None
) -> None:
    if known is not None and known.overrides.pop((scope, target), None) is None:
        return  # loaded at the start of the sync: there is none to delete
    repo.delete_override(calendar_id, scope, target)


def _record_series_cancelled(event: CalendarEvent, calendar: Calendar, deps: SyncDeps, known: Known | None) -> None:
    decisions = known.decisions.values() if known is not None else deps.repo.list_decisions(calendar.calendar_id)
    for decision in list(decisions):
        if decision.recurring_event_id != event.event_id or decision.cancelled:
            continue
        deps.repo.delete_override(calendar.calendar_id, OverrideScope.OCCURRENCE, decision.event_id)
        cancelled = replace(
            decision, recorded=False, reason="cancelled", meeting_key=None, cancelled=True, decided_at=deps.clock.now()
        )
        deps.repo.put_decision(cancelled)
        if known is not None:
            known.decisions[decision.event_id] = cancelled


def _attach(event: CalendarEvent, calendar: Calendar, key: str, deps: SyncDeps) -> None:
    assert event.start is not None and event.meeting_url is not None
    end = event.end if event.end is not None and event.end > event.start else None
    meeting = Meeting.new(
        event.meeting_url,
        event.start,
        end=end,
        title=event.title,
        user_id=calendar.user_id,
        calendar_event_id=calendar_event_id(calendar.calendar_id, event.event_id),
    )
    stored, _ = deps.repo.add_meeting(meeting, deps.clock.now())
    if stored.desired is DesiredState.CANCELLED:
        # Wanted again after it was cancelled: a fresh session and idempotency key, so a new bot.
        stored = deps.repo.revive_meeting(key) or stored
    plan = plan_dispatch(
        stored, scheduler=deps.scheduler, repo=deps.repo, config=deps.dispatch_config, clock=deps.clock
    )
    if plan.dispatch_now:
        # A slot of the plan closer than a schedule can place: the message's delay places it.
        delay = delay_until(plan.dispatch_at, deps.clock.now())
        body = DispatchMeeting(meeting_key=key, attempt=0, source="calendar").to_body()
        deps.dispatch_queue.send(body, delay_seconds=delay)


def leave_meeting(link: CalendarLink, deps: SyncDeps, *, keep_link: bool = False) -> str:
    """The event no longer points at ``link``'s meeting: take it off, cancel the meeting if it was the last."""
    action = "kept"
    meeting = deps.repo.detach_calendar_event(link.meeting_key, link.calendar_event_id)
    if meeting is not None and not meeting.calendar_event_ids and not meeting.adhoc:
        action = cancel_meeting(
            link.meeting_key,
            repo=deps.repo,
            scheduler=deps.scheduler,
            provider=deps.provider,
            clock=deps.clock,
            remove_in_meeting=deps.dispatch_config.remove_bot_on_cancel,
        )
    if not keep_link:
        deps.repo.delete_calendar_link(link.calendar_id, link.event_id)
    return action


def converge_all(
    events: Iterable[CalendarEvent],
    calendar: Calendar,
    deps: SyncDeps,
    *,
    missing_from: datetime | None = None,
    missing_until: datetime | None = None,
    unread_series: frozenset[str] = frozenset(),
) -> Counter[str]:
    """Converge every event; with ``missing_from``, links this source no longer reports are removed.

    A complete listing (an ICS feed, a full Google sync) names every event it knows in
    ``[missing_from, missing_until)``; a link in that range that it did not name was deleted, and so
    was its override; its decision says so. Links of ``unread_series`` (UIDs the source could not
    read this time) are not: unread is not deleted.
    """
    actions: Counter[str] = Counter()
    seen: set[str] = set()
    known = Known.load(deps.repo, calendar.calendar_id)
    for event in events:
        seen.add(event.event_id)
        actions[converge_event(event, calendar, deps, known=known)] += 1
    if missing_from is not None:

        def gone(event_id: str, recurring: str | None, start: datetime | None, last: datetime | None) -> bool:
            if event_id in seen or event_id in unread_series or recurring in unread_series:
                return False
            if last is not None and last <= missing_from:
                return False
            return not (missing_until is not None and start is not None and start >= missing_until)

        for link in deps.repo.list_calendar_links(calendar.calendar_id):
            if gone(link.event_id, link.recurring_event_id, link.start, link.last_moment):
                leave_meeting(link, deps)
                actions["removed"] += 1
        now = deps.clock.now()
        for decision in list(known.decisions.values()):
            if decision.reason == REMOVED_AT_SOURCE or not gone(
                decision.event_id, decision.recurring_event_id, decision.start, decision.last_moment
            ):
                continue
            _drop_override(deps.repo, calendar.calendar_id, OverrideScope.OCCURRENCE, decision.event_id, known)
            deps.repo.put_decision(
                replace(decision, recorded=False, reason=REMOVED_AT_SOURCE, meeting_key=None, decided_at=now)
            )
    return actions


# --- whole calendars --------------------------------------------------------------------------


def sync_calendar(
    calendar_id: str,
    *,
    deps: SyncDeps,
    ics: Callable[[], IcsFeeds],
    google: Callable[[], GoogleCalendars],
    microsoft: Callable[[], MicrosoftCalendars] | None = None,
    full: bool = False,
    subscription: str | None = None,
) -> SyncReport:
    """Sync one registered calendar under its lease. ``ics``/``google``/``microsoft`` build the source
    on demand; ``subscription`` (``renew`` or ``recreate``) first fixes a Microsoft calendar's
    Graph subscription.

    A calendar another sync holds answers ``busy`` with ``retry_in``; the caller re-queues it.
    A retryable source failure is recorded and re-raised (the message is retried); a permanent one
    is recorded and answered ``failed``; a grant that stopped working disconnects the calendar
    (``disconnected``), and a disconnected calendar is not synced until it is reconnected.
    """
    now = deps.clock.now()
    try:
        calendar = deps.repo.claim_calendar_sync(calendar_id, now=now, lease_seconds=deps.config.lease_seconds)
    except ClaimUnavailable as busy:
        return SyncReport(calendar_id, busy.state, retry_in=busy.retry_in_seconds)
    try:
        if not calendar.connected:
            deps.repo.release_calendar_sync(calendar_id)
            return SyncReport(calendar_id, "disconnected", error=calendar.disconnected_reason)
        if calendar.kind is CalendarKind.ICS:
            return _sync_ics(calendar, deps, ics())
        if calendar.kind is CalendarKind.MICROSOFT:
            if microsoft is None:
                raise ConfigurationError("this function cannot sync Microsoft calendars (no Graph client)")
            return _sync_microsoft(calendar, deps, microsoft(), full=full, subscription=subscription)
        return _sync_google(calendar, deps, google(), full=full)
    except BaseException:
        deps.repo.release_calendar_sync(calendar_id)
        raise


def _sync_ics(calendar: Calendar, deps: SyncDeps, feeds: IcsFeeds) -> SyncReport:
    now = deps.clock.now()
    cfg = deps.config
    window_start, window_end = now - cfg.window_before, now + cfg.horizon
    fresh = calendar.last_full_sync_at is not None and calendar.last_full_sync_at > now - cfg.ics_revalidate_every
    report = SyncReport(calendar.calendar_id, "synced")
    try:
        read = feeds.read(
            calendar.feed_url or "",
            calendar.etag if fresh else None,
            calendar_id=calendar.calendar_id,
            window_start=window_start,
            window_end=window_end,
            owner_email=calendar.owner_email,
        )
    except CalendarSourceError as exc:
        # Fetch or parse failed: keep every meeting as it is and say why on the calendar.
        deps.repo.record_calendar_error(calendar.calendar_id, now=now, message=str(exc))
        report.outcome, report.error = "failed", str(exc)
        return report
    if read.not_modified:
        deps.repo.record_calendar_sync(calendar.calendar_id, now=now, full=False, etag=read.etag or calendar.etag)
        report.outcome = "not_modified"
        return report
    unread = frozenset(s.uid for s in read.skipped_series)
    report.actions = converge_all(
        read.events, calendar, deps, missing_from=window_start, missing_until=window_end, unread_series=unread
    )
    if unread:
        report.actions["series_skipped"] += len(unread)
    # With a series skipped, the ETag is not kept: the next poll reads the feed again and reports it
    # again (a 304 would clear the report while the series is still broken).
    deps.repo.record_calendar_sync(
        calendar.calendar_id,
        now=deps.clock.now(),
        full=True,
        etag=None if unread else read.etag,
        problem=describe_skipped(read.skipped_series),
    )
    return report


def _sync_google(calendar: Calendar, deps: SyncDeps, google: GoogleCalendars, *, full: bool) -> SyncReport:
    now = deps.clock.now()
    time_min = now - deps.config.window_before
    token = None if full else calendar.sync_token
    report = SyncReport(calendar.calendar_id, "synced")
    try:
        try:
            result = google.sync(calendar, token, time_min=time_min)
        except SyncTokenExpired:
            # 410 Gone: the token is worthless. Drop it first, so that a crash from here on still
            # leads to a full sync next time, then list everything again.
            deps.repo.drop_sync_token(calendar.calendar_id)
            report.actions["full_resync"] += 1
            result = google.sync(calendar, None, time_min=time_min)
    except AccessRevoked as exc:
        return _disconnected(calendar, exc, deps, report)
    except CalendarSourceError as exc:
        deps.repo.record_calendar_error(calendar.calendar_id, now=now, message=str(exc))
        report.outcome, report.error = "failed", str(exc)
        if exc.retryable:
            raise
        return report
    actions = converge_all(result.events, calendar, deps, missing_from=time_min if result.full else None)
    report.actions.update(actions)
    # The new token only once every event of every page is converged: a sync that dies before
    # this point starts again from the old token and sees the same changes.
    deps.repo.record_calendar_sync(
        calendar.calendar_id, now=deps.clock.now(), full=result.full, sync_token=result.next_sync_token
    )
    return report


def _sync_microsoft(
    calendar: Calendar, deps: SyncDeps, graph: MicrosoftCalendars, *, full: bool, subscription: str | None
) -> SyncReport:
    """One delta round over ``[now - window_before, now + horizon)``, from the stored delta link.

    The link's window is frozen into it, so a full round (no link) runs daily, when asked, and
    after Graph forgot the link; a full round names every occurrence in its window, so a link in
    the window it did not name was deleted.
    """
    now = deps.clock.now()
    cfg = deps.config
    window_start, window_end = now - cfg.window_before, now + cfg.horizon
    report = SyncReport(calendar.calendar_id, "synced")
    stale = calendar.last_full_sync_at is None or calendar.last_full_sync_at <= now - cfg.microsoft_full_sync_every
    try:
        if subscription is not None:
            action = _fix_subscription(calendar, deps.repo, graph, deps, recreate=subscription == "recreate")
            report.actions[action] += 1
            full = full or action == "subscription_recreated"
        link = None if full or stale else calendar.sync_token
        try:
            result = graph.sync(calendar, link, window_start=window_start, window_end=window_end)
        except SyncTokenExpired:
            if link is None:
                raise
            # Drop the link first, so that a crash from here on still leads to a full round.
            deps.repo.drop_sync_token(calendar.calendar_id)
            report.actions["full_resync"] += 1
            result = graph.sync(calendar, None, window_start=window_start, window_end=window_end)
    except AccessRevoked as exc:
        return _disconnected(calendar, exc, deps, report)
    except CalendarSourceError as exc:
        deps.repo.record_calendar_error(calendar.calendar_id, now=now, message=str(exc))
        report.outcome, report.error = "failed", str(exc)
        if exc.retryable:
            raise
        return report
    events = result.events if result.full else _without_stale_removals(result, calendar, deps)
    if result.full:
        report.actions.update(
            converge_all(events, calendar, deps, missing_from=result.window_start, missing_until=result.window_end)
        )
    else:
        report.actions.update(converge_all(events, calendar, deps))
        report.actions["removed"] += _drop_vanished_occurrences(result, calendar, deps)
        if not report.actions["removed"]:
            del report.actions["removed"]
    # The link only once every page is converged: a sync that dies before this point starts again
    # from the old link (or a full round) and sees the same changes.
    deps.repo.record_calendar_sync(
        calendar.calendar_id, now=deps.clock.now(), full=result.full, sync_token=result.delta_link
    )
    return report


def _without_stale_removals(result: DeltaSync, calendar: Calendar, deps: SyncDeps) -> tuple[CalendarEvent, ...]:
    """Drop Graph's removals of events that ended before the window: history, whatever Graph says.

    Graph also reports changes outside the window as ``@removed``; one that names a future meeting
    this calendar linked means the event left the window (or was deleted) and is kept.
    """
    kept = []
    for event in result.events:
        if event.cancelled and event.start is None:
            link = deps.repo.get_calendar_link(calendar.calendar_id, event.event_id)
            if link is not None and link.last_moment <= result.window_start:
                continue
        kept.append(event)
    return tuple(kept)


def _drop_vanished_occurrences(result: DeltaSync, calendar: Calendar, deps: SyncDeps) -> int:
    """Links of a series that Graph listed whole this round, whose occurrence is no longer in it."""
    if not result.series_occurrences:
        return 0
    named = {event.event_id for event in result.events}
    removed = 0
    for link in deps.repo.list_calendar_links(calendar.calendar_id):
        current = result.series_occurrences.get(link.recurring_event_id or "")
        if current is None or link.event_id in current or link.event_id in named:
            continue
        if link.last_moment <= result.window_start or link.start >= result.window_end:
            continue
        leave_meeting(link, deps)
        removed += 1
    return removed


def _disconnected(calendar: Calendar, exc: AccessRevoked, deps: SyncDeps, report: SyncReport) -> SyncReport:
    action = disconnect_calendar(calendar, str(exc), repo=deps.repo, clock=deps.clock)
    report.actions[action] += 1
    report.outcome, report.error = "disconnected", str(exc)
    return report


def disconnect_calendar(calendar: Calendar, reason: str, *, repo: Calendars, clock: Clock) -> str:
    """The calendar's grant stopped working: mark it disconnected, once. The stream publisher
    announces it (``CalendarDisconnected``) from that write.

    Its meetings and bots stay as they are: a disconnected calendar is not synced, so nothing it
    asked for is withdrawn until it is reconnected (or removed).
    """
    if not repo.mark_calendar_disconnected(calendar.calendar_id, reason=reason, now=clock.now()):
        return "already_disconnected"
    return "disconnected"


# --- the poller -------------------------------------------------------------------------------


def enqueue_due_syncs(
    *, repo: Calendars, queue: MessageQueue, clock: Clock, config: CalendarSyncConfig | None = None
) -> Counter[str]:
    """One sync job per ICS feed (every run), and per Google calendar when a safety sync is due.

    Google calendars are pushed to us; the periodic incremental sync covers a lost notification and
    the daily full sync brings in events that entered the horizon without changing.
    """
    cfg = config or CalendarSyncConfig()
    now = clock.now()
    counts: Counter[str] = Counter()
    for calendar in repo.list_calendars():
        if calendar.removing or not calendar.connected:
            continue
        job = CalendarSyncJob(calendar_id=calendar.calendar_id, reason="poll")
        if calendar.kind in (CalendarKind.GOOGLE, CalendarKind.MICROSOFT):
            google = calendar.kind is CalendarKind.GOOGLE
            full_every = cfg.google_full_sync_every if google else cfg.microsoft_full_sync_every
            safety_every = cfg.google_safety_sync_every if google else cfg.microsoft_safety_sync_every
            if calendar.last_full_sync_at is None or calendar.last_full_sync_at <= now - full_every:
                job = job.updated(full=True)
            elif calendar.last_synced_at is not None and calendar.last_synced_at > now - safety_every:
                continue
        queue.send(job.to_body())
        counts[f"{calendar.kind.value}_queued"] += 1
    return counts


# --- push channels ----------------------------------------------------------------------------


def push_address(public_base_url: str) -> str:
    return f"{public_base_url.rstrip('/')}/calendar/google"


def graph_notification_urls(public_base_url: str) -> tuple[str, str]:
    """Graph's ``notificationUrl`` and ``lifecycleNotificationUrl`` under the public base URL."""
    base = public_base_url.rstrip("/")
    return f"{base}/calendar/microsoft/notify", f"{base}/calendar/microsoft/lifecycle"


def open_channel(
    calendar: Calendar,
    *,
    repo: CalendarStorage,
    google: GoogleCalendars,
    address: str,
    new_id: Callable[[], str],
    new_token: Callable[[], str],
    config: CalendarSyncConfig,
) -> PushChannel:
    """Ask Google for a channel on the calendar and store it (not yet pointed at by the calendar)."""
    channel = google.watch(
        calendar, channel_id=new_id(), token=new_token(), address=address, ttl_seconds=config.channel_ttl_seconds
    )
    repo.put_channel(channel)
    return channel


def renew_expiring_channels(
    *,
    repo: CalendarStorage,
    google: Callable[[], GoogleCalendars],
    address: str,
    clock: Clock,
    new_id: Callable[[], str],
    new_token: Callable[[], str],
    config: CalendarSyncConfig | None = None,
    microsoft: Callable[[], MicrosoftCalendars] | None = None,
    graph: GraphSubscriptions | None = None,
    sync_queue: MessageQueue | None = None,
) -> Counter[str]:
    """Renew every Google channel and Graph subscription that expires within ``renew_within``.

    Google: a new channel first, then the old one stopped. Microsoft: PATCH the subscription (which
    also reauthorizes it); one Graph no longer knows is recreated and a full sync queued. Neither
    provider says anything when a channel lapses, so a missed renewal means a calendar that silently
    stops syncing. A grant that stopped working disconnects the calendar; a disconnected calendar
    is not renewed. A source is only built when something of it is due.
    """
    cfg = config or CalendarSyncConfig()
    now = clock.now()
    counts: Counter[str] = Counter()
    calendars = [c for c in repo.list_calendars() if not c.removing and c.connected]
    due = [
        c
        for c in calendars
        if c.kind in (CalendarKind.GOOGLE, CalendarKind.MICROSOFT)
        and (c.channel_expires_at is None or c.channel_expires_at <= now + cfg.renew_within)
    ]
    due_google = [c for c in due if c.kind is CalendarKind.GOOGLE]
    due_microsoft = [c for c in due if c.kind is CalendarKind.MICROSOFT] if microsoft and graph else []
    if due_google:
        source = google()
        for calendar in due_google:
            try:
                counts[_renew(calendar, repo, source, address, new_id, new_token, cfg)] += 1
            except AccessRevoked as exc:
                counts[disconnect_calendar(calendar, str(exc), repo=repo, clock=clock)] += 1
            except CalendarSourceError as exc:
                repo.record_calendar_error(calendar.calendar_id, now=now, message=f"channel renewal failed: {exc}")
                counts["channel_renewal_failed"] += 1
    if due_microsoft:
        assert microsoft is not None and graph is not None
        graph_source = microsoft()
        for calendar in due_microsoft:
            try:
                action = _fix_subscription(calendar, repo, graph_source, _SubscriptionContext(graph, clock, cfg))
            except AccessRevoked as exc:
                counts[disconnect_calendar(calendar, str(exc), repo=repo, clock=clock)] += 1
                continue
            except CalendarSourceError as exc:
                repo.record_calendar_error(calendar.calendar_id, now=now, message=f"subscription renewal failed: {exc}")
                counts["subscription_renewal_failed"] += 1
                continue
            counts[action] += 1
            if action == "subscription_recreated" and sync_queue is not None:
                # Changes made while there was no subscription were never notified.
                job = CalendarSyncJob(calendar_id=calendar.calendar_id, reason="resubscribed", full=True)
                sync_queue.send(job.to_body())
    return counts


@dataclass(frozen=True)
class _SubscriptionContext:
    graph: GraphSubscriptions | None
    clock: Clock
    config: CalendarSyncConfig


def open_subscription(
    calendar: Calendar,
    *,
    repo: CalendarStorage,
    microsoft: MicrosoftCalendars,
    graph: GraphSubscriptions,
    clock: Clock,
    config: CalendarSyncConfig | None = None,
) -> PushChannel | None:
    """Subscribe to the calendar's changes, store the subscription and point the calendar at it.

    Graph validates both URLs before it answers (the notify function must be deployed). The
    calendar's previous subscription, if any, is deleted. None when the calendar moved on meanwhile
    (removed, or another subscription was stored first): ours is deleted again.
    """
    cfg = config or CalendarSyncConfig()
    channel = microsoft.subscribe(
        calendar,
        client_state=graph.new_client_state(),
        notification_url=graph.notification_url,
        lifecycle_url=graph.lifecycle_url,
        expires_at=clock.now() + cfg.subscription_lifetime,
    )
    repo.put_channel(channel)
    if not repo.set_calendar_channel(calendar.calendar_id, channel, expect_channel_id=calendar.channel_id):
        _close_subscription(calendar, channel, repo, microsoft)
        return None
    old = repo.get_channel(calendar.channel_id) if calendar.channel_id else None
    if old is not None and old.channel_id != channel.channel_id:
        _close_subscription(calendar, old, repo, microsoft)
    return channel


def _fix_subscription(
    calendar: Calendar,
    repo: CalendarStorage,
    microsoft: MicrosoftCalendars,
    context: SyncDeps | _SubscriptionContext,
    *,
    recreate: bool = False,
) -> str:
    """Renew the calendar's subscription (PATCH), or create one when there is none, Graph lost it, or
    ``recreate``; returns what was done."""
    graph, clock, cfg = context.graph, context.clock, context.config
    if graph is None:
        raise ConfigurationError("Graph notification URLs are not configured (PUBLIC_BASE_URL)")
    current = repo.get_channel(calendar.channel_id) if calendar.channel_id else None
    if current is not None and not recreate:
        try:
            renewed = microsoft.renew(calendar, current, expires_at=clock.now() + cfg.subscription_lifetime)
        except CalendarSourceError as exc:
            if exc.status != 404:
                raise
        else:
            repo.put_channel(renewed)
            repo.set_calendar_channel(calendar.calendar_id, renewed, expect_channel_id=current.channel_id)
            return "subscription_renewed"
    opened = open_subscription(calendar, repo=repo, microsoft=microsoft, graph=graph, clock=clock, config=cfg)
    return "subscription_recreated" if opened is not None else "subscription_superseded"


def _close_subscription(
    calendar: Calendar, channel: PushChannel, repo: CalendarStorage, microsoft: MicrosoftCalendars
) -> None:
    # A subscription Graph will not delete expires on its own; its notifications find no item.
    with contextlib.suppress(CalendarSourceError):
        microsoft.unsubscribe(calendar, channel)
    repo.delete_channel(channel.channel_id)


def _renew(
    calendar: Calendar,
    repo: CalendarStorage,
    google: GoogleCalendars,
    address: str,
    new_id: Callable[[], str],
    new_token: Callable[[], str],
    cfg: CalendarSyncConfig,
) -> str:
    new = open_channel(
        calendar, repo=repo, google=google, address=address, new_id=new_id, new_token=new_token, config=cfg
    )
    if not repo.set_calendar_channel(calendar.calendar_id, new, expect_channel_id=calendar.channel_id):
        # Renewed by someone else meanwhile, or the calendar is being removed: undo ours.
        _close(calendar, new, repo, google)
        return "channel_renewal_superseded"
    old = repo.get_channel(calendar.channel_id) if calendar.channel_id else None
    if old is not None:
        _close(calendar, old, repo, google)
    return "channel_renewed"


def _close(calendar: Calendar, channel: PushChannel, repo: CalendarStorage, google: GoogleCalendars) -> None:
    # A channel Google will not stop expires on its own; its notifications get 401 once the item is gone.
    with contextlib.suppress(CalendarSourceError):
        google.stop(calendar, channel)
    repo.delete_channel(channel.channel_id)
