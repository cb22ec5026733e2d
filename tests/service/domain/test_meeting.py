from datetime import UTC, datetime, timedelta, timezone

import pytest

from meetpilot.domain.meeting import (
    ATTENTION_GRACE,
    DispatchState,
    Meeting,
    meeting_attention_due,
    meeting_key,
    normalise_meeting_url,
)
from meetpilot.errors import InvalidInput

START = datetime(2026, 12, 1, 15, 0, 42, tzinfo=UTC)


def test_same_meeting_written_differently_has_one_key():
    a = meeting_key("https://Meet.Google.com/abc-defg-hij/", START)
    b = meeting_key("https://meet.google.com/abc-defg-hij?utm_source=mail#x", START.replace(second=3))
    c = meeting_key("https://meet.google.com/abc-defg-hij).", START.astimezone(timezone(timedelta(hours=2))))
    assert a == b == c
    assert a.endswith("|2026-12-01T15:00Z")


def test_zoom_passcode_counts_in_the_key_but_never_appears_in_it():
    passcode = "Q2xpZW50UHdk.1"
    key = meeting_key(f"https://us02web.zoom.us/j/123?pwd={passcode}", START)
    assert passcode not in key and "pwd=" not in key and "pwd-sha256=" in key
    # Same meeting, same passcode: one key; another passcode: another meeting, as before.
    assert key == meeting_key(f"https://zoom.us/j/123?uname=Jane&pwd={passcode}", START)
    assert key != meeting_key("https://zoom.us/j/123?pwd=other", START)
    assert key != meeting_key("https://zoom.us/j/123", START)
    # The digest is salted with the meeting number: one passcode on two meetings, two digests.
    other_meeting = meeting_key(f"https://zoom.us/j/124?pwd={passcode}", START)
    assert key.split("pwd-sha256=")[1] != other_meeting.split("pwd-sha256=")[1]


def test_teams_passcode_never_appears_in_the_key():
    key = meeting_key("https://teams.microsoft.com/meet/2345678901234?p=AbCdEf", START)
    assert "AbCdEf" not in key and "p-sha256=" in key
    assert key != meeting_key("https://teams.microsoft.com/meet/2345678901234?p=abcdef", START)


def test_a_bad_url_error_does_not_echo_a_passcode():
    with pytest.raises(InvalidInput) as refused:
        normalise_meeting_url("zoom.us/j/123?pwd=s3cretpass")
    assert "s3cretpass" not in str(refused.value)


def test_different_meetings_differ():
    assert meeting_key("https://zoom.us/j/1", START) != meeting_key("https://zoom.us/j/2", START)
    assert meeting_key("https://zoom.us/j/1", START) != meeting_key("https://zoom.us/j/1", START + timedelta(minutes=1))


@pytest.mark.parametrize("url", ["", "   ", "meet.google.com/abc", "ftp://x/y", "https://"])
def test_bad_urls_are_rejected_with_a_reason(url):
    with pytest.raises(InvalidInput):
        normalise_meeting_url(url)


def test_naive_start_and_end_before_start_are_rejected():
    with pytest.raises(InvalidInput, match="timezone"):
        meeting_key("https://zoom.us/j/1", datetime(2026, 12, 1, 15, 0))
    with pytest.raises(InvalidInput, match="after its start"):
        Meeting.new("https://zoom.us/j/1", START, end=START - timedelta(minutes=5))


def test_the_reconciler_checks_a_meeting_a_grace_period_after_its_planned_dispatch() -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    meeting = Meeting.new("https://zoom.us/j/1", start)
    lead = timedelta(minutes=25)
    assert meeting_attention_due(meeting, lead) == start - lead + ATTENTION_GRACE  # not yet scheduled
    meeting.dispatch_at = start - timedelta(hours=1)
    assert meeting_attention_due(meeting, lead) == start - timedelta(hours=1) + ATTENTION_GRACE
    meeting.dispatch_state = DispatchState.DISPATCHED
    assert meeting_attention_due(meeting, lead) is None  # settled: nothing to check
