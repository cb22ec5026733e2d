"""Forget through the management API's forget route (the function the template gives its own role),
proven by counting: every DynamoDB item (a full Scan) and every S3 object version and delete marker
(keys and bodies) that mentions a forgotten id, before and after. Zero after; a meeting another user
also has keeps that user's part."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetpilot.domain.calendar import Calendar, CalendarKind, CalendarLink
from meetpilot.domain.live_transcript import LiveSegment
from meetpilot.domain.meeting import Meeting
from meetpilot.handlers.api.models import meeting_id
from meetpilot_dev.client import ApiError, ManagementClient
from meetpilot_dev.simulator import Faults
from meetpilot_dev.stack.embedded import LocalStack
from tests.support.stacks import run_until

ALICE = "user-alice-f0rget"
BOB = "user-bob-k33p"


@pytest.fixture
def api(stack: LocalStack):
    assert stack.gateway is not None
    client = ManagementClient.for_dev({"gateway": stack.gateway.url, "environment": stack.environment()})
    yield client
    client.close()


def _record(stack: LocalStack, url: str, *users: str, in_seconds: float = 1) -> Any:
    start = datetime.now(UTC) + timedelta(seconds=in_seconds)
    key = ""
    for user in users:
        key = stack.submit_meeting(url, start, user_id=user)
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.outcome is not None, 40)
    return stack.session_for(key)


def _leave_traces(stack: LocalStack, session: Any) -> None:
    """What a real run also leaves: live segments, a second version of a file, a delete marker."""
    c = stack.container
    for n in range(3):
        segment = LiveSegment(f"seg-{n}", session.bot_id, datetime.now(UTC), "Speaker", f"words {n}")
        assert c.live_segments.put_segment(session.session_id, segment, expires_at=2_000_000_000)
    s3 = c.client("s3")
    keys = session.transcript["keys"]
    s3.put_object(Bucket=c.settings.transcript_bucket, Key=keys["txt"], Body=b"uploaded again")
    s3.delete_object(Bucket=c.settings.transcript_bucket, Key=keys["vtt"])  # a delete marker on top


def _table_items(stack: LocalStack) -> list[str]:
    """Every item of the table, as text: the whole table is scanned, whatever its layout."""
    c = stack.container
    items: list[str] = []
    for page in c.client("dynamodb").get_paginator("scan").paginate(TableName=c.settings.table_name):
        items.extend(json.dumps(item, sort_keys=True, default=str) for item in page["Items"])
    return items


def _bucket_entries(stack: LocalStack) -> list[str]:
    """Every object version (key and body) and every delete marker (key) in the bucket, as text."""
    c = stack.container
    s3, bucket = c.client("s3"), c.settings.transcript_bucket
    entries: list[str] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            entries.append(version["Key"] + "\n" + body.decode("utf-8", "replace"))
        entries.extend("marker " + m["Key"] for m in page.get("DeleteMarkers", []))
    return entries


def _mentions(stack: LocalStack, *idents: str) -> dict[str, int]:
    """How many table items and bucket entries mention each id."""
    texts = _table_items(stack) + _bucket_entries(stack)
    return {ident: sum(ident in text for text in texts) for ident in idents}


def _event_items(stack: LocalStack, session_id: str) -> int:
    """How many of the session's history items (one per accepted event) the table holds."""
    c = stack.container
    resp = c.client("dynamodb").query(
        TableName=c.settings.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":sk": {"S": "SESSION#E#"}},
        ConsistentRead=True,
    )
    return len(resp["Items"])


def _ids(session: Any) -> tuple[str, str, str]:
    return session.bot_id, session.session_id, session.meeting_key


def _deleted_bots(stack: LocalStack) -> set[str]:
    return {e.get("bot_id") for e in stack.simulator.deliveries() if e.get("name") == "data_deletion"}


def _add_calendar(stack: LocalStack, user: str, *sessions: Any) -> str:
    """A calendar of ``user`` whose events point at the sessions' meetings (as a sync leaves them)."""
    repo, now = stack.container.repository, datetime.now(UTC)
    calendar_id = f"ics-{user}"
    assert repo.put_calendar(Calendar(calendar_id, CalendarKind.ICS, user, feed_url="https://example.com/x.ics"), now)
    for n, session in enumerate(sessions):
        meeting = repo.get_meeting(session.meeting_key)
        link = CalendarLink(calendar_id, f"event-{n}", meeting.meeting_key, meeting.start, meeting.end)
        repo.put_calendar_link(link, now)
        repo.add_meeting(
            Meeting(
                meeting_key=meeting.meeting_key,
                meeting_url=meeting.meeting_url,
                start=meeting.start,
                user_ids=[user],
                calendar_event_ids=[link.calendar_event_id],
            ),
            now,
        )
    return calendar_id


