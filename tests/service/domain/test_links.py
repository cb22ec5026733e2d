"""Meeting-link extraction and the canonical URL behind the dedup key."""

import re
from datetime import UTC, datetime

import pytest

from meetpilot.domain.links import (
    canonical_meeting_url,
    find_meeting_url,
    meeting_platform,
    unwrap_redirects,
    without_passcode,
)
from meetpilot.domain.meeting import meeting_key, normalise_meeting_url

TEAMS_THREAD = "19%3ameeting_NGE3ZjEyZDQtYjM0NS00ZGQ5LWE2YjctZDRlNmI4OTIxMDk4%40thread.v2"
TEAMS_URL = (
    f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0"
    "?context=%7b%22Tid%22%3a%227f3e4b2a-1c5d%22%2c%22Oid%22%3a%22a1b2c3d4%22%7d"
)
START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


# --- which links are meeting links ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://zoom.us/j/85551234567", "zoom"),
        ("https://us02web.zoom.us/j/85551234567?pwd=Q2xpZW50UHdk.1", "zoom"),
        ("https://acme-corp.zoom.us/j/85551234567?pwd=abc#success", "zoom"),
        ("https://acme.zoom.us/my/jane.doe", "zoom"),
        ("https://acme.zoom.us/w/91234567890?tk=abc", "zoom"),
        ("https://zoom.us/wc/join/85551234567", "zoom"),
        ("https://agency.zoomgov.com/j/1601234567?pwd=xyz", "zoom"),
        (TEAMS_URL, "teams"),
        ("https://teams.microsoft.com/l/meetup-join/19:meeting_abc@thread.v2/0", "teams"),
        ("https://teams.microsoft.com/meet/2345678901234?p=AbCdEfGh", "teams"),
        ("https://teams.live.com/meet/9387654321012?p=Xy12", "teams"),
        ("https://gov.teams.microsoft.us/l/meetup-join/19%3ameeting_Z292%40thread.v2/0", "teams"),
        ("https://dod.teams.microsoft.us/l/meetup-join/19%3ameeting_ZG9k%40thread.v2/0", "teams"),
        ("https://meet.google.com/abc-defg-hij", "meet"),
        ("https://meet.google.com/abc-defg-hij?authuser=1&hs=122", "meet"),
        ("https://acme.webex.com/meet/jane.doe", "webex"),
        ("https://acme.webex.com/join/jdoe", "webex"),
        ("https://acme.webex.com/acme/j.php?MTID=m4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a", "webex"),
        ("https://acme.my.webex.com/wbxmjs/joinservice/sites/acme/meeting/download/abc", "webex"),
        # not meeting links, even on the platforms' own domains
        ("https://zoom.us/pricing", None),
        ("https://zoom.us/download", None),
        ("https://acme.zoom.us/rec/share/abcDEF", None),
        ("https://zoom.us/j/", None),
        ("https://teams.microsoft.com/meetingOptions/?organizerId=a1b2", None),
        ("https://aka.ms/JoinTeamsMeeting", None),
        ("https://meet.google.com/", None),
        ("https://meet.google.com/landing", None),
        ("https://docs.google.com/document/d/1AbCdEf/edit", None),
        ("https://calendar.google.com/calendar/event?eid=abc", None),
        ("https://www.webex.com/pricing/index.html", None),
        ("https://acme.webex.com/acme/j.php", None),
        ("https://zoom.us.evil.example/j/85551234567", None),
        ("https://notzoom.us/j/85551234567", None),
        ("ftp://zoom.us/j/85551234567", None),
        ("not a url", None),
    ],
)
def test_meeting_platform_recognises_join_links_only(url, platform):
    assert meeting_platform(url) == platform


# --- finding the link in an event -------------------------------------------------------------


