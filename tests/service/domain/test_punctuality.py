"""Join punctuality from the provider's timestamps: lateness (or earliness) and the admission wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from meetpilot.domain.clock import to_iso
from meetpilot.domain.events import normalise_event
from meetpilot.domain.punctuality import Punctuality, newly_recorded, percentile, platform_label
from meetpilot.domain.session import Session, TranscriptMode, apply_event

START = datetime(2026, 12, 1, 15, 0, 30, tzinfo=UTC)  # seconds the meeting key cannot hold
KEY = "https://zoom.us/j/85551234567|2026-12-01T15:00Z"


def webhook(name: str, offset: float | None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"event": name, "bot_event": name, "bot_id": "b1", "message": name, **extra}
    if offset is not None:
        body["timestamp"] = to_iso(START + timedelta(seconds=offset))
    return body


def run(*payloads: dict[str, object], meeting_start: datetime | None = START) -> Session:
    session = Session("s1", KEY, TranscriptMode.POST_CALL, bot_id="b1", meeting_start=meeting_start)
    now = START + timedelta(hours=1)
    for payload in payloads:
        session = apply_event(session, normalise_event(payload), now).session
    return session


def test_a_late_bot_through_the_waiting_room_has_its_lateness_at_arrival_and_its_wait_to_admission():
    s = run(webhook("bot.joining", 2), webhook("bot.in_waiting_room", 12.25), webhook("bot.inmeeting", 40))
    assert s.punctuality == Punctuality(lateness_ms=12_250, admission_wait_ms=27_750)


def test_an_early_bot_has_a_negative_lateness():
    s = run(webhook("bot.joining", -65), webhook("bot.in_waiting_room", -60), webhook("bot.inmeeting", -59.5))
    assert s.punctuality == Punctuality(lateness_ms=-60_000, admission_wait_ms=500)


def test_a_bot_let_straight_in_waited_nothing():
    s = run(webhook("bot.joining", 1), webhook("bot.inmeeting", 7), webhook("bot.recording", 8))
    assert s.punctuality == Punctuality(lateness_ms=7_000, admission_wait_ms=0)


def test_a_bot_never_admitted_has_a_lateness_and_no_wait():
    s = run(
        webhook("bot.in_waiting_room", 3),
        {"event": "bot.stopped", "bot_event": "bot.notallowed", "bot_id": "b1", "timestamp": to_iso(START)},
    )
    assert s.punctuality == Punctuality(lateness_ms=3_000, admission_wait_ms=None)


def test_missing_timestamps_give_no_figure_and_no_error():
    assert run(webhook("bot.joining", None), webhook("bot.inmeeting", None)).punctuality == Punctuality()
    # A waiting room without a time: the call's time alone would hide the wait, so nothing is decided.
    s = run(webhook("bot.in_waiting_room", None), webhook("bot.inmeeting", 30))
    assert s.punctuality == Punctuality()
    # No meeting start known at all (neither from dispatch nor from the key).
    bare = Session("s2", "not-a-key", TranscriptMode.POST_CALL)
    decided = apply_event(bare, normalise_event(webhook("bot.inmeeting", 5)), START)
    assert decided.session.punctuality == Punctuality() and decided.punctuality.empty


def test_a_timestamp_that_cannot_be_read_is_a_missing_one():
    s = run({"event": "bot.inmeeting", "bot_event": "bot.inmeeting", "bot_id": "b1", "timestamp": "yesterday"})
    assert s.punctuality == Punctuality()


def test_the_start_minute_of_the_key_is_used_when_dispatch_recorded_no_start():
    s = run(webhook("bot.inmeeting", 0), meeting_start=None)
    assert s.punctuality == Punctuality(lateness_ms=30_000, admission_wait_ms=0)  # key minute is 15:00:00


def test_the_call_applied_after_the_bot_stopped_still_counts():
    # SQS does not keep the order: the in-call delivery can be applied after later ones.
    s = run(
        webhook("bot.in_waiting_room", 2),
        {"event": "bot.stopped", "bot_event": "bot.stopped", "bot_id": "b1", "timestamp": to_iso(START)},
        webhook("bot.inmeeting", 5),
    )
    assert s.punctuality == Punctuality(lateness_ms=2_000, admission_wait_ms=3_000)


def test_a_decided_figure_is_never_changed_by_a_later_event():
    # In the call first (the waiting-room delivery was reordered behind it): the figures stand.
    s = run(webhook("bot.inmeeting", 20), webhook("bot.in_waiting_room", 5))
    assert s.punctuality == Punctuality(lateness_ms=20_000, admission_wait_ms=0)
    # A second bot.inmeeting with another timestamp (the reconciler's copy from /detail) is ignored.
    again = run(webhook("bot.in_waiting_room", 5), webhook("bot.inmeeting", 9), webhook("bot.inmeeting", 90))
    assert again.punctuality == Punctuality(lateness_ms=5_000, admission_wait_ms=4_000)


def test_each_figure_is_reported_once_by_the_event_that_decided_it():
    session = Session("s1", KEY, TranscriptMode.POST_CALL, bot_id="b1", meeting_start=START)
    now = START + timedelta(hours=1)
    reported = []
    for payload in (
        webhook("bot.in_waiting_room", 4),
        webhook("bot.in_waiting_room", 4),  # the duplicate
        webhook("bot.inmeeting", 10),
        webhook("bot.inmeeting", 10),
        webhook("bot.recording", 11),
    ):
        decision = apply_event(session, normalise_event(payload), now)
        session = decision.session
        reported.append(decision.punctuality)
    assert reported == [
        Punctuality(lateness_ms=4_000),
        Punctuality(),
        Punctuality(admission_wait_ms=6_000),
        Punctuality(),
        Punctuality(),
    ]


def test_a_wait_that_would_be_negative_is_not_recorded():
    s = run(webhook("bot.in_waiting_room", 10), webhook("bot.inmeeting", 9))
    assert s.punctuality == Punctuality(lateness_ms=10_000, admission_wait_ms=None)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["bot.joining", "bot.in_waiting_room", "bot.inmeeting", "bot.recording", "bot.done"]),
            st.one_of(st.none(), st.floats(min_value=-3600, max_value=3600, allow_nan=False)),
        ),
        max_size=8,
    )
)
def test_any_sequence_of_events_gives_figures_that_never_change_once_decided(steps):
    session = Session("s1", KEY, TranscriptMode.POST_CALL, bot_id="b1", meeting_start=START)
    decided = Punctuality()
    for name, offset in steps:
        session = apply_event(session, normalise_event(webhook(name, offset)), START).session
        now = session.punctuality
        if decided.lateness_ms is not None:
            assert now.lateness_ms == decided.lateness_ms
        if decided.admission_wait_ms is not None:
            assert now.admission_wait_ms == decided.admission_wait_ms
        assert now.admission_wait_ms is None or now.admission_wait_ms >= 0
        decided = now


def test_newly_recorded_keeps_only_what_was_not_there():
    before = Punctuality(lateness_ms=1)
    assert newly_recorded(before, Punctuality(1, 2)) == Punctuality(admission_wait_ms=2)
    assert newly_recorded(Punctuality(1, 2), Punctuality(1, 2)).empty


def test_platform_labels_come_from_the_meeting_key():
    assert platform_label("https://meet.google.com/abc-defg-hij|2026-12-01T15:00Z") == "Google Meet"
    assert platform_label("https://zoom.us/j/85551234567?pwd-sha256=0123456789abcdef|2026-12-01T15:00Z") == "Zoom"
    assert platform_label("https://teams.microsoft.com/l/meetup-join/19%3Ameeting_x%40thread.v2|2026-12-01T15:00Z") == (
        "Teams"
    )
    assert platform_label("https://example.com/room|2026-12-01T15:00Z") == "Other"
    assert platform_label("https://meet.google.com/abc-defg-hij") == "Google Meet"  # a URL alone


def test_percentile_by_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5], 95) == 5
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95)) == (50, 95)
    assert percentile([-3, 1, 2], 50) == 1
