"""Calendars of three providers on one local stack, end to end: a Google calendar (carol) and a
Microsoft 365 calendar (dave) connected through POST /v1/calendars with the refresh tokens their
consents gave, and an ICS feed (alice). Each calendar changes only at its source and is synced the
way production learns of it: a Google push notification and a Graph change notification through
the gateway, and the scheduled ICS poll.

One meeting on all three gets one bot until the last calendar drops it; a grant revoked at Google
and at Microsoft disconnects its calendar with a reason and an event and costs no bot; and no
refresh token (nor an OAuth client secret) shows in any log line, API answer, event or error of it.
The file shares one stack: the tests run in file order, and the last one searches what all wrote.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from meetpilot.composition import use_container
from meetpilot.domain.calendar import CalendarKind
from meetpilot.domain.meeting import DesiredState
from meetpilot.domain.notifications import CALENDAR_DISCONNECTED
from meetpilot_dev.client import ApiError, ManagementClient
from meetpilot_dev.fakes.feeds import FeedServer
from meetpilot_dev.stack.embedded import LocalStack, StackOptions
from meetpilot_dev.stack.invoke import LambdaContext, load_handler
from tests.support.calendar_helpers import Ev, ics
from tests.support.event_schemas import validate
from tests.support.log_capture import record_text
from tests.support.stacks import FAST_SIMULATOR, run_until

CAROL, DAVE, ALICE = "carol@acme.test", "dave@contoso.test", "alice@acme.test"
GUEST = "guest@fabrikam.test"
# Generous: the machine may be busy, and every wait ends as soon as its condition holds.
WAIT = 120.0

# Meeting A: a Teams meeting, written as each provider writes it.
TEAMS_THREAD = "19%3ameeting_Xc4lAcross9Prov%40thread.v2"
TEAMS_GRAPH = (  # Graph's onlineMeeting.joinUrl: encoded, with the organiser's context
    f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0"
    "?context=%7b%22Tid%22%3a%2272f988bf%22%2c%22Oid%22%3a%22d4a1%22%7d"
)
TEAMS_PLAIN = "https://teams.microsoft.com/l/meetup-join/19:meeting_Xc4lAcross9Prov@thread.v2/0"  # pasted, decoded
TEAMS_SAFELINK = (  # an Outlook-wrapped copy, as a forwarded invitation carries it into an ICS feed
    "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F"
    "19%253ameeting_Xc4lAcross9Prov%2540thread.v2%2F0&data=05%7C01&reserved=0"
)
# Meeting B: a Google Meet meeting.
MEET = "https://meet.google.com/xcl-prov-bbb"


def _minute(ahead: timedelta) -> datetime:
    return (datetime.now(UTC) + ahead).replace(second=0, microsecond=0)


class RecordingClient(ManagementClient):
    """The management client, keeping every answer and error message it got (searched for tokens)."""

    answers: list[str]

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            status, payload = super().request(method, path, **kwargs)
        except ApiError as exc:
            self.answers.append(f"{exc.status} {exc.message}")
            raise
        self.answers.append(json.dumps(payload))
        return status, payload


@dataclass(repr=False)  # a failure shows the assertion, not every log line kept
class World:
    stack: LocalStack
    api: RecordingClient
    feeds: FeedServer
    a_start: datetime
    b_start: datetime
    calendars: dict[str, str] = field(default_factory=dict)  # user -> calendar id
    google_ids: dict[str, str] = field(default_factory=dict)  # meeting -> event id at Google
    graph_ids: dict[str, str] = field(default_factory=dict)  # meeting -> event id at Graph
    ics_events: dict[str, Ev] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # what it is -> a refresh token handed to meetpilot
    events: list[dict[str, Any]] = field(default_factory=list)  # everything published, oldest first
    logs: io.StringIO = field(default_factory=io.StringIO)
    records: list[str] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)

    # --- reading the stack --------------------------------------------------------------------

    def published(self, detail_type: str) -> list[dict[str, Any]]:
        self.events = self.stack.published_events()  # all so far: the tap keeps what it read
        return [e for e in self.events if e["detail-type"] == detail_type]

    def decision(self, user: str, event_id: str) -> dict[str, Any] | None:
        listing = self.api.get(f"/v1/calendars/{self.calendars[user]}/events")
        return next((d for d in listing["items"] if d["event_id"] == event_id), None)

    def meeting(self, key: str) -> Any:
        return self.stack.container.repository.get_meeting(key)

    def bots(self, code: str) -> list[dict[str, Any]]:
        """The simulator's bots whose link names ``code`` (a Teams thread or Meet code)."""
        return [b for b in self.stack.simulator.bots() if code.lower() in b["meeting_link"].lower()]

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        assert run_until(self.stack, predicate, WAIT), f"not within {WAIT:.0f} s: {what}"

    # --- triggering syncs the way production does ---------------------------------------------

    def google_push(self) -> None:
        assert self.stack.google.notify(CAROL) == [200]

    def graph_notify(self) -> None:
        assert self.stack.graph.deliver(DAVE) == [202]

    def ics_poll(self) -> None:
        load_handler("meetpilot.handlers.calendar_poll.handler")({}, LambdaContext("CalendarPollFunction"))

    def publish_alice(self) -> None:
        self.feeds.publish("alice", ics(self.ics_events.values()))