OUTLOOK_TEAMS_HTML = f"""<html><body><div>________________</div>
<div><span style="font-size:24px">Microsoft Teams meeting</span></div>
<div><a href="https://nam12.safelinks.protection.outlook.com/?url={
    "https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_NGE3ZjEyZDQtYjM0NS00ZGQ5LWE2YjctZDRlNmI4OTIxMDk4"
    "%2540thread.v2%2F0%3Fcontext%3D%257b%2522Tid%2522%253a%25227f3e%2522%257d"
}&amp;data=05%7C02%7C&amp;sdata=abc%3D&amp;reserved=0">Join the meeting now</a></div>
<div>Meeting ID: 312 445 901 227 Passcode: aB3dE5</div>
<div><a href="https://aka.ms/JoinTeamsMeeting">Need help?</a> |
<a href="https://teams.microsoft.com/meetingOptions/?organizerId=a1b2&amp;threadId=19_meeting">Meeting options</a></div>
</body></html>"""


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"description": OUTLOOK_TEAMS_HTML},
            f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0?context=%7b%22Tid%22%3a%227f3e%22%7d",
            id="outlook-teams-invite-link-only-in-a-href-behind-safelinks",
        ),
        pytest.param(
            {
                "description": "Join Zoom Meeting\n"
                "https://us02web.zoom.us/j/85551234567?pwd=Q2xpZW50UHdk.1\n\nMeeting ID: 855"
            },
            "https://us02web.zoom.us/j/85551234567?pwd=Q2xpZW50UHdk.1",
            id="zoom-invitation-text",
        ),
        pytest.param(
            {"location": "https://acme.zoom.us/j/85551234567?pwd=abc."},
            "https://acme.zoom.us/j/85551234567?pwd=abc",
            id="trailing-full-stop",
        ),
        pytest.param(
            {"location": "Zoom (https://acme.zoom.us/j/85551234567)"},
            "https://acme.zoom.us/j/85551234567",
            id="in-parentheses",
        ),
        pytest.param(
            {"description": "Link: <https://meet.google.com/abc-defg-hij>, see you"},
            "https://meet.google.com/abc-defg-hij",
            id="angle-brackets",
        ),
        pytest.param(
            {"description": 'href was "https://meet.google.com/abc-defg-hij"'},
            "https://meet.google.com/abc-defg-hij",
            id="in-quotes",
        ),
        pytest.param(
            {"description": "[Join](https://acme.webex.com/meet/jane.doe)"},
            "https://acme.webex.com/meet/jane.doe",
            id="markdown",
        ),
        pytest.param(
            {"location": "meet.google.com/abc-defg-hij"},
            "https://meet.google.com/abc-defg-hij",
            id="no-scheme-in-location",
        ),
        pytest.param(
            {"location": "Room 4 / acme.zoom.us/j/85551234567"},
            "https://acme.zoom.us/j/85551234567",
            id="no-scheme-vanity-zoom",
        ),
        pytest.param(
            {
                "description": "Teams: https://teams.microsoft.com/l/meetup-join/19:meeting_X@thread.v2/0?context="
                '{"Tid":"7f3e","Oid":"a1b2"} (dial-in below)'
            },
            "https://teams.microsoft.com/l/meetup-join/19:meeting_X@thread.v2/0?context=%7B%22Tid%22:%227f3e%22,%22Oid%22:%22a1b2%22%7D",
            id="teams-unencoded-context-json",
        ),
        pytest.param(
            {"description": "Join: https://teams.microsoft.com/meet/2345678901234?p=AbCdEfGh"},
            "https://teams.microsoft.com/meet/2345678901234?p=AbCdEfGh",
            id="teams-new-meet-link",
        ),
        pytest.param(
            {"description": "https://teams.live.com/meet/9387654321012?p=Xy12"},
            "https://teams.live.com/meet/9387654321012?p=Xy12",
            id="teams-free",
        ),
        pytest.param(
            {"description": "https://dod.teams.microsoft.us/l/meetup-join/19%3ameeting_ZG9k%40thread.v2/0"},
            "https://dod.teams.microsoft.us/l/meetup-join/19%3ameeting_ZG9k%40thread.v2/0",
            id="teams-dod",
        ),
        pytest.param(
            {"description": "Zoom for Government: https://agency.zoomgov.com/j/1601234567?pwd=xyz"},
            "https://agency.zoomgov.com/j/1601234567?pwd=xyz",
            id="zoomgov",
        ),
        pytest.param(
            {"description": "Webex: https://acme.webex.com/acme/j.php?MTID=m4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"},
            "https://acme.webex.com/acme/j.php?MTID=m4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",
            id="webex-j-php",
        ),
        pytest.param(
            {
                "description": 'Join: <a href="https://www.google.com/url?q=https://meet.google.com/tri-agex-yzz&amp;sa=D">'
                "meet.google.com/tri-agex-yzz</a>"
            },
            "https://meet.google.com/tri-agex-yzz",
            id="google-redirect-wrapper",
        ),
        pytest.param(
            {
                "description": "Join: https://urldefense.proofpoint.com/v2/url?u=https-3A__acme.zoom.us_j_85551234567-3Fpwd-3Dabc&d=DwMF&c=x"
            },
            "https://acme.zoom.us/j/85551234567?pwd=abc",
            id="proofpoint-v2",
        ),
        pytest.param(
            {"description": "Join: https://urldefense.com/v3/__https://acme.zoom.us/j/85551234567__;!!abc$"},
            "https://acme.zoom.us/j/85551234567",
            id="proofpoint-v3",
        ),
        pytest.param(
            {
                "description": "https://teams.microsoft.com/dl/launcher/launcher.html?url=%2F_%23%2Fl%2Fmeetup-join%2F19%3Ameeting_X%40thread.v2%2F0&type=meetup-join"
            },
            "https://teams.microsoft.com/l/meetup-join/19:meeting_X@thread.v2/0",
            id="teams-launcher",
        ),
        pytest.param(
            {"description": "<p>Zoom:&nbsp;https://acme.zoom.us/j/85551234567?pwd=a&amp;uname=x</p>"},
            "https://acme.zoom.us/j/85551234567?pwd=a&uname=x",
            id="html-entities-in-text",
        ),
        pytest.param(
            {"description": "https://acme.zoom.us/j/85551234567\u200b and more"},
            "https://acme.zoom.us/j/85551234567",
            id="zero-width-space",
        ),
        pytest.param(
            {
                "description": "Agenda https://docs.google.com/document/d/1AbC/edit, pricing https://zoom.us/pricing, "
                "recording https://acme.zoom.us/rec/share/xyz, mail bob@zoom.us/j"
            },
            None,
            id="no-false-positives",
        ),
        pytest.param({"location": "Conference room 4.01", "description": ""}, None, id="nothing"),
    ],
)
def test_find_meeting_url_in_real_world_shapes(fields, expected):
    assert find_meeting_url(**fields) == expected


