from datetime import UTC, datetime, timedelta, timezone

import pytest

from meetpilot.domain.meeting import Meeting, meeting_key, normalise_meeting_url
from meetpilot.errors import InvalidInput

START = datetime(2026, 12, 1, 15, 0, 42, tzinfo=UTC)


def test_same_meeting_written_differently_has_one_key():
    a = meeting_key("https://Meet.Google.com/abc-defg-hij/", START)
    b = meeting_key("https://meet.google.com/abc-defg-hij?utm_source=mail#x", START.replace(second=3))
    c = meeting_key("https://meet.google.com/abc-defg-hij).", START.astimezone(timezone(timedelta(hours=2))))
    assert a == b == c
    assert a.endswith("|2026-12-01T15:00Z")


def test_zoom_password_is_kept_and_different_meetings_differ():
    with_pwd = normalise_meeting_url("https://us02web.zoom.us/j/123?pwd=abc")
    assert "pwd=abc" in with_pwd
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