def test_forgetting_a_user_leaves_nothing_that_names_them_and_shared_meetings_keep_the_other_users_part(
    stack: LocalStack, api: ManagementClient
):
    alone = _record(stack, "https://meet.google.com/ali-ceal-one", ALICE)
    shared = _record(stack, "https://meet.google.com/sha-redm-tgs", ALICE, BOB)
    _leave_traces(stack, alone)
    calendar_id = _add_calendar(stack, ALICE, alone, shared)
    forgotten = (ALICE, calendar_id, *_ids(alone))
    before = _mentions(stack, *forgotten)
    assert all(before.values()), before  # the count sees every id before: it can fail
    kept_before = _mentions(stack, BOB, *_ids(shared))

    status, report = api.post("/v1/forget", {"user_id": ALICE})
    stack.drain()  # the provider's deletion webhook comes back: it must not bring anything back

    assert status == 200 and report["complete"], report
    assert _mentions(stack, *forgotten) == dict.fromkeys(forgotten, 0)
    assert report["meetings_deleted"] == 1 and report["meetings_kept_for_others"] == 1
    assert report["calendars_removed"] == 1 and report["transcript_versions_deleted"] >= 6
    # The shared meeting keeps Bob, its bot, its session and its transcripts; of what names it, only
    # Alice's part went: her index entry for it and her calendar's link to it.
    shared_bot, shared_session, shared_key = _ids(shared)
    after = _mentions(stack, BOB, shared_bot, shared_session, shared_key)
    assert after == {**kept_before, shared_key: kept_before[shared_key] - 2}
    still = stack.container.repository.get_meeting(shared.meeting_key)
    assert still.user_ids == [BOB] and still.calendar_event_ids == [] and still.session_id == shared.session_id
    assert alone.bot_id in _deleted_bots(stack) and shared.bot_id not in _deleted_bots(stack)
    with pytest.raises(ApiError) as again:
        api.post("/v1/forget", {"user_id": ALICE})
    assert again.value.status == 404


def test_forgetting_a_meeting_leaves_nothing_that_names_it(stack: LocalStack, api: ManagementClient):
    session = _record(stack, "https://meet.google.com/mee-ting-gone", ALICE, BOB)
    other = _record(stack, "https://meet.google.com/bob-othe-rmt", BOB)
    _leave_traces(stack, session)
    _add_calendar(stack, BOB, session)
    forgotten = _ids(session)
    assert all(_mentions(stack, *forgotten).values())
    alice_items = _mentions(stack, ALICE)[ALICE]

    status, report = api.post("/v1/forget", {"meeting_id": meeting_id(session.meeting_key)})
    stack.drain()

    assert status == 200 and report["complete"] and report["meetings_deleted"] == 1, report
    assert _mentions(stack, *forgotten) == dict.fromkeys(forgotten, 0)
    # Alice's index entry for it went; she had nothing else. Bob's other meeting is untouched.
    assert alice_items > 0 and _mentions(stack, ALICE)[ALICE] == 0
    assert stack.container.repository.get_session(other.session_id) is not None
    assert session.bot_id in _deleted_bots(stack) and other.bot_id not in _deleted_bots(stack)


def test_forgetting_a_bot_leaves_nothing_that_names_it_and_keeps_its_meeting(stack: LocalStack, api: ManagementClient):
    session = _record(stack, "https://meet.google.com/for-gett-ing", ALICE)
    _leave_traces(stack, session)
    bot_id, session_id, key = _ids(session)
    assert all(_mentions(stack, bot_id, session_id).values())
    events = _event_items(stack, session_id)
    assert events > 0  # the history is stored beside the session: those items must go too

    status, report = api.post("/v1/forget", {"bot_id": bot_id})
    stack.drain()

    assert status == 200 and report["complete"], report
    # the session, its history items and 3 live segments
    assert report["sessions_deleted"] == 1 and report["items_deleted"] == 4 + events, (report, events)
    assert _event_items(stack, session_id) == 0
    # 4 files, a second version of one and a delete marker on another
    assert report["transcript_versions_deleted"] == 6
    assert report["provider"][bot_id].startswith("deleted")
    assert _mentions(stack, bot_id, session_id) == {bot_id: 0, session_id: 0}
    meeting = stack.container.repository.get_meeting(key)
    assert meeting is not None and meeting.session_id is None and meeting.bot_id is None
    with pytest.raises(ApiError, match="no session for bot") as again:
        api.post("/v1/forget", {"bot_id": bot_id})
    assert again.value.status == 404


def test_forget_keeps_the_session_until_the_provider_copy_is_deleted(stack: LocalStack, api: ManagementClient):
    session = _record(stack, "https://meet.google.com/pro-vide-rdn", ALICE)
    stack.simulator.set_faults(Faults(server_error=1.0, paths=("/delete",)))
    _, report = api.post("/v1/forget", {"bot_id": session.bot_id})
    assert not report["complete"] and "run forget again" in report["unfinished"][0]
    assert report["provider"][session.bot_id].startswith("not deleted")
    assert stack.container.repository.get_session(session.session_id) is not None
    stack.simulator.set_faults(Faults())
    _, again = api.post("/v1/forget", {"bot_id": session.bot_id})
    assert again["complete"] and again["sessions_deleted"] == 1
    assert _mentions(stack, session.bot_id, session.session_id) == {session.bot_id: 0, session.session_id: 0}


def test_forgetting_a_meeting_before_it_starts_cancels_its_scheduled_bot(stack: LocalStack, api: ManagementClient):
    start = datetime.now(UTC) + timedelta(minutes=5)  # within the lead time: a bot is created with join_at
    key = stack.submit_meeting("https://meet.google.com/fut-urem-tng", start, user_id=ALICE)
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.bot_id is not None, 20)
    session = stack.session_for(key)

    _, report = api.post("/v1/forget", {"meeting_id": meeting_id(key)})
    stack.drain()

    assert report["complete"] and report["bots_withdrawn"] == 1, report
    bots = {b["bot_id"]: b for b in stack.simulator.bots()}
    assert bots[session.bot_id]["status"] == "Cancelled"
    assert _mentions(stack, key, session.bot_id, ALICE) == {key: 0, session.bot_id: 0, ALICE: 0}


def test_forget_refuses_a_request_naming_more_or_less_than_one_thing(api: ManagementClient):
    for body in ({}, {"bot_id": "b", "user_id": "u"}, {"user": "u"}):
        with pytest.raises(ApiError) as refused:
            api.post("/v1/forget", body)
        assert refused.value.status == 422
