"""Both calendar sources report who is invited (organizer and attendees, rooms left out), for the
per-calendar filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from meetpilot.adapters.google_calendar import parse_google_event
from meetpilot.adapters.ics import parse_feed

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_google_event_lists_organizer_and_people_but_not_rooms():
    item = {
        "id": "e1",
        "summary": "Review",
        "start": {"dateTime": "2026-06-01T09:00:00Z"},
        "end": {"dateTime": "2026-06-01T09:30:00Z"},
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "organizer": {"email": "Boss@Acme.test"},
        "attendees": [
            {"email": "boss@acme.test", "responseStatus": "accepted"},
            {"email": "guest@partner.test", "responseStatus": "needsAction"},
            {"email": "room-4@resource.calendar.google.com", "resource": True},
            {"displayName": "no address"},
        ],
    }
    event = parse_google_event(item, calendar_id="cal", owner_email=None)
    assert event.attendees == ("boss@acme.test", "guest@partner.test")


def test_ics_event_lists_organizer_and_people_but_not_rooms():
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
            "LOCATION:https://acme.zoom.us/j/123456789",
            "ORGANIZER;CN=Boss:mailto:Boss@Acme.test",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@acme.test",
            "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:guest@partner.test",
            "ATTENDEE;CUTYPE=ROOM:mailto:room-4@acme.test",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    ).encode()
    (event,) = parse_feed(
        body, calendar_id="cal", window_start=START - timedelta(days=1), window_end=START + timedelta(days=1)
    )
    assert event.attendees == ("boss@acme.test", "guest@partner.test")
