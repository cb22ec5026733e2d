"""Rules, decisions, overrides and bot settings through the management API, over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from meetpilot_dev.client import ApiError
from meetpilot_dev.fakes.feeds import FeedServer
from tests.support.calendar_helpers import Ev, ics

URL = "https://acme.zoom.us/j/85551234567"


@pytest.fixture
def feeds():
    with FeedServer() as server:
        yield server


def _start(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def _calendar(api, api_stack, feeds, user: str, events: list[Ev], **extra) -> str:
    url = feeds.publish(user, ics(events))
    _, created = api.post(
        "/v1/calendars",
        {"provider": "ics", "feed_url": url, "user_id": user, "owner_email": f"{user}@acme.test", **extra},
    )
    api_stack.drain()
    return created["calendar_id"]


def _scan(api_stack) -> list[dict]:
    ddb = api_stack.container.client("dynamodb")
    table = api_stack.container.settings.table_name
    items, kwargs = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_events_listing_shows_each_decision_with_its_reason(api, api_stack, feeds):
    team = [("rita@acme.test", "ACCEPTED"), ("sam@acme.test", "ACCEPTED")]
    cal = _calendar(
        api,
        api_stack,
        feeds,
        "rita",
        [
            Ev("rec", _start(3), url=URL + "1", attendees=team),
            Ev("nolink", _start(4), attendees=team),
            Ev("optout", _start(5), url=URL + "2", title="Retro [no bot]", attendees=team),
        ],
        rules={"min_attendees": 2},
    )
    listed = api.get(f"/v1/calendars/{cal}/events")
    assert listed["status"] == "connected"
    reasons = {d["event_id"]: (d["recorded"], d["reason"]) for d in listed["items"]}
    assert reasons == {
        "rec": (True, "recorded"),
        "nolink": (False, "no meeting link"),
        "optout": (False, "opted out in the title: '[no bot]'"),
    }
    recorded = next(d for d in listed["items"] if d["event_id"] == "rec")
    assert api.get(f"/v1/meetings/{recorded['meeting_id']}")["desired"] == "record"
    assert api.get("/v1/calendars", params={"user_id": "rita"})["items"][0]["rules"]["min_attendees"] == 2


@pytest.mark.parametrize(
    "params,field",
    [
        ({"from": "yesterday"}, "from:"),
        ({"to": "2026-06-01T10:00"}, "to:"),
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "to: must be after from"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2030-06-01T00:00:00Z"}, "from/to: at most 62 days"),
        ({"limit": 0}, "limit:"),
    ],
)
def test_bad_from_or_to_is_a_422_naming_it(api, api_stack, feeds, params, field):
    cal = _calendar(api, api_stack, feeds, "tess-" + field.split(":")[0].replace("/", ""), [])
    error = _error(lambda: api.get(f"/v1/calendars/{cal}/events", params=params))
    assert error.status == 422 and error.message.startswith(field), error.message


def test_unknown_calendar_is_404(api):
    assert _error(lambda: api.get("/v1/calendars/ics-nope/events")).status == 404


def test_dry_run_changes_nothing_and_reports_each_decision_that_would_change(api, api_stack, feeds):
    inside = [("uma@acme.test", "ACCEPTED"), ("vic@acme.test", "ACCEPTED")]
    outside = [*inside, ("buyer@customer.test", "ACCEPTED")]
    cal = _calendar(
        api,
        api_stack,
        feeds,
        "uma",
        [
            Ev("internal", _start(3), url=URL + "3", attendees=inside),
            Ev("external", _start(4), url=URL + "4", attendees=outside),
            Ev("far", _start(24 * 20), url=URL + "5", attendees=inside),
        ],
    )
    before = _scan(api_stack)
    body = {"rules": {"external_only": True}, "bot": {"bot_name": "Uma Notes"}}
    _, answer = api.request("PATCH", f"/v1/calendars/{cal}", params={"dry_run": "true"}, body=body)
    assert _scan(api_stack) == before  # not one item written, changed or deleted

    assert answer["dry_run"] is True and answer["rules"]["external_only"] is True
    changes = {c["event_id"]: c for c in answer["changes"]}
    assert set(changes) == {"internal", "external"}  # "far" is beyond the 14 days either way
    internal = changes["internal"]
    assert (internal["before"]["recorded"], internal["before"]["reason"]) == (True, "recorded")
    assert internal["before"]["bot"]["bot_name"] != "Uma Notes"
    assert internal["after"] == {
        "recorded": False,
        "reason": "rule only-external: all attendees at acme.test",
        "bot": None,
    }
    external = changes["external"]
    assert external["before"]["recorded"] and external["after"]["recorded"]
    assert external["after"]["bot"]["bot_name"] == "Uma Notes" and external["after"]["bot"]["sources"] == ["calendar"]

    # Without dry_run the same request applies: the internal meeting loses its bot at once.
    _, applied = api.request("PATCH", f"/v1/calendars/{cal}", body=body)
    assert applied["dry_run"] is False and applied["bot"]["bot_name"] == "Uma Notes"
    reasons = {d["event_id"]: d["reason"] for d in api.get(f"/v1/calendars/{cal}/events")["items"]}
    assert reasons["internal"] == "rule only-external: all attendees at acme.test"


def test_override_through_the_api_with_an_encoded_event_id(api, api_stack, feeds):
    start = _start(6)
    cal = _calendar(api, api_stack, feeds, "walt", [Ev("walt-1@example.test", start, url=URL + "6")])
    path = f"/v1/calendars/{cal}/events/{quote('walt-1@example.test', safe='')}/override"
    _, skipped = api.request("PUT", path, body={"record": False, "bot": {"bot_name": "Walt"}})
    assert skipped["record"] is False and skipped["decisions"][0]["reason"] == "override: skip"
    meeting_id = api.get(f"/v1/calendars/{cal}/events")["items"][0]["meeting_id"]
    assert meeting_id is None
    _, removed = api.request("DELETE", path)
    assert removed["record"] is None and removed["decisions"][0]["reason"] == "recorded"
    assert _error(lambda: api.request("DELETE", path)).status == 404
    bad = _error(lambda: api.request("PUT", path, body={"record": "maybe"}))
    assert bad.status == 422 and bad.message.startswith("record:")


def test_user_bot_settings_round_trip_and_refuse_bad_values(api):
    _, stored = api.request("PUT", "/v1/users/xena/bot-settings", body={"bot_name": "Xena", "live_transcripts": True})
    assert stored["bot"]["bot_name"] == "Xena" and stored["bot"]["live_transcripts"] is True
    assert api.get("/v1/users/xena/bot-settings")["bot"]["bot_name"] == "Xena"
    bad = _error(
        lambda: api.request("PUT", "/v1/users/xena/bot-settings", body={"automatic_leave": {"waiting_room_timeout": 1}})
    )
    assert bad.status == 422 and "waiting_room_timeout" in bad.message
    assert api.get("/v1/users/nobody/bot-settings")["bot"] == {
        "bot_name": None,
        "transcript_provider": None,
        "live_transcripts": None,
        "automatic_leave": None,
    }