class _Records(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record_text(record))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One stack with both providers' fakes, and everything logged from its start on kept.

    Our loggers at DEBUG, Powertools' JSON lines from its stream, every other logger at INFO (what
    Lambda's ApplicationLogLevel gives the root logger); see tests/system/test_no_secrets_in_logs.py.
    """
    records: list[str] = []
    logs = io.StringIO()
    catcher = _Records(records)
    root, ours = logging.getLogger(), logging.getLogger("meetpilot")
    levels = (root.level, ours.level)
    stack = LocalStack(
        StackOptions(
            background_pollers=False,
            google_fake=True,
            microsoft_fake=True,
            quiet_logs=False,
            # Meetings half an hour ahead are dispatched at once: their bots exist, scheduled to join.
            lead_time_seconds=3600,
            simulator_overrides=FAST_SIMULATOR,
        )
    )
    feeds = FeedServer()
    streams: list[tuple[logging.StreamHandler[Any], Any]] = []
    root.addHandler(catcher)
    ours.addHandler(catcher)
    try:
        stack.start()
        root.setLevel(logging.INFO)
        ours.setLevel(logging.DEBUG)
        for handler in ours.handlers:
            if isinstance(handler, logging.StreamHandler) and handler is not catcher:
                streams.append((handler, handler.stream))
                handler.stream = logs
        feeds.start()
        stack.google.rotate_refresh_tokens = True  # every refresh hands out a new token
        assert stack.gateway is not None
        api = RecordingClient.for_dev({"gateway": stack.gateway.url, "environment": stack.environment()})
        api.answers = []
        w = World(stack, api, feeds, _minute(timedelta(minutes=35)), _minute(timedelta(minutes=45)))
        w.logs, w.records = logs, records
        _connect_all(w)
        yield w
        api.close()
    finally:
        for handler, stream in streams:
            handler.stream = stream
        root.removeHandler(catcher)
        ours.removeHandler(catcher)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
        feeds.stop()
        stack.stop()


@pytest.fixture(autouse=True)
def _serving(world: World, capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Point the handlers' composition root at this file's stack (another file's stack may have
    taken the slot in this worker), and keep what the test printed (metrics, say) for the search."""
    use_container(world.stack.container)
    yield
    out = capsys.readouterr()
    world.records.extend([out.out, out.err])


# --- the three calendars ----------------------------------------------------------------------


