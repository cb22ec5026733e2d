"""Both calendar sources say who organises an event and how the owner answered, for the
organiser-only and accepted-only rules; where the source cannot say, the fields stay unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.adapters.google_calendar import parse_google_event
from meetpilot.adapters.ics import parse_feed

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _google(organizer: dict, attendees: list[dict] | None = None, owner: str | None = None):
    item = {
        "id": "e1",
        "summary": "Review",
        "start": {"dateTime": "2026-06-01T09:00:00Z"},
        "end": {"dateTime": "2026-06-01T09:30:00Z"},
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "organizer": organizer,
    }
    if attendees is not None:
        item["attendees"] = attendees
    return parse_google_event(item, calendar_id="cal", owner_email=owner)


@pytest.mark.parametrize(
    "status,answer",
    [("accepted", "accepted"), ("tentative", "tentative"), ("needsAction", "none"), ("declined", "declined")],
)
def test_google_owner_as_guest_says_how_they_answered(status, answer):
    event = _google(
        {"email": "Bob@X.test"},
        [{"email": "bob@x.test", "organizer": True}, {"email": "me@acme.test", "self": True, "responseStatus": status}],
    )
    assert (event.organized_by_owner, event.organizer, event.owner_response) == (False, "bob@x.test", answer)


def test_google_owner_as_organiser():
    mine = _google({"email": "me@acme.test", "self": True}, [{"email": "a@b.test", "responseStatus": "accepted"}])
    assert (mine.organized_by_owner, mine.owner_response) == (True, "organizer")
    by_address = _google({"email": "ME@acme.test"}, owner="me@acme.test")
    assert (by_address.organized_by_owner, by_address.owner_response) == (True, "organizer")


def _ics(*lines: str, owner: str | None):
    body = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//EN",
            "BEGIN:VEVENT",
            "UID:u1",
            "DTSTAMP:20260501T000000Z",
            "DTSTART:20260601T090000Z",
            "DTEND:20260601T093000Z",
            "SUMMARY:Review",
            "LOCATION:https://meet.google.com/abc-defg-hij",
            *lines,
            "END:VEVENT",
            "END:VCALENDAR",
        ]
    )
    (event,) = parse_feed(
        body.encode(),
        calendar_id="cal",
        window_start=START - timedelta(days=1),
        window_end=START + timedelta(days=1),
        owner_email=owner,
    )
    return event


def test_ics_with_the_owners_address_reads_organizer_and_partstat():
    guest = _ics("ORGANIZER:mailto:bob@x.test", "ATTENDEE;PARTSTAT=TENTATIVE:mailto:Me@Acme.test", owner="me@acme.test")
    assert (guest.organized_by_owner, guest.organizer, guest.owner_response) == (False, "bob@x.test", "tentative")
    host = _ics("ORGANIZER:mailto:me@acme.test", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@x.test", owner="me@acme.test")
    assert (host.organized_by_owner, host.owner_response) == (True, "organizer")


def test_ics_without_the_owners_address_cannot_say():
    event = _ics("ORGANIZER:mailto:bob@x.test", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@acme.test", owner=None)
    assert (event.organized_by_owner, event.owner_response) == (None, None)
    silent = _ics(owner="me@acme.test")  # no ORGANIZER, owner not listed
    assert (silent.organized_by_owner, silent.owner_response) == (None, None)
