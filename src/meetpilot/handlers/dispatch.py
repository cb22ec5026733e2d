"""SQS entry point that dispatches bots. Messages: ``{"meeting_key": ...}`` from a schedule, or
``{"submit": {meeting_url, start, end?, title?, user_id?}}`` for an ad-hoc meeting."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from meetpilot.app.dispatch import (
    DispatchOutcome,
    MeetingRequest,
    dispatch_meeting,
    plan_dispatch,
    submit_meeting,
)
from meetpilot.app.sessions import publish_outbox
from meetpilot.composition import container
from meetpilot.domain.clock import to_iso
from meetpilot.errors import InvalidInput
from meetpilot.handlers.observability import (
    correlate,
    correlated,
    count,
    count_published,
    instrumented,
    logger,
    seconds,
)
from meetpilot.handlers.sqs_batch import message_body, run_batch


def handle_record(record: SQSRecord) -> str:
    body = message_body(record)
    key = body.get("meeting_key")
    with correlated(meeting_key=key if isinstance(key, str) else None):
        return _dispatch(body)


def _dispatch(body: dict[str, Any]) -> str:
    c = container()
    attempt = int(body.get("attempt") or 0)
    key = body.get("meeting_key")
    submit = body.get("submit")
    if isinstance(submit, dict):
        meeting = submit_meeting(MeetingRequest.from_message(submit), repo=c.repository, clock=c.clock)
        key = meeting.meeting_key
        correlate(meeting_key=key)
        plan = plan_dispatch(
            meeting, scheduler=c.dispatch_scheduler, repo=c.repository, config=c.dispatch_config, clock=c.clock
        )
        if not plan.dispatch_now:
            logger.info(
                "meeting scheduled" if plan.dispatch_at else "meeting already in hand",
                extra={
                    "meeting_key": key,
                    "dispatch_at": to_iso(plan.dispatch_at) if plan.dispatch_at else None,
                    "dispatch_state": meeting.dispatch_state.value,
                },
            )
            return "scheduled" if plan.dispatch_at else meeting.dispatch_state.value
    if not isinstance(key, str) or not key:
        raise InvalidInput("dispatch message needs 'meeting_key' or 'submit'")
    result = dispatch_meeting(
        key,
        attempt=attempt,
        repo=c.repository,
        provider=c.provider,
        secrets=c.secrets,
        config=c.dispatch_config,
        clock=c.clock,
    )
    correlate(
        bot_id=result.bot_id,
        session_id=result.session_id,
        calendar_event_id=result.calendar_event_ids[0] if result.calendar_event_ids else None,
    )
    fields = {
        "meeting_key": key,
        "outcome": result.outcome.value,
        "bot_id": result.bot_id,
        "attempt": attempt,
    }
    if result.outcome is DispatchOutcome.RETRY:
        # Re-enqueue with a delay rather than failing the record, so throttling does not eat
        # into maxReceiveCount (which is kept for real crashes).
        delay = c.settings.scaled(result.retry_in or 1)
        c.dispatch_queue.send({"meeting_key": key, "attempt": attempt + 1}, delay_seconds=delay)
        logger.info("dispatch retry scheduled", extra={**fields, "retry_in": delay, "reason": result.reason})
    elif result.outcome is DispatchOutcome.FAILED:
        count("DispatchFailures")
        logger.error("dispatch failed", extra={**fields, "reason": result.reason})
    else:
        if result.outcome is DispatchOutcome.CREATED:
            count("BotsDispatched")
            if result.planned_at is not None:
                # Late is what matters; a bot created ahead of plan (retry, reconcile) counts as 0.
                seconds("DispatchLateness", max(0.0, (c.clock.now() - result.planned_at).total_seconds()))
        logger.info("dispatch", extra=fields)
    if result.session_id is not None:
        report = publish_outbox(c.repository, c.event_publisher, result.session_id, c.clock)
        count_published(report.published, report.failed)
        if report.failed:
            logger.warning("events not published yet; kept for a retry", extra={"error": report.error})
    return result.outcome.value


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, handle_record)