def _google_event(start: datetime, **where: Any) -> dict[str, Any]:
    berlin = ZoneInfo("Europe/Berlin")  # Google writes the organiser's zone; the minute is the same
    return {
        "summary": "Cross-provider review",
        "start": {"dateTime": start.astimezone(berlin).isoformat(), "timeZone": "Europe/Berlin"},
        "end": {
            "dateTime": (start + timedelta(minutes=30)).astimezone(berlin).isoformat(),
            "timeZone": "Europe/Berlin",
        },
        "attendees": [
            {"email": CAROL, "self": True, "responseStatus": "accepted"},
            {"email": GUEST, "responseStatus": "needsAction"},
        ],
        **where,
    }


def _graph_event(start: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "subject": "Cross-provider review",
        "start": start,
        "end": start + timedelta(minutes=30),
        "attendees": [
            {"type": "required", "status": {"response": "none"}, "emailAddress": {"address": GUEST}},
        ],
        **fields,
    }


def _connect_all(w: World) -> None:
    """Put meetings A and B on all three calendars and connect them through the API, in this order."""
    s = w.stack
    s.google.add_calendar(CAROL)
    w.google_ids["A"] = s.google.put_event(CAROL, _google_event(w.a_start, location=f"Teams: {TEAMS_PLAIN}"))["id"]
    w.google_ids["B"] = s.google.put_event(
        CAROL,
        _google_event(
            w.b_start,
            conferenceData={"entryPoints": [{"entryPointType": "video", "uri": MEET}], "conferenceSolution": {}},
        ),
    )["id"]
    s.graph.add_user(DAVE)
    w.graph_ids["A"] = s.graph.put_event(
        DAVE,
        _graph_event(
            w.a_start,
            isOnlineMeeting=True,
            onlineMeetingProvider="teamsForBusiness",
            onlineMeeting={"joinUrl": TEAMS_GRAPH},
        ),
    )["id"]
    w.graph_ids["B"] = s.graph.put_event(
        DAVE,
        _graph_event(
            w.b_start, body={"contentType": "html", "content": f'<p>Join: <a href="{MEET}">Google Meet</a></p>'}
        ),
    )["id"]
    attendees = [(ALICE, "ACCEPTED"), (GUEST, "NEEDS-ACTION")]
    w.ics_events = {
        "A": Ev("a-across@acme.test", w.a_start, url=f"Join Microsoft Teams: {TEAMS_SAFELINK}", where="DESCRIPTION",
                title="Cross-provider review", attendees=attendees),
        "B": Ev("b-across@acme.test", w.b_start, url=MEET, where="URL", title="Cross-provider review",
                attendees=attendees),
    }  # fmt: skip
    w.publish_alice()

    app = s.oauth_clients[CalendarKind.MICROSOFT].client_id
    w.tokens["carol's consent"] = s.google_consent(primary=CAROL)
    w.tokens["dave's consent"] = s.graph.grant(app, DAVE)
    bodies = {
        "carol": {"provider": "google", "user_id": "carol", "refresh_token": w.tokens["carol's consent"],
                  "owner_email": CAROL},
        "dave": {"provider": "microsoft", "user_id": "dave", "refresh_token": w.tokens["dave's consent"],
                 "owner_email": DAVE},
        "alice": {"provider": "ics", "user_id": "alice", "feed_url": w.feeds.url("alice"), "owner_email": ALICE},
    }  # fmt: skip
    for user, body in bodies.items():
        status, made = w.api.post("/v1/calendars", body)
        assert status == 201 and made["status"] == "connected", made
        w.calendars[user] = made["calendar_id"]
    w.until(
        lambda: all(w.api.get(f"/v1/calendars/{cal}")["last_synced_at"] for cal in w.calendars.values()),
        "the first sync of each calendar",
    )


def _event_ids(w: World, meeting: str) -> dict[str, str]:
    return {"carol": w.google_ids[meeting], "dave": w.graph_ids[meeting], "alice": w.ics_events[meeting].uid}


