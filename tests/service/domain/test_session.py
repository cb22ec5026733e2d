"""The bot session state machine: forward-only, deduplicated, one transcript job, one outcome."""

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.domain.events import normalise_event
from meetpilot.domain.session import (
    HISTORY_CAP,
    EventVerdict,
    Session,
    TranscriptMode,
    TranscriptState,
    apply_event,
    attention_basis,
    attention_due,
)
from meetpilot.domain.status import BotStatus, Outcome, StopReason

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
BOT = "6667fd0c-0165-471a-a880-06a1180be377"
_tick = iter(range(1, 10_000))


def payload(event, bot_event=None, *, status=None, code=200, ts=None, bot=BOT, **extra):
    body = {"event": event, "bot_id": bot, "status_code": code, "message": f"{event} happened"}
    body["bot_event"] = bot_event or event
    if status:
        body["bot_status"] = status
    body["timestamp"] = ts or (T0 + timedelta(seconds=next(_tick))).isoformat()
    body.update(extra)
    return body


def session(mode=TranscriptMode.POST_CALL, bot=BOT):
    return Session(session_id="s1", meeting_key="k", transcript_mode=mode, bot_id=bot)


def run(sess, *payloads):
    decisions = []
    for p in payloads:
        d = apply_event(sess, normalise_event(p), T0)
        decisions.append(d)
        sess = d.session
    return sess, decisions


HAPPY = [
    ("bot.joining", None, "Joining"),
    ("bot.in_waiting_room", None, "InWaitingRoom"),
    ("bot.inmeeting", None, "InMeeting"),
    ("bot.recording", None, "Recording"),
    ("bot.leaving", None, "Leaving"),
    ("bot.stopped", "bot.stopped", "Stopped"),
    ("manifest.completed", None, None),
    ("audio.processed", None, None),
    ("transcription.processed", None, None),
    ("bot.done", None, "Done"),
]


def happy_payloads():
    out = []
    for event, bot_event, status in HAPPY:
        p = payload(event, bot_event, status=status)
        if event in ("manifest.completed",):
            p.pop("bot_event")
        out.append(p)
    return out


def test_happy_path_moves_forward_and_queues_one_transcript_job():
    s, decisions = run(session(), *happy_payloads())
    assert s.status is BotStatus.DONE
    assert s.stop_reason is StopReason.STOPPED
    assert [d.enqueue_transcript for d in decisions].count(True) == 1
    assert decisions[8].enqueue_transcript  # on transcription.processed
    assert s.transcript_state is TranscriptState.QUEUED and s.transcript_job_pending
    assert s.outcome is None  # decided only once the transcript is stored
    assert len(s.history) == len(HAPPY)


def test_duplicate_delivery_is_a_noop():
    p = payload("bot.inmeeting", status="InMeeting")
    s, (first, second) = run(session(), p, dict(p))
    assert first.verdict is EventVerdict.APPLIED
    assert second.verdict is EventVerdict.DUPLICATE
    assert second.session is first.session
    assert len(s.history) == 1


def test_stale_event_never_moves_status_backwards_but_is_kept_in_history():
    s, decisions = run(
        session(),
        payload("bot.recording", status="Recording"),
        payload("bot.joining", status="Joining"),  # late and out of order
    )
    assert s.status is BotStatus.RECORDING
    assert not decisions[1].status_changed
    assert [h["name"] for h in s.history] == ["bot.recording", "bot.joining"]


def test_reordered_post_call_events_still_queue_exactly_one_job():
    s, decisions = run(
        session(),
        payload("bot.done", status="Done"),
        payload("transcription.processed"),
        payload("bot.stopped", "bot.stopped", status="Stopped"),
    )
    assert sum(d.enqueue_transcript for d in decisions) == 1
    assert decisions[0].enqueue_transcript  # bot.done without a transcript event yet: fetch anyway
    assert s.status is BotStatus.DONE  # the late terminal event does not pull it back


def test_three_joining_events_are_all_accepted():
    s, decisions = run(session(), *(payload("bot.joining", status="Joining") for _ in range(3)))
    assert all(d.verdict is EventVerdict.APPLIED for d in decisions)
    assert s.joining_count == 3 and s.status is BotStatus.JOINING