def test_priority_conference_entry_point_then_hangout_link_then_location_then_description():
    conference = {
        "entryPoints": [
            {"entryPointType": "phone", "uri": "tel:+1-555-0100"},
            {"entryPointType": "more", "uri": "https://tel.meet/abc-defg-hij"},
            {"entryPointType": "video", "uri": "https://us02web.zoom.us/j/81111111111?pwd=conf"},
        ],
        "conferenceSolution": {"key": {"type": "addOn"}},
    }
    fields = {
        "conference_data": conference,
        "hangout_link": "https://meet.google.com/aaa-bbbb-ccc",
        "location": "https://acme.zoom.us/j/82222222222",
        "description": "https://acme.webex.com/meet/jane",
    }
    assert find_meeting_url(**fields) == "https://us02web.zoom.us/j/81111111111?pwd=conf"
    del fields["conference_data"]
    assert find_meeting_url(**fields) == "https://meet.google.com/aaa-bbbb-ccc"
    del fields["hangout_link"]
    assert find_meeting_url(**fields) == "https://acme.zoom.us/j/82222222222"
    del fields["location"]
    assert find_meeting_url(**fields) == "https://acme.webex.com/meet/jane"


def test_unjoinable_sources_fall_through_to_the_next():
    # A conference add-on for a platform no bot joins, and a location that only names a room.
    conference = {"entryPoints": [{"entryPointType": "video", "uri": "https://example-conference.test/room/42"}]}
    assert (
        find_meeting_url(
            conference_data=conference,
            location="Room 4.01",
            description="Dial in or join https://teams.microsoft.com/meet/2345678901234?p=AbCd",
        )
        == "https://teams.microsoft.com/meet/2345678901234?p=AbCd"
    )


def test_first_joinable_link_in_a_description_wins():
    text = "Docs: https://docs.google.com/x . Join: https://meet.google.com/abc-defg-hij or backup https://acme.zoom.us/j/85551234567"
    assert find_meeting_url(description=text) == "https://meet.google.com/abc-defg-hij"