def _settings_owner(w: World, users: list[str]) -> str:
    """The documented rule for a shared meeting's bot: the earliest-connected calendar that wants it."""
    shown = {u: w.api.get(f"/v1/calendars/{w.calendars[u]}") for u in users}
    return min(users, key=lambda u: (shown[u]["created_at"], shown[u]["calendar_id"]))


def _assert_shared(w: World, ids: dict[str, str], wanting: list[str]) -> dict[str, dict[str, Any]]:
    """Every calendar in ``wanting`` records the one meeting; all but the owner say whose bot it is."""
    owner = _settings_owner(w, wanting)
    decisions = {u: w.decision(u, ids[u]) for u in wanting}
    assert all(d is not None and d["recorded"] for d in decisions.values()), decisions
    assert len({d["meeting_key"] for d in decisions.values()}) == 1, decisions  # one dedup key for all
    assert len({d["bot_id"] for d in decisions.values()}) == 1
    for user, d in decisions.items():
        if user == owner:
            assert not d["reason"].startswith("shared with") and d["settings_from"] is None, d
        else:
            assert d["reason"].startswith(f"shared with {w.calendars[owner]}: one bot for this meeting"), d
            assert d["settings_from"] == w.calendars[owner]
    return decisions


# --- one bot until the last calendar drops it -------------------------------------------------


def test_a_meeting_on_google_microsoft_and_ics_gets_one_bot_until_the_last_calendar_drops_it(world: World) -> None:
    _one_bot_until_the_last_calendar_drops_it(world)


def _one_bot_until_the_last_calendar_drops_it(w: World) -> None:
    w.ran.add("shared")
    ids = _event_ids(w, "A")
    everyone = ["carol", "dave", "alice"]
    w.until(lambda: len(w.bots("meeting_Xc4lAcross9Prov")) >= 1, "a bot for meeting A")
    decisions = _assert_shared(w, ids, everyone)
    key = decisions["carol"]["meeting_key"]
    (bot,) = w.bots("meeting_Xc4lAcross9Prov")
    assert bot["status"] == "Scheduled" and not bot["cancelled"]
    meeting = w.meeting(key)
    assert meeting.bot_id == bot["bot_id"] and len(meeting.calendar_event_ids) == 3

    def still_recorded(by: int) -> None:
        m = w.meeting(key)
        assert m.desired is DesiredState.RECORD and len(m.calendar_event_ids) == by, m
        assert m.bot_id == bot["bot_id"]
        (same,) = w.bots("meeting_Xc4lAcross9Prov")  # never a second one
        assert same["bot_id"] == bot["bot_id"] and not same["cancelled"], same

    # 1. Cancelled at Google; Google pushes a notification to /calendar/google.
    w.stack.google.cancel_event(CAROL, w.google_ids["A"])
    w.google_push()
    w.until(lambda: not (w.decision("carol", ids["carol"]) or {}).get("recorded", True), "carol's event A dropped")
    assert w.decision("carol", ids["carol"])["reason"] == "cancelled"
    still_recorded(by=2)
    _assert_shared(w, ids, ["dave", "alice"])

    # 2. Deleted at Microsoft; Graph notifies /calendar/microsoft/notify.
    w.stack.graph.delete_event(DAVE, w.graph_ids["A"])
    w.graph_notify()
    w.until(lambda: not (w.decision("dave", ids["dave"]) or {}).get("recorded", True), "dave's event A dropped")
    still_recorded(by=1)
    alone = w.decision("alice", ids["alice"])
    assert alone["recorded"] and not alone["reason"].startswith("shared with"), alone

    # 3. Gone from alice's feed; the scheduled poll reads it. Now the meeting and its bot go.
    del w.ics_events["A"]
    w.publish_alice()
    w.ics_poll()
    w.until(lambda: w.meeting(key).desired is DesiredState.CANCELLED, "meeting A cancelled")
    w.until(lambda: w.bots("meeting_Xc4lAcross9Prov")[0]["cancelled"], "A's bot withdrawn at the provider")
    assert len(w.bots("meeting_Xc4lAcross9Prov")) == 1
    assert not w.decision("alice", ids["alice"])["recorded"]