@pytest.mark.parametrize(
    "bot_event,code,status,reason,outcome",
    [
        ("bot.notallowed", 500, "NotAllowed", StopReason.NOT_ALLOWED, Outcome.NOT_ADMITTED),
        ("bot.denied", 500, "Denied", StopReason.DENIED, Outcome.DENIED),
    ],
)
def test_never_admitted_bots_end_flagged_without_transcript_job(bot_event, code, status, reason, outcome):
    s, decisions = run(
        session(),
        payload("bot.joining", status="Joining"),
        payload("bot.in_waiting_room", status="InWaitingRoom"),
        payload("bot.stopped", bot_event, status=status, code=code),
        payload("bot.done", status="Done"),
    )
    assert s.stop_reason is reason
    assert s.outcome is outcome
    assert not any(d.enqueue_transcript for d in decisions)


def test_kicked_bot_still_gets_its_transcript():
    s, decisions = run(
        session(), payload("bot.stopped", "bot.kicked", status="Stopped"), payload("transcription.processed")
    )
    assert s.stop_reason is StopReason.KICKED
    assert decisions[1].enqueue_transcript


def test_bot_error_is_not_terminal():
    s, _ = run(session(), payload("bot.inmeeting", status="InMeeting"), payload("bot.error", status="InMeeting"))
    assert s.status is BotStatus.IN_MEETING and s.stop_reason is None and s.outcome is None


def test_transcription_failed_settles_the_outcome():
    s, decisions = run(session(), payload("bot.stopped", status="Stopped"), payload("transcription.failed", code=500))
    assert s.outcome is Outcome.TRANSCRIPTION_FAILED
    assert s.transcript_state is TranscriptState.FAILED
    assert not any(d.enqueue_transcript for d in decisions)
    # and a late bot.done does not queue a job for a transcript that failed
    _, (done,) = run(s, payload("bot.done", status="Done"))
    assert not done.enqueue_transcript


def test_streaming_only_bot_is_flagged_at_stop():
    s, decisions = run(
        session(TranscriptMode.STREAMING), payload("bot.stopped", status="Stopped"), payload("bot.done", status="Done")
    )
    assert s.outcome is Outcome.STREAMING_ONLY
    assert not any(d.enqueue_transcript for d in decisions)


def test_event_for_another_bot_is_rejected():
    s, (d,) = run(session(), payload("bot.inmeeting", status="InMeeting", bot="someone-else"))
    assert d.verdict is EventVerdict.WRONG_BOT
    assert s.status is BotStatus.PENDING and s.history == []


def test_first_event_binds_the_bot_when_dispatch_has_not_recorded_it_yet():
    s, (d,) = run(session(bot=None), payload("bot.scheduled"))
    assert d.verdict is EventVerdict.APPLIED
    assert s.bot_id == BOT and s.status is BotStatus.SCHEDULED
    _, (other,) = run(s, payload("bot.joining", bot="intruder"))
    assert other.verdict is EventVerdict.WRONG_BOT


def test_unknown_events_are_kept_and_counted():
    s, (d,) = run(session(), payload("bot.teleported"))
    assert d.verdict is EventVerdict.APPLIED
    assert s.unknown_events == 1 and s.history[0]["name"] == "bot.teleported"
    assert s.status is BotStatus.PENDING


def test_history_is_capped_but_keeps_the_beginning():
    s, _ = run(session(), *(payload("bot.error", status="InMeeting") for _ in range(HISTORY_CAP + 25)))
    assert len(s.history) == HISTORY_CAP
    assert s.history[0]["timestamp"] < s.history[-1]["timestamp"]


def test_a_full_history_of_huge_unknown_events_stays_small():
    import json

    huge = [payload("x" * 5000, message="m" * 5000) for _ in range(HISTORY_CAP + 5)]
    s, _ = run(session(), *huge)
    assert len(json.dumps(s.history)) < 100_000


def test_the_attention_deadline_is_kept_while_its_basis_is_unchanged():
    s = Session("s1", "k", TranscriptMode.POST_CALL, status=BotStatus.IN_MEETING)
    due = attention_due(s, T0)
    assert due is not None
    stored = (attention_basis(s), due)
    later = T0 + timedelta(minutes=20)
    joined = apply_event(s, normalise_event(payload("participant_events.join")), later).session
    assert attention_due(joined, later, stored) == due  # a participant joined: nothing to look at sooner
    assert attention_due(joined, later) == later + (due - T0)  # without what was stored it would move

    joined.reconcile_attempts += 1  # the reconciler looked: its next look is one deadline from now
    assert attention_due(joined, later, stored) == later + (due - T0)
    stopped = apply_event(s, normalise_event(payload("bot.stopped", "bot.kicked")), later).session
    assert attention_due(stopped, later, stored) != due  # a new status has its own deadline
    stopped.outcome = Outcome.DENIED
    assert attention_due(stopped, later, stored) is None  # settled: out of the index
