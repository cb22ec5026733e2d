"""The demo's calendars: four users, each connected through the management API as a product would.

alice and bob have ICS feeds written from ``demo_calendar.ics`` at run time, carol a Google calendar
and dave a Microsoft 365 one, at the local fakes of Google Calendar and Microsoft Graph (their
refresh tokens are what the fakes' consent screens give the user's app). Times are placeholders
filled in relative to the demo's start, so the meetings fall inside the run. Each ICS feed exists in
two versions: the first is connected and synced; then the second is published (one meeting moved by
more than a minute, one cancelled) and synced again, as a later poll would; meanwhile dave creates
a meeting at Microsoft, and Graph's change notification brings it in. What the demo expects:

- "Quarterly planning" is on all four calendars, its Zoom link written a different way on each (a
  tracking parameter, Google's conference data, an Outlook safelink in the invitation's body): one
  meeting, one bot.
- "Team standup" is a daily series of three: today's instance was moved earlier (a RECURRENCE-ID
  exception) and is recorded, tomorrow's is scheduled, the third is removed by EXDATE.
- "Customer call" moves from late in the run to early in it: recorded at its new time only.
- "Vendor pitch" is cancelled before its dispatch: no bot.
- "Partner sync" has its Teams link only in the description.
- "Design 1:1" is dave's, with a Teams link and only colleagues at his domain; his calendar records
  only meetings with someone from outside it, so it gets no bot, and its decision says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

TEMPLATE_PATH = Path(__file__).with_name("demo_calendar.ics")
USERS = ("alice", "bob")  # the ICS feeds of the template
PLANNING_URL = "https://acme.zoom.us/j/85550001111?pwd=demo"
DESIGN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZGVzaWduLW9uZS1vbi1vbmU%40thread.v2/0"
DESIGN_TITLE = "Design 1:1"
DESIGN_REASON = "rule only-external: all attendees at contoso.demo"
STANDUP_URL = "https://meet.google.com/std-dail-yup"
CUSTOMER_URL = "https://meet.google.com/cus-tome-rca"
VENDOR_URL = "https://meet.google.com/ven-dorp-itc"
PARTNER_URL = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZGVtby1wYXJ0bmVyLXN5bmM%40thread.v2/0"
    "?context=%7b%22Tid%22%3a%22d3m0%22%2c%22Oid%22%3a%22b0b%22%7d"
)
MEETING_MINUTES = 30


@dataclass(frozen=True)
class Connection:
    """One user's calendar as the demo connects it: the body of ``POST /v1/calendars`` but the
    secret (a feed address or refresh token, known only at run time)."""

    user_id: str
    provider: str  # google, microsoft or ics
    owner_email: str
    label: str
    rules: dict[str, Any] = field(default_factory=dict)

    def body(self, secret: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "provider": self.provider,
            "user_id": self.user_id,
            "owner_email": self.owner_email,
            "label": self.label,
            **secret,
        }
        if self.rules:
            body["rules"] = self.rules
        return body


CONNECTIONS = (
    Connection("alice", "ics", "alice@acme.demo", "alice's work calendar"),
    Connection("bob", "ics", "bob@acme.demo", "bob's work calendar"),
    Connection("carol", "google", "carol@acme.demo", "carol's Google calendar"),
    # Recording only meetings with someone from outside contoso.demo: the Design 1:1 is skipped.
    Connection("dave", "microsoft", "dave@contoso.demo", "dave's Outlook calendar", {"external_only": True}),
)


@dataclass(frozen=True)
class CalendarEntry:
    """One calendar event as the demo expects it to end up.

    ``expect``: ``record`` (a bot records it), ``no_bot`` (cancelled, or moved away from this time),
    ``later`` (scheduled beyond the run), ``skipped`` (a rule of its calendar says no: ``reason``
    is the decision the API must show for it).
    """

    title: str
    url: str
    start: datetime
    user_id: str
    expect: str = "record"
    reason: str | None = None


@dataclass(frozen=True)
class DemoCalendars:
    """Both versions of the ICS feeds, the events at Google and Microsoft, and the entries the demo checks."""

    before: dict[str, str]  # user -> ICS text first published
    after: dict[str, str]  # user -> ICS text after the move and the cancellation
    google: dict[str, list[dict[str, Any]]]  # mailbox -> Google events there before it is connected
    microsoft: dict[str, list[dict[str, Any]]]  # mailbox -> Graph events there before it is connected
    microsoft_added: dict[str, list[dict[str, Any]]]  # mailbox -> Graph events created during the run
    entries: list[CalendarEntry]


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def plan_calendars(now: datetime, *, first_start: float = 20.0) -> DemoCalendars:
    """Fill the template with times relative to ``now`` (the first meeting ``first_start`` s after it)."""
    base = now.replace(microsecond=0) + timedelta(seconds=first_start)
    length = timedelta(minutes=MEETING_MINUTES)
    shared = base + timedelta(seconds=6)
    standup = base + timedelta(seconds=10)
    partner = base + timedelta(seconds=14)
    customer_after = base + timedelta(seconds=18)
    customer_before = customer_after + timedelta(seconds=75)  # > 1 minute: a different meeting key
    vendor = base + timedelta(seconds=30)
    design = base + timedelta(seconds=24)
    series = base + timedelta(seconds=60)  # the standup's usual time; today's instance was moved earlier

    def fill(*, moved: bool) -> dict[str, str]:
        customer = customer_after if moved else customer_before
        values = {
            "now": _stamp(now),
            "shared_start": _stamp(shared),
            "shared_end": _stamp(shared + length),
            "series_start": _stamp(series),
            "series_end": _stamp(series + length),
            "series_exdate": _stamp(series + timedelta(days=2)),
            "standup_moved_start": _stamp(standup),
            "standup_moved_end": _stamp(standup + length),
            "vendor_sequence": "1" if moved else "0",
            "vendor_status": "CANCELLED" if moved else "CONFIRMED",
            "vendor_start": _stamp(vendor),
            "vendor_end": _stamp(vendor + length),
            "customer_sequence": "1" if moved else "0",
            "customer_start": _stamp(customer),
            "customer_end": _stamp(customer + length),
            "partner_start": _stamp(partner),
            "partner_end": _stamp(partner + length),
        }
        text = Template(TEMPLATE_PATH.read_text(encoding="utf-8")).substitute(values)
        return split_calendars(text)

    entries = [
        CalendarEntry("Quarterly planning", PLANNING_URL, shared, "alice"),
        CalendarEntry("Quarterly planning", PLANNING_URL, shared, "bob"),
        CalendarEntry("Quarterly planning", PLANNING_URL, shared, "carol"),
        CalendarEntry("Quarterly planning", PLANNING_URL, shared, "dave"),
        CalendarEntry("Standup (moved today)", STANDUP_URL, standup, "alice"),
        CalendarEntry("Partner sync (Teams)", PARTNER_URL, partner, "bob"),
        CalendarEntry("Customer call (moved)", CUSTOMER_URL, customer_after, "bob"),
        CalendarEntry("Customer call (old time)", CUSTOMER_URL, customer_before, "bob", "no_bot"),
        CalendarEntry("Vendor pitch (cancelled)", VENDOR_URL, vendor, "alice", "no_bot"),
        CalendarEntry("Standup (tomorrow)", STANDUP_URL, series + timedelta(days=1), "alice", "later"),
        CalendarEntry(DESIGN_TITLE, DESIGN_URL, design, "dave", "skipped", DESIGN_REASON),
    ]
    return DemoCalendars(
        before=fill(moved=False),
        after=fill(moved=True),
        google={"carol@acme.demo": [_google_planning(shared, length)]},
        microsoft={"dave@contoso.demo": [_graph_planning(shared, length)]},
        microsoft_added={"dave@contoso.demo": [_graph_design(design, length)]},
        entries=entries,
    )


def _attendees_google(owner: str, *others: str) -> list[dict[str, Any]]:
    people = [{"email": owner, "self": True, "responseStatus": "accepted"}]
    return people + [{"email": email, "responseStatus": "accepted"} for email in others]


def _google_planning(start: datetime, length: timedelta) -> dict[str, Any]:
    """alice's invitation as carol's Google calendar holds it: the Zoom add-on's conference data."""
    return {
        "summary": "Quarterly planning",
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (start + length).isoformat(), "timeZone": "UTC"},
        "organizer": {"email": "alice@acme.demo"},
        "attendees": _attendees_google("carol@acme.demo", "alice@acme.demo", "bob@acme.demo", "dave@contoso.demo"),
        "conferenceData": {
            "conferenceSolution": {"name": "Zoom Meeting", "key": {"type": "addOn"}},
            "entryPoints": [{"entryPointType": "video", "uri": PLANNING_URL, "label": "acme.zoom.us/j/85550001111"}],
        },
    }