def test_malformed_conference_data_is_ignored():
    for junk in ({"entryPoints": "nope"}, {"entryPoints": [None, 3, {"entryPointType": "video"}]}, {}):
        assert find_meeting_url(conference_data=junk, location="https://meet.google.com/abc-defg-hij") == (
            "https://meet.google.com/abc-defg-hij"
        )


def test_broken_html_does_not_lose_a_plain_link():
    text = "<div><a href=>Join</a> <https://acme.zoom.us/j/85551234567> <b>unclosed"
    assert find_meeting_url(description=text) == "https://acme.zoom.us/j/85551234567"


def test_a_link_split_by_inline_tags_is_joined_again():
    text = "<p>Join: <span>https://acme.zoom.us/</span><wbr>j/85551234567<span>?pwd=abc</span></p><p>Notes</p>"
    assert find_meeting_url(description=text) == "https://acme.zoom.us/j/85551234567?pwd=abc"


def test_script_and_style_content_is_not_read():
    text = "<style>a{background:url(https://meet.google.com/aaa-bbbb-ccc)}</style><p>Join https://acme.webex.com/meet/jane</p>"
    assert find_meeting_url(description=text) == "https://acme.webex.com/meet/jane"


def test_nested_wrappers_are_all_unwrapped():
    inner = "https%3A%2F%2Fwww.google.com%2Furl%3Fq%3Dhttps%253A%252F%252Fmeet.google.com%252Fabc-defg-hij%26sa%3DD"
    wrapped = f"https://eur01.safelinks.protection.outlook.com/?url={inner}&data=x"
    assert unwrap_redirects(wrapped) == "https://meet.google.com/abc-defg-hij"
    assert unwrap_redirects("https://example.com/a?url=https://meet.google.com/abc-defg-hij") == (
        "https://example.com/a?url=https://meet.google.com/abc-defg-hij"
    )


# --- the dedup key: same meeting, same key; different meeting, different key ------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://us02web.zoom.us/j/85551234567?pwd=abc", "https://acme.zoom.us/j/85551234567?pwd=abc"),
        (
            "https://zoom.us/j/85551234567?pwd=abc&uname=Jane&utm_source=x",
            "HTTPS://ZOOM.US:443/j/85551234567/?pwd=abc#success",
        ),
        ("https://zoom.us/w/85551234567?pwd=abc", "https://zoom.us/j/85551234567?pwd=abc"),
        ("https://zoom.us/wc/join/85551234567?pwd=abc", "https://zoom.us/j/85551234567?pwd=abc"),
        ("https://acme.zoom.us/my/Jane.Doe", "https://zoom.us/my/jane.doe"),
        ("https://meet.google.com/ABC-DEFG-HIJ", "https://meet.google.com/abc-defg-hij?authuser=2&hs=122&pli=1"),
        ("https://meet.google.com/abc-defg-hij", "http://meet.google.com/abc-defg-hij/"),
        (TEAMS_URL, f"https://teams.microsoft.com/l/meetup-join/{TEAMS_THREAD}/0"),
        (
            TEAMS_URL,
            "https://teams.microsoft.com/l/meetup-join/19:meeting_NGE3ZjEyZDQtYjM0NS00ZGQ5LWE2YjctZDRlNmI4OTIxMDk4@thread.v2/0?context=%7B%7D",
        ),
        (
            TEAMS_URL,
            TEAMS_URL.replace("%3a", "%3A")
            .replace("%40", "%40")
            .replace("Teams", "teams")
            .replace("https://teams", "https://TEAMS"),
        ),
        (
            TEAMS_URL,
            "https://nam12.safelinks.protection.outlook.com/?url="
            + TEAMS_URL.replace("%", "%25")
            .replace(":", "%3A")
            .replace("/", "%2F")
            .replace("?", "%3F")
            .replace("=", "%3D")
            + "&data=x",
        ),
        (
            "https://teams.microsoft.com/meet/2345678901234?p=AbCd&anon=true",
            "https://teams.microsoft.com/meet/2345678901234?p=AbCd",
        ),
        ("https://acme.webex.com/acme/j.php?MTID=m4d5e6&RGID=r1", "https://ACME.webex.com/acme/j.php?MTID=m4d5e6"),
        (
            "https://example.com/room?b=2&a=1&utm_campaign=x&fbclid=y&gclid=z&mc_eid=1&_ga=2",
            "https://EXAMPLE.com:443/room/?a=1&b=2",
        ),
    ],
)
def test_links_to_the_same_meeting_share_a_key(a, b):
    assert normalise_meeting_url(a) == normalise_meeting_url(b)
    assert meeting_key(a, START) == meeting_key(b, START)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://zoom.us/j/85551234567", "https://zoom.us/j/85551234568"),
        ("https://zoom.us/j/85551234567?pwd=abc", "https://zoom.us/j/85551234567?pwd=ABC"),
        ("https://zoom.us/j/1601234567", "https://zoomgov.com/j/1601234567"),
        ("https://meet.google.com/abc-defg-hij", "https://meet.google.com/abc-defg-hik"),
        # Teams thread ids are case-sensitive.
        (
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NGE3ZjEy%40thread.v2/0",
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_nge3zjey%40thread.v2/0",
        ),
        (
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NGE3ZjEy%40thread.v2/0",
            "https://gov.teams.microsoft.us/l/meetup-join/19%3ameeting_NGE3ZjEy%40thread.v2/0",
        ),
        (
            "https://teams.microsoft.com/meet/2345678901234?p=AbCd",
            "https://teams.microsoft.com/meet/2345678901234?p=abcd",
        ),
        ("https://acme.webex.com/acme/j.php?MTID=m1", "https://acme.webex.com/acme/j.php?MTID=m2"),
        ("https://acme.webex.com/meet/jane", "https://other.webex.com/meet/jane"),
        ("https://example.com/room?id=1", "https://example.com/room?id=2"),
        ("https://example.com:8443/room", "https://example.com/room"),
    ],
)
def test_links_to_different_meetings_keep_different_keys(a, b):
    assert normalise_meeting_url(a) != normalise_meeting_url(b)