# --- a grant that stops working ---------------------------------------------------------------


def test_a_revoked_grant_disconnects_with_a_reason_and_an_event_and_no_bot_is_lost_or_doubled(world: World) -> None:
    _revoked_grants_disconnect_and_reconnect(world)


def _revoked_grants_disconnect_and_reconnect(w: World) -> None:
    w.ran.add("revoked")
    s = w.stack
    ids = _event_ids(w, "B")
    everyone = ["carol", "dave", "alice"]
    w.until(lambda: len(w.bots("xcl-prov-bbb")) == 1, "a bot for meeting B")
    key = _assert_shared(w, ids, everyone)["carol"]["meeting_key"]
    (bot,) = w.bots("xcl-prov-bbb")
    created = s.simulator.create_calls

    def one_bot() -> None:
        (same,) = w.bots("xcl-prov-bbb")
        assert same["bot_id"] == bot["bot_id"] and not same["cancelled"], same
        m = w.meeting(key)
        assert m.desired is DesiredState.RECORD and m.bot_id == bot["bot_id"] and len(m.calendar_event_ids) == 3, m

    def disconnected(user: str) -> dict[str, Any]:
        cal = w.calendars[user]
        w.until(
            lambda: w.api.get(f"/v1/calendars/{cal}")["status"] == "disconnected", f"{user}'s calendar disconnected"
        )
        shown = w.api.get(f"/v1/calendars/{cal}")
        (event,) = [e for e in w.published(CALENDAR_DISCONNECTED) if e["detail"]["calendar_id"] == cal]
        validate(event)
        assert event["detail"]["reason"] == shown["disconnected_reason"] and event["detail"]["user_id"] == user
        assert w.decision(user, ids[user])["reason"].startswith(
            f"calendar disconnected ({shown['disconnected_reason']})"
        )
        one_bot()
        return shown

    # Google: the user removed the app's access; the next push finds the grant refused.
    s.google.revoke_grants(s.oauth_clients[CalendarKind.GOOGLE].client_id)
    s.google.expire_access_tokens()
    late = _minute(timedelta(hours=3))
    late_google = s.google.put_event(CAROL, _google_event(late, hangoutLink="https://meet.google.com/xcl-late-ccc"))[
        "id"
    ]
    w.google_push()
    carol = disconnected("carol")
    assert carol["disconnected_reason"].startswith("Google refused the refresh token (invalid_grant"), carol
    assert carol["provider"] == "google" and "reconnect" in carol["disconnected_reason"]

    # Microsoft: consent withdrawn; the next change notification finds the grant refused.
    s.graph.revoke_grant(DAVE, code=65001)
    s.graph.expire_access_tokens()
    late_graph = s.graph.put_event(
        DAVE,
        _graph_event(
            late + timedelta(hours=1), body={"contentType": "text", "content": "https://meet.google.com/xcl-late-ddd"}
        ),
    )["id"]
    w.graph_notify()
    dave = disconnected("dave")
    assert dave["disconnected_reason"].startswith("Microsoft refused the refresh token (AADSTS65001"), dave
    assert w.decision("carol", late_google) is None and w.decision("dave", late_graph) is None  # nothing read

    # A new consent each, through PATCH: connected again, and a full resync reads what changed meanwhile.
    app = s.oauth_clients[CalendarKind.MICROSOFT].client_id
    w.tokens["carol's second consent"] = s.google_consent(primary=CAROL)
    w.tokens["dave's second consent"] = s.graph.grant(app, DAVE)

    def reconnect(user: str, late_id: str, token: str) -> None:
        cal = w.calendars[user]
        before = w.api.get(f"/v1/calendars/{cal}")["last_full_sync_at"]
        patched = w.api.patch(f"/v1/calendars/{cal}", {"refresh_token": token})
        assert patched["status"] == "connected" and patched["disconnected_reason"] is None, patched

        def resynced() -> bool:
            late = w.decision(user, late_id)
            return (
                late is not None
                and late["recorded"]
                and w.api.get(f"/v1/calendars/{cal}")["last_full_sync_at"] > before
            )

        w.until(resynced, f"{user}'s resync after reconnecting")
        assert w.api.get(f"/v1/calendars/{cal}")["last_error"] is None

    reconnect("carol", late_google, w.tokens["carol's second consent"])
    reconnect("dave", late_graph, w.tokens["dave's second consent"])
    one_bot()
    _assert_shared(w, ids, everyone)
    assert s.simulator.create_calls == created  # nothing created twice, nothing created again
    announced = [e["detail"]["calendar_id"] for e in w.published(CALENDAR_DISCONNECTED)]
    assert sorted(announced) == sorted([w.calendars["carol"], w.calendars["dave"]])  # once each


