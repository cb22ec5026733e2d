"""The demo's calendars: two users' ICS feeds, written from ``demo_calendar.ics`` at run time.

The shipped template holds one VCALENDAR per user. Its times are placeholders filled in relative to
the demo's start, so the meetings fall inside the run. Each feed exists in two versions: the first
is registered and synced; then the second is published (one meeting moved by more than a minute,
one cancelled) and synced again, as a later poll would. What the demo expects from them:

- "Quarterly planning" is on both calendars (the link written two ways): one meeting, one bot.
- "Team standup" is a daily series of three: today's instance was moved earlier (a RECURRENCE-ID
  exception) and is recorded, tomorrow's is scheduled, the third is removed by EXDATE.
- "Customer call" moves from late in the run to early in it: recorded at its new time only.
- "Vendor pitch" is cancelled before its dispatch: no bot.
- "Partner sync" has its Teams link only in the description.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

TEMPLATE_PATH = Path(__file__).with_name("demo_calendar.ics")
USERS = ("alice", "bob")
PLANNING_URL = "https://acme.zoom.us/j/85550001111?pwd=demo"
STANDUP_URL = "https://meet.google.com/std-dail-yup"
CUSTOMER_URL = "https://meet.google.com/cus-tome-rca"
VENDOR_URL = "https://meet.google.com/ven-dorp-itc"
PARTNER_URL = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZGVtby1wYXJ0bmVyLXN5bmM%40thread.v2/0"
    "?context=%7b%22Tid%22%3a%22d3m0%22%2c%22Oid%22%3a%22b0b%22%7d"
)
MEETING_MINUTES = 30


@dataclass(frozen=True)
class CalendarEntry:
    """One calendar event as the demo expects it to end up.

    ``expect``: ``record`` (a bot records it), ``no_bot`` (cancelled, or moved away from this time),
    ``later`` (scheduled beyond the run).
    """

    title: str
    url: str
    start: datetime
    user_id: str
    expect: str = "record"


@dataclass(frozen=True)
class DemoCalendars:
    """Both versions of both users' feeds, and the entries the demo checks."""

    before: dict[str, str]  # user -> ICS text first published
    after: dict[str, str]  # user -> ICS text after the move and the cancellation
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
        CalendarEntry("Standup (moved today)", STANDUP_URL, standup, "alice"),
        CalendarEntry("Partner sync (Teams)", PARTNER_URL, partner, "bob"),
        CalendarEntry("Customer call (moved)", CUSTOMER_URL, customer_after, "bob"),
        CalendarEntry("Customer call (old time)", CUSTOMER_URL, customer_before, "bob", "no_bot"),
        CalendarEntry("Vendor pitch (cancelled)", VENDOR_URL, vendor, "alice", "no_bot"),
        CalendarEntry("Standup (tomorrow)", STANDUP_URL, series + timedelta(days=1), "alice", "later"),
    ]
    return DemoCalendars(before=fill(moved=False), after=fill(moved=True), entries=entries)


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