def test_canonical_forms_are_readable():
    zoom = canonical_meeting_url("https://us02web.zoom.us/j/85551234567?uname=x&pwd=abc.1")
    assert re.fullmatch(r"https://zoom\.us/j/85551234567\?pwd-sha256=[0-9a-f]{16}", zoom)
    assert canonical_meeting_url(TEAMS_URL) == (
        "https://teams.microsoft.com/l/meetup-join/19%3Ameeting_NGE3ZjEyZDQtYjM0NS00ZGQ5LWE2YjctZDRlNmI4OTIxMDk4%40thread.v2"
    )
    assert canonical_meeting_url("https://Meet.Google.com/ABC-defg-hij).") == "https://meet.google.com/abc-defg-hij"
    assert canonical_meeting_url("meet.google.com/abc-defg-hij") is None
    assert canonical_meeting_url("https://example.com:99999/x") is None


def test_every_link_found_normalises():
    # Whatever find_meeting_url returns must be usable as a dedup key.
    samples = [
        {"description": OUTLOOK_TEAMS_HTML},
        {"location": "acme.zoom.us/j/85551234567"},
        {"description": 'https://teams.microsoft.com/l/meetup-join/19:m@thread.v2/0?context={"Tid":"x"}'},
    ]
    for fields in samples:
        url = find_meeting_url(**fields)
        assert url is not None
        assert normalise_meeting_url(url) == normalise_meeting_url(normalise_meeting_url(url))


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        ("https://acme.zoom.us/j/85551234567?pwd=abc&uname=Jane", "https://acme.zoom.us/j/85551234567?uname=Jane"),
        ("https://zoom.us/j/85551234567?PWD=abc", "https://zoom.us/j/85551234567"),
        (
            "https://teams.microsoft.com/meet/2345678901234?p=AbCd&anon=true",
            "https://teams.microsoft.com/meet/2345678901234?anon=true",
        ),
        (
            "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fzoom.us%2Fj%2F1%3Fpwd%3Dabc&data=x",
            "https://zoom.us/j/1",
        ),
        ("https://meet.google.com/abc-defg-hij", "https://meet.google.com/abc-defg-hij"),
        ("zoom.us/j/1?pwd=abc", "zoom.us/j/1"),
    ],
)
def test_a_link_is_shown_without_its_passcode(link, shown):
    assert without_passcode(link) == shown