def _graph_attendee(email: str, response: str = "accepted") -> dict[str, Any]:
    return {"type": "required", "status": {"response": response}, "emailAddress": {"address": email}}


def _graph_planning(start: datetime, length: timedelta) -> dict[str, Any]:
    """alice's invitation as dave's Outlook holds it: the Zoom link only in the body, behind a safelink."""
    safelink = "https://eur01.safelinks.protection.outlook.com/?url=" + quote(PLANNING_URL, safe="") + "&amp;reserved=0"
    return {
        "subject": "Quarterly planning",
        "start": start,
        "end": start + length,
        "isOnlineMeeting": False,
        "location": {"displayName": "Zoom"},
        "body": {
            "contentType": "html",
            "content": f"<html><body><p>Alice is inviting you to a Zoom meeting.</p><p>Join Zoom Meeting<br>"
            f'<a href="{safelink}">{safelink}</a></p></body></html>',
        },
        "organizer": {"emailAddress": {"name": "Alice", "address": "alice@acme.demo"}},
        "attendees": [_graph_attendee(e) for e in ("alice@acme.demo", "bob@acme.demo", "carol@acme.demo")]
        + [_graph_attendee("dave@contoso.demo")],
    }


def _graph_design(start: datetime, length: timedelta) -> dict[str, Any]:
    """dave's own Teams meeting with a colleague: nobody from outside contoso.demo."""
    return {
        "subject": DESIGN_TITLE,
        "start": start,
        "end": start + length,
        "isOrganizer": True,
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "onlineMeeting": {"joinUrl": DESIGN_URL},
        "attendees": [_graph_attendee("erin@contoso.demo")],
    }


def split_calendars(text: str) -> dict[str, str]:
    """The template's VCALENDARs by their ``X-WR-CALNAME`` (the user they belong to), CRLF line ends."""
    feeds: dict[str, str] = {}
    for chunk in text.split("END:VCALENDAR"):
        body = chunk.strip()
        if not body:
            continue
        lines = [*body.splitlines(), "END:VCALENDAR"]
        name = next(line.split(":", 1)[1] for line in lines if line.startswith("X-WR-CALNAME:"))
        feeds[name.strip()] = "\r\n".join(lines) + "\r\n"
    if set(feeds) != set(USERS):
        raise ValueError(f"the demo calendar template must hold calendars for {USERS}, found {sorted(feeds)}")
    return feeds
