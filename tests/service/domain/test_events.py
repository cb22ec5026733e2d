"""Webhook normalisation: every catalog event, in every envelope generation MeetStream has sent."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetpilot.domain.events import MESSAGE_LIMIT, BotEvent, normalise_event
from meetpilot.domain.status import BotStatus, EventKind, StopReason, TranscriptSignal
from meetpilot.errors import InvalidEvent

BOT = "6667fd0c-0165-471a-a880-06a1180be377"
TS_OFFSET = "2026-02-27T07:11:51.863543+00:00"
TS_Z = "2026-02-27T07:11:51.863543Z"
WHEN = datetime(2026, 2, 27, 7, 11, 51, 863543, tzinfo=UTC)

LIFECYCLE, TERMINAL, POST_CALL = EventKind.LIFECYCLE, EventKind.TERMINAL, EventKind.POST_CALL

# (event, bot_event in the June 2026 shape or None where MeetStream omits it, bot_status, status_code,
#  expected kind, status, stop reason, transcript signal)
CATALOG = [
    ("bot.scheduled", "bot.scheduled", "Scheduled", None, LIFECYCLE, BotStatus.SCHEDULED, None, None),
    ("bot.joining", "bot.joining", "Joining", 200, LIFECYCLE, BotStatus.JOINING, None, None),
    (
        "bot.in_waiting_room",
        "bot.in_waiting_room",
        "InWaitingRoom",
        200,
        LIFECYCLE,
        BotStatus.IN_WAITING_ROOM,
        None,
        None,
    ),
    ("bot.inmeeting", "bot.inmeeting", "InMeeting", 200, LIFECYCLE, BotStatus.IN_MEETING, None, None),
    ("bot.recording_permission_allowed", "bot.recording_permission_allowed", None, None, LIFECYCLE, None, None, None),
    ("bot.recording_permission_denied", "bot.recording_permission_denied", None, None, LIFECYCLE, None, None, None),
    ("bot.recording", "bot.recording", "Recording", 200, LIFECYCLE, BotStatus.RECORDING, None, None),
    ("bot.error", "bot.error", "InMeeting", None, EventKind.ERROR, None, None, None),
    ("bot.leaving", "bot.leaving", "Leaving", 200, LIFECYCLE, BotStatus.LEAVING, None, None),
    ("bot.stopped", "bot.stopped", "Stopped", 200, TERMINAL, BotStatus.STOPPED, StopReason.STOPPED, None),
    ("bot.stopped", "bot.kicked", "Stopped", 200, TERMINAL, BotStatus.STOPPED, StopReason.KICKED, None),
    ("bot.stopped", "bot.notallowed", "NotAllowed", 500, TERMINAL, BotStatus.STOPPED, StopReason.NOT_ALLOWED, None),
    ("bot.stopped", "bot.denied", "Denied", 500, TERMINAL, BotStatus.STOPPED, StopReason.DENIED, None),
    ("bot.stopped", "bot.failed", "FAILED", 500, TERMINAL, BotStatus.STOPPED, StopReason.FAILED, None),
    ("bot.uploading", None, None, None, POST_CALL, None, None, None),
    ("manifest.completed", None, None, 200, POST_CALL, None, None, None),
    ("manifest.skipped", None, None, 200, POST_CALL, None, None, None),
    ("audio.processed", "audio.processed", None, 200, POST_CALL, None, None, None),
    ("audio.skipped", "audio.skipped", None, 200, POST_CALL, None, None, None),
    ("video.processed", "video.processed", None, 200, POST_CALL, None, None, None),
    (
        "transcription.processed",
        "transcription.processed",
        None,
        200,
        POST_CALL,
        None,
        None,
        TranscriptSignal.PROCESSED,
    ),
    ("transcription.failed", "transcription.failed", None, 500, POST_CALL, None, None, TranscriptSignal.FAILED),
    ("transcription.skipped", "transcription.skipped", None, None, POST_CALL, None, None, TranscriptSignal.SKIPPED),
    ("bot.transcriptionready", None, None, None, POST_CALL, None, None, TranscriptSignal.PROCESSED),
    ("bot.done", "bot.done", "Done", 200, EventKind.DONE, BotStatus.DONE, None, None),
    ("data_deletion", "data_deletion", None, 200, EventKind.DATA_DELETION, None, None, None),
]
CATALOG_IDS = [row[1] or row[0] for row in CATALOG]


def new_shape(event, bot_event, bot_status, code, ts=TS_OFFSET, **extra):
    body = {"event": event, "bot_id": BOT, "message": f"{bot_event or event} happened", "timestamp": ts}
    if bot_event:
        body["bot_event"] = bot_event
    if bot_status:
        body["bot_status"] = bot_status
    if code is not None:
        body["status_code"] = code
    body["custom_attributes"] = {"session_id": "s-1"}
    body.update(extra)
    return body


def old_shape(event, bot_status, code, **extra):
    """The May 2026 generation: `event` only, no timestamp on lifecycle events."""
    body = {"event": event, "bot_id": BOT, "message": f"{event} happened"}
    if bot_status:
        body["bot_status"] = bot_status
    if code is not None:
        body["status_code"] = code
    body.update(extra)
    return body


def assert_classified(ev, kind, status, reason, signal):
    assert ev.kind is kind
    assert ev.status is status
    assert ev.stop_reason is reason
    assert ev.transcript_signal is signal


# --- the catalog, new shape ----------------------------------------------------------------------


@pytest.mark.parametrize("ts", [TS_OFFSET, TS_Z], ids=["offset", "zulu"])
@pytest.mark.parametrize(
    ("event", "bot_event", "bot_status", "code", "kind", "status", "reason", "signal"), CATALOG, ids=CATALOG_IDS
)
def test_catalog_event_in_new_shape(ts, event, bot_event, bot_status, code, kind, status, reason, signal):
    ev = normalise_event(new_shape(event, bot_event, bot_status, code, ts=ts))
    assert ev.name == (bot_event or event)
    assert ev.generic == event
    assert_classified(ev, kind, status, reason, signal)
    assert ev.bot_id == BOT
    assert ev.timestamp == WHEN
    assert ev.timestamp.tzinfo is not None and ev.timestamp.utcoffset().total_seconds() == 0
    assert ev.status_code == code
    assert ev.message == f"{bot_event or event} happened"
    assert ev.custom_attributes == {"session_id": "s-1"}
    assert len(ev.dedupe_key) == 20 and int(ev.dedupe_key, 16) >= 0


# --- the catalog, old shape ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "bot_event", "bot_status", "code", "kind", "status", "reason", "signal"), CATALOG, ids=CATALOG_IDS
)
def test_catalog_event_in_old_shape_without_bot_event_or_timestamp(
    event, bot_event, bot_status, code, kind, status, reason, signal
):
    # Old terminals are all plain "bot.stopped"; the reason is only in bot_status, which says
    # "Stopped" for a kick as well as for a clean exit.
    if reason is StopReason.KICKED:
        reason = StopReason.STOPPED
    ev = normalise_event(old_shape(event, bot_status, code))
    assert ev.name == event
    assert ev.generic == event
    assert_classified(ev, kind, status, reason, signal)
    assert ev.timestamp is None
    assert ev.custom_attributes == {}
    assert ev.bot_id == BOT


def test_zulu_and_offset_timestamps_are_the_same_instant_but_distinct_deliveries():
    z = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200, ts=TS_Z))
    o = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200, ts=TS_OFFSET))
    assert z.timestamp == o.timestamp == WHEN
    # The dedupe key is over the raw strings, exactly as delivered.
    assert z.dedupe_key != o.dedupe_key


def test_non_utc_offset_is_converted_to_utc():
    ev = normalise_event(new_shape("bot.joining", None, None, 200, ts="2026-02-27T09:11:51+02:00"))
    assert ev.timestamp == datetime(2026, 2, 27, 7, 11, 51, tzinfo=UTC)
    assert ev.timestamp.tzinfo is UTC


# --- terminal reasons ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bot_status", "reason"),
    [
        ("Stopped", StopReason.STOPPED),
        ("stopped", StopReason.STOPPED),
        ("NotAllowed", StopReason.NOT_ALLOWED),
        ("notallowed", StopReason.NOT_ALLOWED),
        ("NOT_ALLOWED", StopReason.NOT_ALLOWED),
        ("Denied", StopReason.DENIED),
        ("DENIED", StopReason.DENIED),
        ("Error", StopReason.FAILED),
        ("ERROR", StopReason.FAILED),
        ("FAILED", StopReason.FAILED),
        ("Failed", StopReason.FAILED),
        ("Kicked", StopReason.KICKED),
        ("SomethingNew", StopReason.STOPPED),
        (None, StopReason.STOPPED),
    ],
)
def test_old_terminal_takes_its_reason_from_bot_status(bot_status, reason):
    ev = normalise_event(old_shape("bot.stopped", bot_status, 500))
    assert ev.kind is EventKind.TERMINAL
    assert ev.status is BotStatus.STOPPED
    assert ev.stop_reason is reason
    assert ev.name == "bot.stopped"


@pytest.mark.parametrize(
    ("bot_event", "reason"),
    [
        ("bot.kicked", StopReason.KICKED),
        ("bot.notallowed", StopReason.NOT_ALLOWED),
        ("bot.denied", StopReason.DENIED),
        ("bot.failed", StopReason.FAILED),
        ("bot.stopped", StopReason.STOPPED),
    ],
)
def test_specific_terminal_without_generic_event_is_terminal(bot_event, reason):
    ev = normalise_event({"bot_event": bot_event, "bot_id": BOT, "timestamp": TS_Z})
    assert ev.name == bot_event
    assert ev.generic is None
    assert ev.kind is EventKind.TERMINAL
    assert ev.status is BotStatus.STOPPED
    assert ev.stop_reason is reason


@pytest.mark.parametrize(
    ("event", "reason"),
    [("bot.kicked", StopReason.KICKED), ("bot.denied", StopReason.DENIED), ("bot.failed", StopReason.FAILED)],
)
def test_specific_terminal_name_in_the_event_key_keeps_its_reason(event, reason):
    ev = normalise_event(old_shape(event, "Stopped", 200))
    assert ev.kind is EventKind.TERMINAL
    assert ev.stop_reason is reason


def test_specific_bot_event_wins_over_bot_status_for_the_reason():
    ev = normalise_event(new_shape("bot.stopped", "bot.kicked", "Stopped", 200))
    assert ev.stop_reason is StopReason.KICKED
    ev = normalise_event(new_shape("bot.stopped", "bot.stopped", "Denied", 200))
    assert ev.stop_reason is StopReason.STOPPED


def test_unknown_specific_name_under_generic_stopped_is_still_terminal():
    ev = normalise_event(new_shape("bot.stopped", "bot.timed_out", "NotAllowed", 500))
    assert ev.name == "bot.timed_out"
    assert ev.kind is EventKind.TERMINAL
    assert ev.status is BotStatus.STOPPED
    assert ev.stop_reason is StopReason.NOT_ALLOWED


def test_unknown_specific_name_under_a_known_generic_takes_the_generic_classification():
    ev = normalise_event(new_shape("bot.joining", "bot.joining_retry", "Joining", 200))
    assert ev.name == "bot.joining_retry"
    assert ev.kind is EventKind.LIFECYCLE
    assert ev.status is BotStatus.JOINING


def test_bot_error_is_not_terminal_even_with_a_failure_code():
    ev = normalise_event(new_shape("bot.error", "bot.error", "InMeeting", 500))
    assert ev.kind is EventKind.ERROR
    assert ev.status is None
    assert ev.stop_reason is None


def test_terminal_with_failed_transcription_words_still_has_no_transcript_signal():
    ev = normalise_event(new_shape("bot.stopped", "bot.failed", "Failed", 500))
    assert ev.transcript_signal is None


# --- casing and legacy statuses ------------------------------------------------------------------


@pytest.mark.parametrize("bot_status", ["InMeeting", "inmeeting", "IN_MEETING", "in_meeting", " In-Meeting "])
def test_status_casing_variants_map_without_an_event_name(bot_status):
    ev = normalise_event({"bot_id": BOT, "bot_status": bot_status, "status_code": 200})
    assert ev.name == "bot.inmeeting"
    assert ev.generic is None
    assert ev.status is BotStatus.IN_MEETING
    assert ev.kind is EventKind.LIFECYCLE


@pytest.mark.parametrize("event", ["bot.InMeeting", "BOT.INMEETING", "bot.in_meeting", " bot.inmeeting "])
def test_event_name_casing_variants_map_to_the_canonical_name(event):
    ev = normalise_event(old_shape(event, None, 200))
    assert ev.name == "bot.inmeeting"
    assert ev.status is BotStatus.IN_MEETING


def test_event_name_casing_variants_of_terminals_and_post_call():
    assert normalise_event(new_shape("BOT.STOPPED", "Bot.NotAllowed", None, 500)).stop_reason is (
        StopReason.NOT_ALLOWED
    )
    ev = normalise_event(old_shape("Transcription.Processed", None, 200))
    assert ev.name == "transcription.processed"
    assert ev.transcript_signal is TranscriptSignal.PROCESSED


def test_legacy_lowercase_joining_with_status_code_102():
    ev = normalise_event({"bot_id": BOT, "bot_status": "joining", "status_code": 102, "message": "Bot is joining"})
    assert ev.name == "bot.joining"
    assert ev.generic is None
    assert ev.kind is EventKind.LIFECYCLE
    assert ev.status is BotStatus.JOINING
    assert ev.status_code == 102
    assert ev.timestamp is None


@pytest.mark.parametrize(
    ("bot_status", "code", "name", "kind", "status", "reason"),
    [
        ("joining", 102, "bot.joining", LIFECYCLE, BotStatus.JOINING, None),
        ("Joining", 102, "bot.joining", LIFECYCLE, BotStatus.JOINING, None),
        ("InMeeting", 200, "bot.inmeeting", LIFECYCLE, BotStatus.IN_MEETING, None),
        ("joined", 200, "bot.inmeeting", LIFECYCLE, BotStatus.IN_MEETING, None),
        ("Scheduled", 200, "bot.scheduled", LIFECYCLE, BotStatus.SCHEDULED, None),
        ("InWaitingRoom", 200, "bot.in_waiting_room", LIFECYCLE, BotStatus.IN_WAITING_ROOM, None),
        ("Recording", 200, "bot.recording", LIFECYCLE, BotStatus.RECORDING, None),
        ("Leaving", 200, "bot.leaving", LIFECYCLE, BotStatus.LEAVING, None),
        ("stopped", 500, "bot.stopped", TERMINAL, BotStatus.STOPPED, StopReason.STOPPED),
        ("Kicked", 200, "bot.kicked", TERMINAL, BotStatus.STOPPED, StopReason.KICKED),
        ("NotAllowed", 500, "bot.notallowed", TERMINAL, BotStatus.STOPPED, StopReason.NOT_ALLOWED),
        ("Denied", 500, "bot.denied", TERMINAL, BotStatus.STOPPED, StopReason.DENIED),
        ("Error", 500, "bot.failed", TERMINAL, BotStatus.STOPPED, StopReason.FAILED),
        ("FAILED", 500, "bot.failed", TERMINAL, BotStatus.STOPPED, StopReason.FAILED),
        ("Done", 200, "bot.done", EventKind.DONE, BotStatus.DONE, None),
    ],
)
def test_oldest_shape_with_only_bot_status_normalises(bot_status, code, name, kind, status, reason):
    ev = normalise_event({"bot_id": BOT, "bot_status": bot_status, "status_code": code})
    assert (ev.name, ev.kind, ev.status, ev.stop_reason) == (name, kind, status, reason)
    assert ev.status_code == code


def test_oldest_shape_with_an_unknown_status_is_unknown_not_an_error():
    ev = normalise_event({"bot_id": BOT, "bot_status": "MediaProcessing", "status_code": 200})
    assert ev.kind is EventKind.UNKNOWN
    assert ev.status is None
    assert ev.name == "bot.mediaprocessing"


# --- unknown and participant events --------------------------------------------------------------


@pytest.mark.parametrize("name", ["bot.teleported", "video.skipped", "Something Else", "transcription.queued"])
def test_unknown_event_normalises_as_unknown_and_keeps_its_name(name):
    ev = normalise_event(new_shape(name, name, None, 200))
    assert ev.name == name
    assert ev.kind is EventKind.UNKNOWN
    assert ev.status is None
    assert ev.stop_reason is None
    assert ev.transcript_signal is None


def participant_payload(action="join", pid="p-1", ts="2026-02-27T07:12:00Z", bot=BOT):
    return {
        "event": f"participant_events.{action}",
        "timestamp": ts,
        "data": {
            "data": {
                "action": action,
                "participant": {"id": pid, "name": "Ada", "full_name": "Ada L", "platform": "google_meet"},
                "timestamp": {"relative": 12.5, "absolute": ts},
            },
            "bot": {"id": bot, "metadata": {}},
        },
        "custom_attributes": {"session_id": "s-1"},
    }


@pytest.mark.parametrize("action", ["join", "leave"])
def test_participant_events_take_the_bot_id_from_data_bot_id(action):
    ev = normalise_event(participant_payload(action))
    assert ev.name == f"participant_events.{action}"
    assert ev.kind is EventKind.PARTICIPANT
    assert ev.status is None
    assert ev.bot_id == BOT
    assert ev.status_code is None
    assert ev.custom_attributes == {"session_id": "s-1"}


def test_two_participants_joining_in_the_same_second_are_distinct_events():
    a = normalise_event(participant_payload(pid="p-1"))
    b = normalise_event(participant_payload(pid="p-2"))
    assert a.dedupe_key != b.dedupe_key
    assert a.dedupe_key == normalise_event(participant_payload(pid="p-1")).dedupe_key


def test_other_participant_event_names_are_participant_events():
    p = participant_payload()
    p["event"] = "participant_events.speaking"
    assert normalise_event(p).kind is EventKind.PARTICIPANT


def test_payload_bot_id_wins_over_nested_bot_id():
    p = participant_payload(bot="nested")
    p["bot_id"] = BOT
    assert normalise_event(p).bot_id == BOT


# --- invalid payloads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(["bot.joining"], id="list"),
        pytest.param("bot.joining", id="string"),
        pytest.param(None, id="none"),
        pytest.param(42, id="number"),
        pytest.param({}, id="empty"),
        pytest.param({"bot_id": BOT, "status_code": 200}, id="no-name-no-status"),
        pytest.param({"event": "", "bot_id": BOT}, id="empty-event-no-status"),
        pytest.param({"event": "   ", "bot_event": None}, id="blank-event"),
        pytest.param({"bot_id": BOT, "bot_status": 5}, id="non-string-status-only"),
        pytest.param({"bot_id": BOT, "bot_status": ""}, id="empty-status-only"),
        pytest.param({"event": 5, "bot_id": BOT}, id="numeric-event"),
        pytest.param({"event": "bot.joining", "bot_event": ["bot.joining"]}, id="list-bot-event"),
        pytest.param({"event": {"name": "bot.joining"}, "bot_status": "Joining"}, id="object-event"),
        pytest.param({"event": "bot.joining", "bot_id": 5}, id="numeric-bot-id"),
        pytest.param({"event": "bot.joining", "bot_id": ""}, id="empty-bot-id"),
        pytest.param({"event": "bot.joining", "bot_id": "   "}, id="blank-bot-id"),
        pytest.param({"event": "bot.joining", "bot_id": {"id": BOT}}, id="object-bot-id"),
    ],
)
def test_unreadable_payload_raises_invalid_event_with_a_one_line_reason(payload):
    with pytest.raises(InvalidEvent) as caught:
        normalise_event(payload)
    reason = str(caught.value)
    assert reason and "\n" not in reason


def test_null_bot_id_counts_as_absent():
    assert normalise_event({"event": "bot.joining", "bot_id": None}).bot_id is None


# --- odd field types never crash -----------------------------------------------------------------


@pytest.mark.parametrize("attrs", [["a"], "session", 5, None, True])
def test_non_object_custom_attributes_become_empty(attrs):
    assert normalise_event(new_shape("bot.joining", None, None, 200, custom_attributes=attrs)).custom_attributes == {}


@pytest.mark.parametrize("code", ["200", 200.0, True, None, [200], {"code": 200}])
def test_non_integer_status_code_becomes_none(code):
    assert normalise_event(new_shape("bot.joining", None, None, None, status_code=code)).status_code is None


@pytest.mark.parametrize(
    "ts", ["yesterday", "", "2026-13-45T00:00:00Z", "2026-02-27T07:11:51", 1772176311, 17.5, ["2026"], {"a": 1}]
)
def test_bad_or_zoneless_timestamp_becomes_none(ts):
    ev = normalise_event(new_shape("bot.joining", None, None, 200, ts=ts))
    assert ev.timestamp is None
    assert "timestamp" not in ev.history_entry()


def test_long_message_is_truncated_and_non_string_message_is_dropped():
    ev = normalise_event(old_shape("bot.error", None, None, message="x" * 5000))
    assert ev.message == "x" * MESSAGE_LIMIT
    assert normalise_event(old_shape("bot.error", None, None, message={"a": 1})).message is None


def test_custom_attributes_are_copied_not_shared():
    attrs = {"session_id": "s-1"}
    ev = normalise_event(new_shape("bot.joining", None, None, 200, custom_attributes=attrs))
    attrs["session_id"] = "changed"
    assert ev.custom_attributes == {"session_id": "s-1"}


def test_events_are_hashable_despite_custom_attributes():
    ev = normalise_event(new_shape("bot.joining", None, None, 200))
    assert ev in {ev}


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)
field_values = st.sampled_from(["bot.joining", "bot.stopped", "bot.kicked", "Joining", "NotAllowed", BOT, TS_Z])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "event",
                "bot_event",
                "bot_id",
                "bot_status",
                "timestamp",
                "status_code",
                "message",
                "custom_attributes",
                "data",
            ]
        ),
        field_values | json_values,
    )
)
def test_any_json_object_normalises_or_raises_invalid_event(payload):
    try:
        ev = normalise_event(payload)
    except InvalidEvent:
        return
    assert isinstance(ev, BotEvent)
    json.dumps(ev.history_entry())
    assert ev.kind is not EventKind.TERMINAL or ev.stop_reason is not None
    assert (ev.stop_reason is not None) == (ev.kind is EventKind.TERMINAL)


# --- dedupe keys ---------------------------------------------------------------------------------


def test_identical_deliveries_share_a_dedupe_key():
    first = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200))
    again = normalise_event(json.loads(json.dumps(new_shape("bot.joining", "bot.joining", "Joining", 200))))
    assert first.dedupe_key == again.dedupe_key


def test_dedupe_key_ignores_key_order_and_fields_outside_the_identity():
    a = new_shape("bot.joining", "bot.joining", "Joining", 200)
    b = dict(reversed(list(a.items())))
    b["custom_attributes"] = {"other": 1}
    b["status_code"] = 500
    assert normalise_event(a).dedupe_key == normalise_event(b).dedupe_key


def test_a_second_joining_with_a_new_timestamp_is_a_new_event():
    first = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200, ts="2026-02-27T07:11:51Z"))
    retry = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200, ts="2026-02-27T07:12:21Z"))
    assert first.dedupe_key != retry.dedupe_key


def test_dedupe_key_differs_by_bot_event_and_by_bot():
    base = normalise_event(new_shape("bot.stopped", "bot.stopped", "Stopped", 200))
    kicked = normalise_event(new_shape("bot.stopped", "bot.kicked", "Stopped", 200))
    other_bot = normalise_event({**new_shape("bot.stopped", "bot.stopped", "Stopped", 200), "bot_id": "other"})
    assert len({base.dedupe_key, kicked.dedupe_key, other_bot.dedupe_key}) == 3


def test_event_with_and_without_bot_event_are_distinct_deliveries():
    with_specific = normalise_event(new_shape("audio.processed", "audio.processed", None, 200))
    without = normalise_event(new_shape("audio.processed", None, None, 200))
    assert with_specific.dedupe_key != without.dedupe_key


def test_dedupe_key_parts_cannot_run_into_each_other():
    a = normalise_event({"event": "bot.joining", "bot_event": "x", "bot_id": "ab", "timestamp": TS_Z})
    b = normalise_event({"event": "bot.joining", "bot_event": "", "bot_id": "abx", "timestamp": TS_Z})
    c = normalise_event({"event": "bot.joiningx", "bot_event": "", "bot_id": "ab", "timestamp": TS_Z})
    assert len({a.dedupe_key, b.dedupe_key, c.dedupe_key}) == 3


def test_legacy_events_without_timestamp_are_told_apart_by_message_and_status():
    joining = normalise_event(old_shape("bot.stopped", "Stopped", 200, message="Bot left"))
    denied = normalise_event(old_shape("bot.stopped", "Denied", 500, message="Bot left"))
    other_message = normalise_event(old_shape("bot.stopped", "Stopped", 200, message="Meeting ended"))
    assert len({joining.dedupe_key, denied.dedupe_key, other_message.dedupe_key}) == 3
    assert (
        joining.dedupe_key == normalise_event(old_shape("bot.stopped", "Stopped", 200, message="Bot left")).dedupe_key
    )


def test_message_does_not_change_the_key_when_a_timestamp_is_present():
    a = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200, message="one"))
    b = normalise_event(new_shape("bot.joining", "bot.joining", "Joining", 200, message="two"))
    assert a.dedupe_key == b.dedupe_key


def test_oldest_shape_deliveries_with_different_statuses_do_not_collide():
    joining = normalise_event({"bot_id": BOT, "bot_status": "joining", "status_code": 102})
    in_meeting = normalise_event({"bot_id": BOT, "bot_status": "InMeeting", "status_code": 200})
    assert joining.dedupe_key != in_meeting.dedupe_key


# --- history entries -----------------------------------------------------------------------------


def test_history_entry_is_small_and_json_able():
    ev = normalise_event(new_shape("bot.stopped", "bot.denied", "Denied", 500, ts=TS_OFFSET, message="Host said no"))
    entry = ev.history_entry()
    assert entry == {
        "name": "bot.denied",
        "status": "stopped",
        "stop_reason": "denied",
        "timestamp": "2026-02-27T07:11:51.863Z",
        "status_code": 500,
        "message": "Host said no",
    }
    assert json.loads(json.dumps(entry)) == entry


def test_history_entry_of_a_post_call_event_without_timestamp():
    entry = normalise_event(old_shape("transcription.failed", None, 500, message="no audio")).history_entry()
    assert entry["transcript_signal"] == "failed"
    # what the event does not carry is left out, not stored as null
    assert entry == {
        "name": "transcription.failed",
        "transcript_signal": "failed",
        "status_code": 500,
        "message": "no audio",
    }
