"""The dev dashboard in headless Chromium, driven by Playwright, over the real management API.

Three meetings go through the whole local stack (schedules, gateway, pollers, simulator): one ends
with a stored transcript, one with a bot nobody admitted, one with a bot a host denied. The page
must show exactly those rows with their outcomes, filter them, show a session's timeline and its
transcript, and a screenshot must show each row's outcome badge in its colour. Then two calendars:
the calendars view must show each one's status and, for one, the decision and its reason for every
event (recorded, no link, opted out), and a disconnected calendar's reason.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from meetpilot.app.reconcile import reconcile
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.punctuality import percentile, platform_label
from meetpilot_dev.dashboard import DashboardServer
from meetpilot_dev.demo import ProgressWatch, demo_options
from meetpilot_dev.dev import dev_api_client
from meetpilot_dev.simulator import Scenario
from meetpilot_dev.stack.embedded import LocalStack

CHROMIUM = os.environ.get("MEETPILOT_CHROMIUM", "/usr/bin/chromium")
# Headless and quiet: no sandbox (CI runs as root), and no background calls to the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The page's badge colours: a stored transcript, and an outcome without one that needs no review.
BADGE_RGB = {"ok": (0x1F, 0x8F, 0x4E), "quiet": (0x7A, 0x81, 0x94)}

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
ROWS = "#sessions tbody tr[data-session]"
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM),
    reason="Chromium is not installed (make test installs Debian's chromium)",
)

MEETINGS = (
    ("https://meet.google.com/das-hboa-rdok", Scenario.NORMAL, "transcript_stored"),
    ("https://meet.google.com/das-hboa-rdna", Scenario.NOT_ADMITTED, "not_admitted"),
    ("https://meet.google.com/das-hboa-rdde", Scenario.DENIED, "denied"),
)


@pytest.fixture(scope="module")
def finished_stack() -> Iterator[tuple[LocalStack, dict[str, str]]]:
    with LocalStack(demo_options()) as stack:
        start = stack.clock.now() + timedelta(seconds=6)
        keys = {}
        for url, scenario, outcome in MEETINGS:
            stack.simulator.set_scenario(url, scenario)
            keys[stack.submit_meeting(url, start, title=f"dashboard {outcome}", user_id="ada")] = outcome
        # Waits while anything moves (a status, an outcome, a queue count), however slow the machine.
        watch = ProgressWatch(60.0)
        reconciled = False
        while True:
            sessions = [stack.session_for(k) for k in keys]
            counts = tuple(stack.queue_counts().items())
            if all(s is not None and s.outcome is not None for s in sessions) and not any(c.total for _, c in counts):
                break
            # An outcome can come before every delivery is applied (one that lost a race on the
            # session comes back from SQS a little later): wait until nothing is in flight too.
            look = (tuple((s.status, s.outcome) if s else None for s in sessions), counts)
            if not watch.moving(look, job_queued=any(c.total for _, c in counts)):
                if reconciled:
                    break
                # Stuck with nothing queued: a delivery was lost (MeetStream does not retry, and a
                # busy machine can drop one). Let the reconciler's half hour pass, as on AWS.
                reconciled = True
                watch = ProgressWatch(60.0)
                reconcile(
                    repo=stack.container.repository,
                    provider=stack.container.provider,
                    dispatch_queue=stack.container.dispatch_queue,
                    transcript_queue=stack.container.transcript_queue,
                    clock=FixedClock(stack.clock.now() + timedelta(minutes=40)),
                )
            time.sleep(0.2)
        sessions = {k: stack.session_for(k) for k in keys}
        looks = {k: (s.status.value, s.transcript_state.value) for k, s in sessions.items() if s and s.outcome is None}
        assert not looks, f"sessions without an outcome: {looks}"
        assert {s.outcome.value for s in sessions.values()} == set(keys.values())
        yield stack, {sessions[k].session_id: outcome for k, outcome in keys.items()}


@pytest.fixture(scope="module")
def dashboard(finished_stack: tuple[LocalStack, dict[str, str]]) -> Iterator[DashboardServer]:
    stack, _ = finished_stack
    with DashboardServer(dev_api_client(stack)) as server:
        yield server
        server.api.close()


@pytest.fixture(scope="module")
def page(dashboard: DashboardServer) -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.goto(dashboard.url)
        tab.wait_for_selector("#sessions tbody tr[data-session]")
        yield tab
        browser.close()


def _rows(page) -> dict[str, str]:
    return {
        row.get_attribute("data-session"): row.get_attribute("data-outcome")
        for row in page.locator("#sessions tbody tr[data-session]").all()
    }


def test_dashboard_lists_every_session_with_its_outcome(page, finished_stack):
    _, expected = finished_stack
    assert _rows(page) == expected
    assert "3 sessions · 1 transcripts · 0 need review" in page.inner_text("#summary")


def test_a_screenshot_shows_each_rows_outcome_badge_in_its_colour(page, finished_stack, tmp_path):
    from PIL import Image

    _, expected = finished_stack
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    shot.save(tmp_path / "dashboard.png")
    for session_id, outcome in expected.items():
        badge = page.locator(f'tr[data-session="{session_id}"] .badge')
        box = badge.bounding_box()
        assert box is not None and box["width"] > 20
        # The badge's middle, away from its text: sample a strip along its left edge.
        x, y = int(box["x"] + 3), int(box["y"] + box["height"] / 2)
        pixel = shot.getpixel((x, y))
        want = BADGE_RGB["ok" if outcome == "transcript_stored" else "quiet"]
        assert max(abs(a - b) for a, b in zip(pixel, want, strict=True)) <= 12, (outcome, pixel)
        assert badge.inner_text() == outcome


def test_the_punctuality_panel_shows_p50_and_p95_by_platform_from_the_sessions(page, finished_stack):
    stack, expected = finished_stack
    repo = stack.container.repository
    sessions = [repo.get_session(session_id) for session_id in expected]
    lateness = [s.join_lateness_ms / 1000 for s in sessions if s.join_lateness_ms is not None]
    waits = [s.admission_wait_ms / 1000 for s in sessions if s.admission_wait_ms is not None]
    # All three bots reached the waiting room; only the one a host let in has an admission wait.
    assert len(lateness) == 3 and len(waits) == 1
    # The test's links are not real Meet codes (links.py says "Other"): one platform either way.
    (platform,) = {platform_label(s.meeting_key) for s in sessions}
    row = page.locator(f'#punctuality-table tr[data-platform="{platform}"]')
    expect(row).to_have_count(1)
    expect(page.locator("#punctuality-table tbody tr")).to_have_count(1)
    cells = row.locator("td")
    assert [cells.nth(i).inner_text() for i in (1, 4)] == ["3", "1"]
    for figure, values, q in (
        ("lateness-p50", lateness, 50),
        ("lateness-p95", lateness, 95),
        ("wait-p50", waits, 50),
        ("wait-p95", waits, 95),
    ):
        shown = float(row.locator(f'td[data-figure="{figure}"]').inner_text())
        assert abs(shown - percentile(values, q)) <= 0.051, (figure, shown, values)
    expect(page.locator("#punctuality-message")).to_have_text("")


def test_filters_narrow_the_rows(page, finished_stack):
    _, expected = finished_stack
    page.check("#f-review")  # none of them needs a person's review: not admitted and denied are answers
    expect(page.locator(ROWS)).to_have_count(0)
    page.uncheck("#f-review")
    page.fill("#f-search", "rd")
    expect(page.locator(ROWS)).to_have_count(3)
    page.fill("#f-search", "rdok")
    expect(page.locator(ROWS)).to_have_count(1)
    assert list(_rows(page).values()) == ["transcript_stored"]
    page.fill("#f-search", "")
    page.select_option("#f-status", "pending")  # a server-side filter: no session is pending any more
    expect(page.locator(ROWS)).to_have_count(0)
    assert "no sessions match" in page.inner_text("#list-message")
    page.select_option("#f-status", "")
    expect(page.locator(ROWS)).to_have_count(3)
    assert _rows(page) == expected


def test_a_session_shows_its_timeline_and_its_transcript(page, finished_stack):
    stack, expected = finished_stack
    stored = next(s for s, outcome in expected.items() if outcome == "transcript_stored")
    page.click(f'tr[data-session="{stored}"]')
    page.wait_for_selector("#detail ol.timeline li")
    timeline = page.inner_text("#detail ol.timeline")
    for step in ("bot.joining", "bot.inmeeting", "bot.stopped", "bot.done"):
        assert step in timeline, (step, timeline)
    expect(page.locator("#viewer")).to_have_attribute("data-format", "txt")
    session = stack.container.repository.get_session(stored)
    body = (
        stack.container.client("s3")
        .get_object(Bucket=stack.container.settings.transcript_bucket, Key=session.transcript["keys"]["txt"])["Body"]
        .read()
    )
    assert page.inner_text("#viewer").strip() == body.decode().strip()
    page.click('#detail button[data-format="vtt"]')
    expect(page.locator("#viewer")).to_have_attribute("data-format", "vtt")
    assert page.inner_text("#viewer").startswith("WEBVTT")

    flagged = next(s for s, outcome in expected.items() if outcome == "denied")
    page.click(f'tr[data-session="{flagged}"]')
    page.wait_for_selector("#detail .error")
    assert "refused" in page.inner_text("#detail .error")
    assert "no transcript stored" in page.inner_text("#detail")


def test_the_dashboard_is_read_only_and_answers_only_its_loopback_name(dashboard):
    assert httpx.post(dashboard.url + "api/sessions").status_code == 405
    other_host = httpx.get(dashboard.url + "api/sessions", headers={"Host": "attacker.example"})
    assert other_host.status_code == 403
    missing = httpx.get(dashboard.url + "api/sessions/no-such-session")
    assert missing.status_code == 404 and "no session or bot with that id" in missing.json()["message"]
    bad_format = httpx.get(dashboard.url + "api/transcripts/x?format=pdf")
    assert bad_format.status_code == 422


def _policy(header: str) -> dict[str, list[str]]:
    directives = [d.split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def test_the_csp_allows_no_inline_script_and_no_framing(dashboard):
    for path, kind in (("", "text/html"), ("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        answer = httpx.get(dashboard.url + path)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        policy = _policy(answer.headers["content-security-policy"])
        assert policy["script-src"] == ["'self'"] and policy["default-src"] == ["'none'"]
        assert not any("unsafe" in source for sources in policy.values() for source in sources)
        assert policy["frame-ancestors"] == ["'none'"] and answer.headers["x-frame-options"] == "DENY"
    page = httpx.get(dashboard.url).text
    assert "<script>" not in page and "<style>" not in page and " onsubmit=" not in page


def test_an_injected_inline_script_does_not_run(page, dashboard):
    tab = page.context.browser.new_page()  # a tab of its own, to hear its console from the first line
    try:
        refused: list[str] = []
        tab.on("console", lambda message: refused.append(message.text) if "Content Security" in message.text else None)
        tab.goto(dashboard.url)
        tab.wait_for_selector(ROWS)  # the page's own script runs: it listed the sessions
        assert refused == []
        ran = tab.evaluate(
            """() => {
                const injected = document.createElement("script");
                injected.textContent = "window.injectedRan = true";
                document.body.appendChild(injected);
                return window.injectedRan === true;
            }"""
        )
        assert ran is False
        tab.wait_for_timeout(0)  # let the console event of the refusal arrive
        assert any("script" in text for text in refused), refused
    finally:
        tab.close()


# --- the calendars view (after the session tests: its recorded event adds a meeting of its own) ---

CALENDAR_FEED = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//meetpilot tests//dashboard//EN\r
BEGIN:VEVENT\r
UID:dash-board-review\r
DTSTAMP:{now}\r
DTSTART:{later}\r
DTEND:{later_end}\r
SUMMARY:Board review\r
LOCATION:https://meet.google.com/das-hboa-rdc\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:dash-no-link\r
DTSTAMP:{now}\r
DTSTART:{later}\r
DTEND:{later_end}\r
SUMMARY:Lunch walk\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:dash-opted-out\r
DTSTAMP:{now}\r
DTSTART:{later}\r
DTEND:{later_end}\r
SUMMARY:Offsite planning [no bot]\r
LOCATION:https://meet.google.com/das-hboa-rdn\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _stamp(moment) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


@pytest.fixture(scope="module")
def calendars(finished_stack, page, dashboard) -> dict[str, str]:
    """Two ICS calendars through the API: one synced with three events, one whose grant 'stopped working'."""
    from meetpilot_dev.fakes.feeds import FeedServer

    stack, _ = finished_stack
    repo = stack.container.repository
    now = stack.clock.now()
    later = now + timedelta(days=2)
    feeds = FeedServer()
    feeds.start()
    try:
        text = CALENDAR_FEED.format(now=_stamp(now), later=_stamp(later), later_end=_stamp(later + timedelta(hours=1)))
        _, synced = dashboard.api.post(
            "/v1/calendars",
            {"provider": "ics", "feed_url": feeds.publish("dash", text), "user_id": "ada", "label": "ada's work"},
        )
        _, dropped = dashboard.api.post(
            "/v1/calendars",
            {"provider": "ics", "feed_url": feeds.publish("gone", text), "user_id": "ben", "label": "ben's old"},
        )
        ids = {"synced": synced["calendar_id"], "dropped": dropped["calendar_id"]}
        deadline = time.monotonic() + 180
        while True:
            calendars = [repo.get_calendar(i) for i in ids.values()]
            if all(c is not None and c.last_synced_at is not None for c in calendars):
                break
            assert time.monotonic() < deadline, "the calendars were never synced"
            time.sleep(0.2)
        # Stands in for a revoked grant: the sync marks a calendar so, with its reason.
        assert repo.mark_calendar_disconnected(
            ids["dropped"], reason="the provider refused the grant; reconnect the calendar", now=stack.clock.now()
        )
        yield ids
    finally:
        feeds.stop()


def test_the_calendars_view_shows_each_calendar_and_why_each_event_gets_a_bot_or_not(page, calendars):
    page.click("#tab-calendars")
    expect(page.locator("#sessions-view")).to_be_hidden()
    synced = page.locator(f'#calendars tr[data-calendar="{calendars["synced"]}"]')
    dropped = page.locator(f'#calendars tr[data-calendar="{calendars["dropped"]}"]')
    expect(synced).to_have_attribute("data-status", "connected")
    expect(dropped).to_have_attribute("data-status", "disconnected")
    assert "ics" in synced.inner_text() and "ada's work" in synced.inner_text()

    synced.click()
    page.wait_for_selector("#decisions tbody tr[data-event]")
    rows = {
        row.locator("td").nth(1).inner_text(): (
            row.get_attribute("data-recorded"),
            row.locator("td.reason").inner_text(),
        )
        for row in page.locator("#decisions tbody tr[data-event]").all()
    }
    assert rows["Board review"][0] == "true", rows
    assert rows["Lunch walk"] == ("false", "no meeting link"), rows
    assert rows["Offsite planning [no bot]"][0] == "false" and "opted out" in rows["Offsite planning [no bot]"][1]

    dropped.click()
    expect(page.locator("#calendar-detail .error")).to_contain_text("refused the grant")
    expect(page.locator("#calendar-detail")).to_contain_text("disconnected")
    page.click("#tab-sessions")
    expect(page.locator("#sessions-view")).to_be_visible()


def test_the_dashboard_forwards_only_the_calendar_routes_it_knows(dashboard, calendars):
    listed = httpx.get(dashboard.url + "api/calendars").json()
    assert {c["calendar_id"] for c in listed["items"]} >= set(calendars.values())
    assert not any("feed_url" in c or "refresh_token" in c for c in listed["items"])
    missing = httpx.get(dashboard.url + "api/calendars/no-such-calendar/events")
    assert missing.status_code == 404
    bad = httpx.get(dashboard.url + f"api/calendars/{calendars['synced']}/events?from=yesterday")
    assert bad.status_code == 422
