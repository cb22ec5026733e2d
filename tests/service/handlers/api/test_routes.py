"""The management API over real HTTP through the local gateway, every request SigV4-signed."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.sessions import update_session
from meetpilot.domain.meeting import Meeting
from meetpilot.handlers.api.models import meeting_id
from meetpilot_dev.client import ApiError
from tests.support.api_stack import dispatch_now


def _future(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0).isoformat()


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_meeting_is_created_once_read_back_and_cancelled(api, api_stack):
    body = {"meeting_url": "https://meet.google.com/aaa-bbbb-ccc", "start": _future(45), "user_id": "carol"}
    status, created = api.post("/v1/meetings", body)
    assert status == 201
    assert created["requested_directly"] and created["user_ids"] == ["carol"]
    status, again = api.post("/v1/meetings", body)
    assert status == 200 and again["meeting_key"] == created["meeting_key"]

    read = api.get(f"/v1/meetings/{created['meeting_id']}")
    assert read["meeting_url"] == body["meeting_url"] and read["desired"] == "record"

    dispatch_now(api_stack)  # plans it: 45 minutes ahead, so a schedule rather than a bot
    assert api.get(f"/v1/meetings/{created['meeting_id']}")["dispatch_at"] is not None
    _, cancelled = api.post(f"/v1/meetings/{created['meeting_id']}/cancel")
    assert cancelled["result"] == "cancelled"
    assert api.get(f"/v1/meetings/{created['meeting_id']}")["desired"] == "cancelled"
    _, twice = api.post(f"/v1/meetings/{created['meeting_id']}/cancel")
    assert twice["result"] == "already_cancelled"


def test_cancelling_withdraws_a_scheduled_bot(api, api_stack):
    _, created = api.post("/v1/meetings", {"meeting_url": "https://zoom.us/j/5550001111", "start": _future(3)})
    dispatch_now(api_stack)
    meeting = api.get(f"/v1/meetings/{created['meeting_id']}")
    assert meeting["bot_id"], meeting
    _, cancelled = api.post(f"/v1/meetings/{created['meeting_id']}/cancel")
    assert cancelled["result"] == "bot_cancelled"
    session = api.get(f"/v1/sessions/{meeting['bot_id']}")
    assert session["outcome"] == "cancelled"


def test_a_meeting_calendars_still_want_is_not_cancelled(api, api_stack):
    repo = api_stack.container.repository
    start = datetime.now(UTC) + timedelta(hours=5)
    meeting = Meeting.new("https://meet.google.com/kept-byca-lnd", start, calendar_event_id="cal-1#evt-1")
    repo.add_meeting(meeting, datetime.now(UTC))
    error = _error(lambda: api.post(f"/v1/meetings/{meeting_id(meeting.meeting_key)}/cancel"))
    assert error.status == 409 and "calendar event" in error.message
    assert api.get(f"/v1/meetings/{meeting_id(meeting.meeting_key)}")["desired"] == "record"


def test_invalid_input_is_422_and_names_the_field(api):
    missing = _error(lambda: api.post("/v1/meetings", {"meeting_url": "https://meet.google.com/abc-defg-hij"}))
    assert missing.status == 422 and missing.message == "start: is required"
    naive_start = {"meeting_url": "https://x.example/m", "start": "2026-06-01T10:00"}
    naive = _error(lambda: api.post("/v1/meetings", naive_start))
    assert naive.status == 422 and naive.message.startswith("start:")
    not_a_link = _error(lambda: api.post("/v1/meetings", {"meeting_url": "tomorrow at ten", "start": _future(30)}))
    assert not_a_link.status == 422 and "meeting URL" in not_a_link.message
    ended = _error(
        lambda: api.post(
            "/v1/meetings", {"meeting_url": "https://meet.google.com/abc-defg-hij", "start": "2020-01-01T10:00:00Z"}
        )
    )
    assert ended.status == 422 and "already ended" in ended.message
    bad_status = _error(lambda: api.get("/v1/sessions", params={"status": "sleeping"}))
    assert bad_status.status == 422 and bad_status.message.startswith("status:")
    two_filters = _error(lambda: api.get("/v1/sessions", params={"status": "done", "user_id": "a"}))
    assert two_filters.status == 422 and "one of" in two_filters.message
    fmt = _error(lambda: api.get("/v1/transcripts/whatever", params={"format": "pdf"}))
    assert fmt.status == 422 and fmt.message.startswith("format:")


def test_unknown_ids_are_404_with_a_hint(api):
    for path in ("/v1/sessions/no-such-bot", "/v1/transcripts/no-such-bot", f"/v1/meetings/{meeting_id('nope|x')}"):
        error = _error(lambda path=path: api.get(path))
        assert error.status == 404 and error.message.startswith("no ")
    assert _error(lambda: api.get("/v1/meetings/%%%")).status == 404
    assert _error(lambda: api.delete("/v1/calendars/ics-unknown")).status == 404


def _seed_sessions(api, api_stack, user: str, count: int) -> list[str]:
    bots = []
    for i in range(count):
        body = {"meeting_url": f"https://zoom.us/j/77700{i}{len(user)}", "start": _future(2 + i), "user_id": user}
        api.post("/v1/meetings", body)
    dispatch_now(api_stack)
    for i in range(count):
        key = f"https://zoom.us/j/77700{i}{len(user)}"
        found = api.get("/v1/sessions", params={"user_id": user, "limit": 200})["items"]
        bots = [s["bot_id"] for s in found]
        assert any(s["meeting_key"].startswith(key) for s in found)
    return bots


def _all_pages(api, params):
    rows, cursor = [], None
    while True:
        page = api.get("/v1/sessions", params={**params, "cursor": cursor})
        rows.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def test_sessions_are_listed_by_user_status_range_and_calendar_event_page_by_page(api, api_stack):
    bots = _seed_sessions(api, api_stack, "dave", 3)
    assert len(bots) == 3 and all(bots)

    by_user = _all_pages(api, {"user_id": "dave", "limit": 1})
    assert [s["bot_id"] for s in by_user] == bots  # newest meeting first
    starts = [s["meeting_start"] for s in by_user]
    assert starts == sorted(starts, reverse=True)

    scheduled = _all_pages(api, {"status": "scheduled", "limit": 2})
    assert set(bots) <= {s["bot_id"] for s in scheduled}
    assert all(s["status"] == "scheduled" for s in scheduled)

    window = {"from": starts[1], "to": starts[0], "limit": 1}
    ranged = _all_pages(api, window)
    assert {s["bot_id"] for s in ranged} >= set(bots[:2])
    assert bots[2] not in {s["bot_id"] for s in ranged}
    default_window = _all_pages(api, {"limit": 2})
    assert set(bots) <= {s["bot_id"] for s in default_window}

    # A calendar event points at one meeting; its session is the answer.
    repo = api_stack.container.repository
    session = api.get(f"/v1/sessions/{bots[0]}")
    meeting = repo.get_meeting(session["meeting_key"])
    from meetpilot.domain.calendar import CalendarLink

    repo.put_calendar_link(
        CalendarLink("cal-dave", "evt-9", meeting.meeting_key, meeting.start, None, None), datetime.now(UTC)
    )
    found = api.get("/v1/sessions", params={"calendar_event_id": "cal-dave#evt-9"})["items"]
    assert [s["bot_id"] for s in found] == [bots[0]]
    assert api.get("/v1/sessions", params={"calendar_event_id": "cal-dave#none"})["items"] == []


def test_cursors_are_bound_to_their_filter_and_cannot_be_forged(api, api_stack):
    _seed_sessions(api, api_stack, "erin", 2)
    page = api.get("/v1/sessions", params={"user_id": "erin", "limit": 1})
    assert page["next_cursor"]
    other = _error(lambda: api.get("/v1/sessions", params={"user_id": "dave", "cursor": page["next_cursor"]}))
    assert other.status == 422 and "other filters" in other.message
    forged = _error(lambda: api.get("/v1/sessions", params={"user_id": "erin", "cursor": "bm90LWEtY3Vyc29y"}))
    assert forged.status == 422 and "cursor" in forged.message


def test_session_show_has_the_full_history_and_its_meeting(api, api_stack):
    bots = _seed_sessions(api, api_stack, "frank", 1)
    session = api.get(f"/v1/sessions/{bots[0]}")
    assert session["bot_id"] == bots[0] and session["status"] == "scheduled"
    assert session["meeting"]["user_ids"] == ["frank"]
    by_session_id = api.get(f"/v1/sessions/{session['session_id']}")
    assert by_session_id["bot_id"] == bots[0]
    # Events arrive through the real webhook path (the simulator posts them to the gateway).
    api_stack.feeders["BotEventsFunction"].drain()
    history = api.get(f"/v1/sessions/{bots[0]}")["history"]
    assert history and all("name" in entry and "received_at" in entry for entry in history)


def test_session_view_has_the_join_figures_in_seconds(api, api_stack):
    (bot,) = _seed_sessions(api, api_stack, "hugo", 1)
    before = api.get(f"/v1/sessions/{bot}")
    assert before["join_lateness_seconds"] is None and before["admission_wait_seconds"] is None
    c = api_stack.container
    session = c.repository.find_session_by_bot(bot)

    def measured(current):
        current.join_lateness_ms, current.admission_wait_ms = -1_250, 30_500
        return current

    update_session(c.repository, session.session_id, measured, c.clock)
    shown = api.get(f"/v1/sessions/{bot}")
    assert (shown["join_lateness_seconds"], shown["admission_wait_seconds"]) == (-1.25, 30.5)
    assert shown["platform"] == "Zoom"


def test_transcript_link_is_409_until_stored_then_downloads_each_format(api, api_stack, tmp_path):
    bots = _seed_sessions(api, api_stack, "gina", 1)
    early = _error(lambda: api.get(f"/v1/transcripts/{bots[0]}", params={"format": "txt"}))
    assert early.status == 409 and "stored yet" in early.message

    c = api_stack.container
    session = c.repository.find_session_by_bot(bots[0])
    keys = {fmt: f"transcripts/test/{session.session_id}/transcript.{fmt}" for fmt in ("json", "txt", "vtt")}
    for fmt, key in keys.items():
        path = tmp_path / f"t.{fmt}"
        path.write_text(f"the {fmt} transcript")
        c.transcript_store.put_file(key, str(path), content_type="text/plain")

    def stored(current):
        current.transcript = {"keys": keys, "words": 3}
        return current

    update_session(c.repository, session.session_id, stored, c.clock)
    for fmt in keys:
        link = api.get(f"/v1/transcripts/{bots[0]}", params={"format": fmt})
        assert link["format"] == fmt and link["bot_id"] == bots[0]
        assert datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00")) > datetime.now(UTC)
        body = io.BytesIO()
        api.download(link["url"], body)
        assert body.getvalue() == f"the {fmt} transcript".encode()
    assert "X-Amz-Signature" in link["url"] and "X-Amz-Expires=300" in link["url"]


def test_calendars_are_added_listed_and_removed(api):
    feed = "http://127.0.0.1:9/private-token-123/henry.ics"
    status, added = api.post(
        "/v1/calendars", {"provider": "ics", "feed_url": feed, "user_id": "henry", "label": "Henry"}
    )
    assert status == 201 and added["kind"] == "ics"
    assert "private-token" not in str(added)  # the feed address is a secret: never shown again
    status, again = api.post("/v1/calendars", {"provider": "ics", "feed_url": feed, "user_id": "henry"})
    assert status == 200 and again["calendar_id"] == added["calendar_id"]
    listed = api.get("/v1/calendars", params={"user_id": "henry"})["items"]
    assert [c["calendar_id"] for c in listed] == [added["calendar_id"]]
    bad = _error(
        lambda: api.post("/v1/calendars", {"provider": "ics", "feed_url": "ftp://nowhere", "user_id": "henry"})
    )
    assert bad.status == 422 and "http(s) or webcal" in bad.message
    removed = api.delete(f"/v1/calendars/{added['calendar_id']}")
    assert removed["calendar_id"] == added["calendar_id"]
    assert api.get("/v1/calendars", params={"user_id": "henry"})["items"] == []


def test_the_forget_function_serves_only_the_forget_route():
    from meetpilot.handlers.forget import handler

    answer = handler({"routeKey": "GET /v1/sessions", "rawPath": "/v1/sessions"}, None)
    assert answer["statusCode"] == 404 and "only serves POST /v1/forget" in answer["body"]
