"""Direct "record this meeting" requests from people (HTTP API, CLI), and taking one back.

A request is stored at once (so it can be read back straight away) and then handed to the
dispatcher through the dispatch queue, the same message ``meetpilot meetings add`` always sent:
the dispatcher plans it (a schedule, or a bot now). Taking a request back cancels the meeting
unless a calendar event still wants it.

    meeting, created = request_meeting(MeetingRequest(url, start), repo=repo, dispatch_queue=queue, clock=clock)
    withdraw_meeting_request(meeting.meeting_key, repo=repo, scheduler=scheduler, provider=provider, clock=clock)
"""

from __future__ import annotations

from meetpilot.app.cancellation import cancel_meeting
from meetpilot.app.dispatch import MeetingRequest, submit_meeting
from meetpilot.app.messages import SubmitMeeting
from meetpilot.app.ports import BotProvider, DispatchScheduler, Meetings, MeetingsAndSessions, MessageQueue
from meetpilot.domain.clock import Clock
from meetpilot.domain.meeting import DesiredState, Meeting, meeting_key
from meetpilot.errors import Conflict, NotFound


def request_meeting(
    request: MeetingRequest, *, repo: Meetings, dispatch_queue: MessageQueue, clock: Clock
) -> tuple[Meeting, bool]:
    """Store the meeting (or add this user to it) and queue its planning; returns it and whether it is new.

    Raises InvalidInput for a link that is not a meeting link, a time without a zone, or a meeting
    that has already ended.
    """
    known = repo.get_meeting(meeting_key(request.meeting_url, request.start)) is not None
    stored = submit_meeting(request, repo=repo, clock=clock)
    submit = SubmitMeeting.of(
        request.meeting_url, request.start, end=request.end, title=request.title, user_id=request.user_id
    )
    dispatch_queue.send(submit.to_body())
    return stored, not known


def withdraw_meeting_request(
    key: str,
    *,
    repo: MeetingsAndSessions,
    scheduler: DispatchScheduler,
    provider: BotProvider,
    clock: Clock,
    remove_in_meeting: bool = True,
) -> str:
    """Take back the direct request for a meeting and cancel it; returns what happened to its bot.

    Raises NotFound for an unknown meeting, and Conflict when calendar events still want it (the
    direct request is withdrawn all the same, so the meeting ends with its last calendar event).
    """
    meeting = repo.withdraw_request(key)
    if meeting is None:
        raise NotFound("no such meeting; 'meetpilot sessions list' shows the meetings with bots")
    if meeting.desired is DesiredState.CANCELLED:
        return "already_cancelled"
    done = cancel_meeting(
        key,
        repo=repo,
        scheduler=scheduler,
        provider=provider,
        clock=clock,
        remove_in_meeting=remove_in_meeting,
        reason="the meeting was cancelled on request",
    )
    if done == "kept":
        count = len(meeting.calendar_event_ids)
        raise Conflict(
            f"{count} calendar event(s) still want this meeting, so it keeps its bot; decline or delete the "
            "event, or remove its calendar ('meetpilot calendars remove')"
        )
    return done