# --- no refresh token anywhere ----------------------------------------------------------------


def test_no_refresh_token_shows_in_logs_answers_events_or_errors(world: World) -> None:
    w, s = world, world.stack
    # The whole scenario is searched, whichever of the tests above were selected.
    if "shared" not in w.ran:
        _one_bot_until_the_last_calendar_drops_it(w)
    if "revoked" not in w.ran:
        _revoked_grants_disconnect_and_reconnect(w)

    # Tokens that are turned away must not come back in the error either.
    refused = "1//0never-issued-" + "q" * 30
    w.tokens["a token Google never issued"] = refused
    for body in (
        {"provider": "google", "user_id": "erin", "refresh_token": refused},
        {"provider": "google", "user_id": "carol", "refresh_token": w.tokens["carol's consent"]},  # revoked
        {"provider": "microsoft", "user_id": "frank", "refresh_token": refused},
    ):
        with pytest.raises(ApiError) as caught:
            w.api.post("/v1/calendars", body)
        assert caught.value.status == 422, caught.value.message

    google_app = s.oauth_clients[CalendarKind.GOOGLE]
    graph_app = s.oauth_clients[CalendarKind.MICROSOFT]
    secrets = dict(w.tokens)
    secrets |= {f"a refresh token Google rotated ({i})": t for i, t in enumerate(s.google.rotated_refresh_tokens)}
    secrets |= {f"a refresh token Microsoft rotated ({i})": t for i, t in enumerate(s.graph.rotated_refresh_tokens)}
    secrets |= {
        "the Google client secret": google_app.client_secret,
        "the Microsoft client secret": graph_app.client_secret,
    }
    assert len(s.google.rotated_refresh_tokens) >= 2 and len(s.graph.rotated_refresh_tokens) >= 2

    errors = [
        f"{c['status']} {c['last_error']} {c['disconnected_reason']}" for c in w.api.get("/v1/calendars")["items"]
    ]
    errors += ["".join(traceback.format_exception(exc)) for exc in s.handler_errors]
    w.events = s.published_events()
    places = {
        "the logs": "\n".join([*w.records, w.logs.getvalue()]),
        "the API's answers": "\n".join(w.api.answers),
        "the published events": json.dumps(w.events),
        "the errors": "\n".join(errors),
        # At rest, sealed: not one token in the clear in the table.
        # Binary attributes (the sessions' dedupe hashes) as their bytes' repr: still searchable.
        "the table": json.dumps(
            s.container.client("dynamodb").scan(TableName=s.container.settings.table_name)["Items"], default=repr
        ),
    }
    leaks = sorted(
        f"{name} in {where}" for where, text in places.items() for name, value in secrets.items() if value in text
    )
    assert leaks == [], "; ".join(leaks)
    # The search saw real material: our own log lines, the answers, both disconnections.
    assert "calendar connected" in places["the logs"] and len(places["the logs"]) > 20_000
    assert "refresh_token: Google refused the refresh token" in places["the API's answers"]
    assert places["the published events"].count(CALENDAR_DISCONNECTED) == 2
