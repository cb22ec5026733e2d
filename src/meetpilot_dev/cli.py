"""The ``meetpilot`` command.

Each command imports what it runs inside its own function, because every command pays the start-up:
`meetpilot --help` takes 0.157 s so, while importing the stack, demo, chaos, redrive, moto and boto3
up front takes 0.514 s (medians of 7 runs on 2 cores, whole process, `meetpilot --help` against
`python -c 'import meetpilot_dev.demo, meetpilot_dev.chaos, ..., moto.server, boto3'`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

try:
    import typer
    from rich.console import Console
except ImportError:  # pragma: no cover - only without the extra
    sys.stderr.write("meetpilot's command line needs the 'local' extra: pip install 'meetpilot[local]'\n")
    raise SystemExit(2) from None

app = typer.Typer(
    help="meetpilot: calendar-driven meeting bots on AWS serverless. Try 'meetpilot demo'.",
    no_args_is_help=True,
    add_completion=False,
)
meetings_app = typer.Typer(help="Meetings to record.", no_args_is_help=True)
app.add_typer(meetings_app, name="meetings")
calendars_app = typer.Typer(help="Calendars whose meetings get a bot.", no_args_is_help=True)
app.add_typer(calendars_app, name="calendars")
sessions_app = typer.Typer(help="Bot sessions: one bot in one meeting, with its history.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
transcript_app = typer.Typer(help="Stored transcripts.", no_args_is_help=True)
app.add_typer(transcript_app, name="transcript")
api_app = typer.Typer(help="The management HTTP API itself.", no_args_is_help=True)
app.add_typer(api_app, name="api")

# Every command that talks to the management API works against the running 'meetpilot dev' by
# default, or against a deployed stack with --stack (or MEETPILOT_STACK) and your AWS credentials.
Stack = Annotated[
    str | None,
    typer.Option(
        "--stack",
        envvar="MEETPILOT_STACK",
        help="a deployed CloudFormation stack to work on (default: the running 'meetpilot dev')",
    ),
]


def _api(stack: str | None) -> Any:
    """The management API client for the chosen target; exits 2 with the reason when there is none."""
    from meetpilot.errors import MeetpilotError
    from meetpilot_dev.client import ManagementClient

    try:
        return ManagementClient.for_stack(stack) if stack else ManagementClient.for_dev()
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}, or pass --stack NAME for a deployed one")
        raise typer.Exit(2) from None
    except MeetpilotError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _call(action: Any) -> Any:
    """Run one API call; an error answer becomes its message and exit code 2 (your request) or 1."""
    from meetpilot_dev.client import ApiError

    try:
        return action()
    except ApiError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2 if 400 <= exc.status < 500 else 1) from None


def _refresh_token(path: Path | None, from_stdin: bool) -> str:
    """The refresh token from a file or standard input: never a command-line argument, which would
    land in the shell's history and in every process listing."""
    if (path is None) == (not from_stdin):
        console.print("[red]error:[/red] give exactly one of --refresh-token-file PATH or --refresh-token-stdin")
        raise typer.Exit(2)
    try:
        text = sys.stdin.read() if from_stdin else path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]error:[/red] cannot read the refresh token from {path}: {type(exc).__name__}")
        raise typer.Exit(2) from None
    token = text.strip()
    if not token:
        console.print("[red]error:[/red] the refresh token is empty")
        raise typer.Exit(2)
    return token


Provider = Literal["google", "microsoft", "ics"]
TokenFile = Annotated[
    Path | None,
    typer.Option("--refresh-token-file", help="a file holding the user's refresh token (google, microsoft)"),
]
TokenStdin = Annotated[
    bool, typer.Option("--refresh-token-stdin", help="read the user's refresh token from standard input")
]


@calendars_app.command("add")
def calendars_add(
    user: Annotated[str, typer.Option(help="whose calendar it is")],
    provider: Annotated[Provider, typer.Option(help="google, microsoft or ics")] = "ics",
    refresh_token_file: TokenFile = None,
    refresh_token_stdin: TokenStdin = False,
    feed_url: Annotated[str | None, typer.Option("--feed-url", help="ics: the calendar's secret iCal address")] = None,
    ics: Annotated[str | None, typer.Option(help="the same as --provider ics --feed-url URL")] = None,
    calendar_id: Annotated[
        str | None, typer.Option("--calendar-id", help="google, microsoft: the calendar at the provider (primary)")
    ] = None,
    owner_email: Annotated[
        str | None, typer.Option("--owner-email", "--email", help="the owner's email, to honour their declines")
    ] = None,
    label: Annotated[str, typer.Option(help="a name to show")] = "",
    stack: Stack = None,
) -> None:
    """Connect a calendar (POST /v1/calendars): Google or Microsoft 365 with the user's refresh token,
    an ICS feed by its address. Its meetings get bots from its first sync on.

    Example: meetpilot calendars add --provider google --user alice --refresh-token-file alice.token

    An ICS feed: meetpilot calendars add --provider ics --user bob --feed-url https://example.com/bob.ics
    """
    if ics is not None:
        provider, feed_url = "ics", ics
    body: dict[str, Any] = {"provider": provider, "user_id": user, "owner_email": owner_email, "label": label}
    if provider == "ics":
        if refresh_token_file is not None or refresh_token_stdin:
            console.print("[red]error:[/red] an ICS calendar takes --feed-url, not a refresh token")
            raise typer.Exit(2)
        if not feed_url:
            console.print("[red]error:[/red] --feed-url is required for --provider ics")
            raise typer.Exit(2)
        body["feed_url"] = feed_url
    else:
        if feed_url:
            console.print(f"[red]error:[/red] a {provider} calendar takes a refresh token, not --feed-url")
            raise typer.Exit(2)
        body["refresh_token"] = _refresh_token(refresh_token_file, refresh_token_stdin)
        if calendar_id:
            body["calendar_id"] = calendar_id
    api = _api(stack)
    status, calendar = _call(lambda: api.post("/v1/calendars", {k: v for k, v in body.items() if v is not None}))
    state = "registered" if status == 201 else "already registered"
    console.print(f"{state}: {calendar['calendar_id']} ({calendar['provider']}, {calendar['status']})")


@calendars_app.command("show")
def calendars_show(
    calendar_id: Annotated[str, typer.Argument(help="the id 'calendars list' shows")],
    stack: Stack = None,
) -> None:
    """Show one calendar: provider, status, why it is disconnected, last sync and last error.

    Example: meetpilot calendars show google-0123abcd
    """
    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    cal = _call(lambda: api.get(f"/v1/calendars/{quote_segment(calendar_id)}"))
    _print_calendar(cal)


@calendars_app.command("reconnect")
def calendars_reconnect(
    calendar_id: Annotated[str, typer.Argument(help="the id 'calendars list' shows")],
    refresh_token_file: TokenFile = None,
    refresh_token_stdin: TokenStdin = False,
    stack: Stack = None,
) -> None:
    """Give a Google or Microsoft calendar a new refresh token: it is connected again and resynced.

    Example: meetpilot calendars reconnect google-0123abcd --refresh-token-file alice.token
    """
    from meetpilot_dev.client import quote_segment

    token = _refresh_token(refresh_token_file, refresh_token_stdin)
    api = _api(stack)
    cal = _call(lambda: api.patch(f"/v1/calendars/{quote_segment(calendar_id)}", {"refresh_token": token}))
    console.print(f"reconnected: {cal['calendar_id']} ({cal['status']}); a full resync is queued")


def _print_calendar(cal: Mapping[str, Any]) -> None:
    rows = [
        ("calendar", cal["calendar_id"]),
        ("provider", cal.get("provider") or cal.get("kind")),
        ("user", cal["user_id"]),
        ("status", cal.get("status")),
        ("disconnected", cal.get("disconnected_reason")),
        ("provider calendar", cal.get("provider_calendar_id")),
        ("owner", cal.get("owner_email")),
        ("label", cal.get("label")),
        ("last synced", cal.get("last_synced_at") or "not synced yet"),
        ("last full sync", cal.get("last_full_sync_at")),
        ("last error", cal.get("last_error")),
        ("channel expires", cal.get("channel_expires_at")),
    ]
    for name, value in rows:
        if value:
            console.print(f"{name:>17}: {value}")


@calendars_app.command("list")
def calendars_list(
    user: Annotated[str | None, typer.Option(help="only this user's calendars")] = None,
    stack: Stack = None,
) -> None:
    """List the calendars meetpilot watches, with when each was last synced.

    Example: meetpilot calendars list --user alice
    """
    api = _api(stack)
    listed = _call(lambda: api.get("/v1/calendars", params={"user_id": user}))
    for cal in listed["items"]:
        synced = cal.get("last_synced_at") or "not synced yet"
        problem = f"  [red]{cal['last_error']}[/red]" if cal.get("last_error") else ""
        status = cal.get("status", "connected")
        state = "" if status == "connected" else f"  [yellow]{status}[/yellow]"
        console.print(
            f"{cal['calendar_id']}  {cal.get('provider') or cal['kind']}  user={cal['user_id']}  {cal['label']}  "
            f"({synced}){state}{problem}"
        )


@calendars_app.command("remove")
def calendars_remove(
    calendar_id: Annotated[str, typer.Argument(help="the id 'calendars list' shows")],
    stack: Stack = None,
) -> None:
    """Remove a calendar; meetings that only it asked for lose their schedule or bot.

    Example: meetpilot calendars remove ics-0123abcd
    """
    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    with console.status(f"removing {calendar_id} and withdrawing what only it asked for"):
        removal = _call(lambda: api.delete(f"/v1/calendars/{quote_segment(calendar_id)}"))
    details = ", ".join(f"{k} {v}" for k, v in sorted(removal["actions"].items())) or "nothing else to undo"
    console.print(f"removed {calendar_id}: {details}")


@calendars_app.command("events")
def calendars_events(
    calendar_id: Annotated[str, typer.Argument(help="the id 'calendars list' shows")],
    since: Annotated[str | None, typer.Option("--from", help="events starting at or after (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="events starting before (ISO-8601)")] = None,
    stack: Stack = None,
) -> None:
    """Why each event of a calendar gets a bot or not, as the last sync decided.

    Example: meetpilot calendars events ics-0123abcd --from 2026-06-01T00:00:00Z
    """
    from rich.table import Table

    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    path = f"/v1/calendars/{quote_segment(calendar_id)}/events"
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _call(lambda: api.get(path, params={"from": since, "to": until, "cursor": cursor}))
        rows += page["items"]
        if not (cursor := page.get("next_cursor")):
            break
    table = Table(title=f"{calendar_id} ({page['status']}): {len(rows)} events")
    for column in ("start", "event", "title", "bot", "why"):
        table.add_column(column, overflow="fold")
    for row in rows:
        bot = ("[green]yes[/green]" + (f" {row['bot_id']}" if row.get("bot_id") else "")) if row["recorded"] else "no"
        start = (row.get("start") or "all day")[:16].replace("T", " ")
        table.add_row(start, row["event_id"], row["title"], bot, row["reason"])
    console.print(table)


@calendars_app.command("override")
def calendars_override(
    calendar_id: Annotated[str, typer.Argument(help="the id 'calendars list' shows")],
    event_id: Annotated[str, typer.Argument(help="the event id 'calendars events' shows")],
    record: Annotated[bool, typer.Option("--record/--skip", help="record it whatever the rules say, or skip it")],
    series: Annotated[bool, typer.Option("--series", help="every instance of the event's series")] = False,
    bot_name: Annotated[str | None, typer.Option(help="the bot's name for this event")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="take the override back instead")] = False,
    stack: Stack = None,
) -> None:
    """Record or skip one event (or its whole series), whatever the calendar's rules say.

    Example: meetpilot calendars override ics-0123abcd evt-42 --skip
    """
    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    path = f"/v1/calendars/{quote_segment(calendar_id)}/events/{quote_segment(event_id)}/override"
    scope = "series" if series else "occurrence"
    if remove:
        _, answer = _call(lambda: api.request("DELETE", path, params={"scope": scope}))
    else:
        body: dict[str, Any] = {"record": record, "scope": scope}
        if bot_name:
            body["bot"] = {"bot_name": bot_name}
        _, answer = _call(lambda: api.request("PUT", path, body=body))
    for decision in answer["decisions"]:
        console.print(f"{decision['event_id']}: {decision['reason']}")


users_app = typer.Typer(help="Users' own settings.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("bot-settings")
def users_bot_settings(
    user: Annotated[str, typer.Argument(help="the user id calendars and meetings name")],
    bot_name: Annotated[str | None, typer.Option(help="the bot's name in the call")] = None,
    transcript_provider: Annotated[str | None, typer.Option(help="a MeetStream provider key, or none")] = None,
    live: Annotated[bool | None, typer.Option("--live/--no-live", help="live transcripts on or off")] = None,
    show: Annotated[bool, typer.Option("--show", help="only print the stored settings")] = False,
    stack: Stack = None,
) -> None:
    """Set (or show) a user's bot settings, the level under their calendars' and events'.

    Example: meetpilot users bot-settings alice --bot-name "Alice's notetaker"
    """
    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    path = f"/v1/users/{quote_segment(user)}/bot-settings"
    if show:
        answer = _call(lambda: api.get(path))
    else:
        body = {"bot_name": bot_name, "transcript_provider": transcript_provider, "live_transcripts": live}
        _, answer = _call(lambda: api.request("PUT", path, body={k: v for k, v in body.items() if v is not None}))
    settings = {k: v for k, v in answer["bot"].items() if v is not None}
    console.print(f"{answer['user_id']}: {json.dumps(settings) if settings else 'the stack defaults'}")


console = Console()


@app.command()
def demo(
    meetings: Annotated[int, typer.Option(help="how many meetings to run", min=1, max=200)] = 12,
    patience: Annotated[
        float, typer.Option(help="give up after this many seconds in which nothing moved", min=1)
    ] = 60.0,
    out: Annotated[Path, typer.Option(help="folder for the transcripts (.txt, .vtt, .json) and demo.log")] = Path(
        ".demo"
    ),
    live: Annotated[bool, typer.Option(help="show a live table while it runs (on a terminal)")] = True,
    calendars: Annotated[
        bool, typer.Option(help="add four demo calendars (ICS, Google, Microsoft 365) through the management API")
    ] = True,
) -> None:
    """Run a mixed set of meetings through the whole pipeline on the local stack.

    Example: meetpilot demo --meetings 12
    """
    from rich.markup import escape

    from meetpilot_dev.demo import run_demo

    # Bound now: while the demo runs, stdout is the functions' log file (metric lines, JSON logs).
    terminal = Console(file=sys.stdout)
    report = run_demo(meetings, patience=patience, out_dir=out, console=terminal, live=live, calendars=calendars)
    for where in report.in_flight:
        terminal.print(f"still in flight: {where}", soft_wrap=True, markup=False, highlight=False)
    for problem in report.mismatches:
        terminal.print(f"[red]x[/red] {escape(problem)}", soft_wrap=True, highlight=False)
    print(report.summary_line())  # plain print: one line, whatever the terminal width
    for line in report.calendar_lines:
        print(line)
    print(f"transcripts: {(out / 'transcripts').resolve()} ({report.seconds:.0f} s)")
    print(f"log: {(out / 'demo.log').resolve()}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def chaos(
    meetings: Annotated[int, typer.Option(help="how many meetings to run", min=1, max=5000)] = 300,
    seed: Annotated[int, typer.Option(help="seed of every fault draw")] = 7,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds (a hang, not a slow run)")] = 1800.0,
    out: Annotated[Path, typer.Option(help="folder for chaos.log, the functions' own output")] = Path(".chaos"),
) -> None:
    """Run many meetings through the local stack while faults are injected everywhere, then check
    every invariant (one bot per meeting, none lost, right final state, transcripts stored once).

    Example: meetpilot chaos --meetings 300 --seed 7
    """
    from rich.table import Table

    from meetpilot_dev.chaos import run_chaos
    from meetpilot_dev.demo import functions_output_to

    # This command's own console, on the stdout it started with (as the demo's): stdout becomes the
    # functions' log below, and the module's console must not be pinned to a stream that may close.
    terminal = Console(file=sys.stdout)

    def progress(done: int, total: int) -> None:
        terminal.print(f"  {done}/{total} meetings final", end="\r")

    out.mkdir(parents=True, exist_ok=True)
    # The functions log every injected fault they survive; that is the log's business, not the console's.
    with functions_output_to(out / "chaos.log") as log_path:
        report = run_chaos(meetings, seed=seed, timeout=timeout, progress=progress)
    terminal.line()  # the progress line ends with a carriage return, not a newline
    terminal.print(f"log: {log_path.resolve()}", soft_wrap=True, markup=False, highlight=False)
    table = Table(title=f"meetpilot chaos: {meetings} meetings, seed {seed}, {report.seconds:.0f} s")
    for column in ("figure", "value", "check"):
        table.add_column(column)
    for row in report.rows():
        table.add_row(*row)
    terminal.print(table)
    for problem in (report.wrong_final_state + report.lost)[:20]:
        terminal.print(f"[red]x[/red] {problem}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def dev(
    speed: Annotated[float, typer.Option(help="simulator speed: simulated seconds per real second")] = 60.0,
    dashboard_port: Annotated[int, typer.Option(help="port of the local dashboard (0: any free port)")] = 0,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="run without the dashboard")] = False,
) -> None:
    """Run the local stack until Ctrl-C: gateway, AWS emulator, queue pollers, scheduler, simulator,
    and a dashboard of sessions, their timelines and transcripts on 127.0.0.1.

    Example: meetpilot dev --speed 60 --dashboard-port 8765
    """
    from meetpilot_dev.dev import run_dev
    from meetpilot_dev.stack.embedded import StackOptions

    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    run_dev(
        stop,
        options=StackOptions(speed=speed, quiet_logs=True),
        # Unwrapped whatever the width: an `export` line broken at 80 columns pastes wrong.
        say=partial(console.print, soft_wrap=True),
        dashboard_port=None if no_dashboard else dashboard_port,
    )


def _when(start: str | None, in_seconds: int | None) -> datetime:
    from meetpilot.domain.clock import parse_iso

    try:
        return parse_iso(start) if start else datetime.now(UTC) + timedelta(seconds=in_seconds or 60)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _meeting_ident(meeting: str, start: str | None) -> str:
    """The meeting id the API takes, from an id as given or from a link with its start time."""
    from meetpilot.domain.meeting import meeting_key
    from meetpilot.errors import InvalidInput
    from meetpilot.handlers.api.models import meeting_id

    if "://" not in meeting:
        return meeting
    if not start:
        console.print("[red]error:[/red] with a meeting link, give --start too (or pass the meeting id)")
        raise typer.Exit(2)
    try:
        return meeting_id(meeting_key(meeting, _when(start, None)))
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@meetings_app.command("add")
def meetings_add(
    url: Annotated[str, typer.Argument(help="the meeting link (Zoom, Meet, Teams, Webex)")],
    start: Annotated[str | None, typer.Option(help="start time, ISO-8601 with a zone")] = None,
    in_seconds: Annotated[int | None, typer.Option("--in", help="start this many seconds from now")] = None,
    end: Annotated[str | None, typer.Option(help="end time, ISO-8601 with a zone (default: an hour on)")] = None,
    title: Annotated[str, typer.Option(help="meeting title")] = "",
    user: Annotated[str | None, typer.Option(help="who asked for the recording")] = None,
    stack: Stack = None,
) -> None:
    """Ask for a bot in a meeting; it joins at the start (dispatched a few minutes before).

    Example: meetpilot meetings add https://meet.google.com/abc-defg-hij --in 60 --user alice
    """
    from meetpilot.domain.clock import to_iso

    when = _when(start, in_seconds)
    body: dict[str, Any] = {"meeting_url": url, "start": to_iso(when), "title": title, "user_id": user}
    if end:
        body["end"] = to_iso(_when(end, None))
    api = _api(stack)
    status, meeting = _call(lambda: api.post("/v1/meetings", body))
    state = "queued" if status == 201 else "already known, queued again"
    console.print(f"{state} {meeting['meeting_key']}")
    console.print(f"  meeting id: {meeting['meeting_id']}  (meetpilot meetings cancel {meeting['meeting_id']})")


@meetings_app.command("cancel")
def meetings_cancel(
    meeting: Annotated[str, typer.Argument(help="the meeting id 'meetings add' printed, or the meeting link")],
    start: Annotated[str | None, typer.Option(help="with a link: its start time, ISO-8601 with a zone")] = None,
    stack: Stack = None,
) -> None:
    """Cancel a meeting you asked for: its schedule goes, a scheduled bot is cancelled, a bot in the
    call is removed. Meetings that calendar events still want keep their bot.

    Example: meetpilot meetings cancel https://meet.google.com/abc-defg-hij --start 2026-06-01T15:00:00Z
    """
    ident = _meeting_ident(meeting, start)
    api = _api(stack)
    with console.status("cancelling the meeting and withdrawing its bot"):
        _, done = _call(lambda: api.post(f"/v1/meetings/{ident}/cancel"))
    console.print(f"{done['result'].replace('_', ' ')}: {done['meeting_key']}")


# --- sessions ---------------------------------------------------------------------------------


_STATUS_STYLE = {
    "done": "green",
    "stopped": "cyan",
    "recording": "bold magenta",
    "in_meeting": "magenta",
    "dispatch_failed": "red",
}


def _session_filters(
    status: str | None, user: str | None, event: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    return {"status": status, "user_id": user, "calendar_event_id": event, "from": since, "to": until}


def _sessions_table(rows: list[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("meeting start", "bot id", "status", "outcome", "meeting"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = _STATUS_STYLE.get(row["status"], "")
        outcome = row.get("outcome") or ""
        if row.get("needs_review"):
            outcome = f"[red]{outcome} (review)[/red]"
        table.add_row(
            (row.get("meeting_start") or "")[:16].replace("T", " "),
            row.get("bot_id") or "-",
            f"[{style}]{row['status']}[/{style}]" if style else row["status"],
            outcome,
            row["meeting_key"].rsplit("|", 1)[0],
        )
    return table


StatusFilter = Annotated[str | None, typer.Option(help="only this status (e.g. recording, done, stopped)")]
UserFilter = Annotated[str | None, typer.Option("--user", help="only this user's meetings")]
EventFilter = Annotated[str | None, typer.Option("--calendar-event", help="<calendar id>#<event id>")]
SinceFilter = Annotated[str | None, typer.Option("--from", help="meetings starting at or after (ISO-8601)")]
UntilFilter = Annotated[str | None, typer.Option("--to", help="meetings starting at or before (ISO-8601)")]


@sessions_app.command("list")
def sessions_list(
    status: StatusFilter = None,
    user: UserFilter = None,
    calendar_event: EventFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="rows per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="continue a listing where the last page stopped")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="follow every page")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines instead of a table")] = False,
    stack: Stack = None,
) -> None:
    """List bot sessions, newest meeting first: by status, user, calendar event or date range.

    Example: meetpilot sessions list --status done --from 2026-06-01T00:00:00Z
    """
    api = _api(stack)
    params = _session_filters(status, user, calendar_event, since, until) | {"limit": limit}
    rows: list[dict[str, Any]] = []
    with console.status("reading sessions") as progress:
        while True:
            page = _call(partial(api.get, "/v1/sessions", params=params | {"cursor": cursor}))
            rows.extend(page["items"])
            cursor = page.get("next_cursor")
            progress.update(f"reading sessions ({len(rows)} so far)")
            if not (all_pages and cursor):
                break
    if as_json:
        for row in rows:
            print(json.dumps(row))
    else:
        console.print(_sessions_table(rows, f"{len(rows)} session(s)"))
    if cursor:
        console.print(f"more: meetpilot sessions list --cursor {cursor} (same filters), or --all")


@sessions_app.command("show")
def sessions_show(
    bot_id: Annotated[str, typer.Argument(help="the bot id (or the session id)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the session as JSON")] = False,
    stack: Stack = None,
) -> None:
    """Show one session: status, outcome, transcript figures and its full event history.

    Example: meetpilot sessions show 6667fd0c-0165-471a-a880-06a1180be377
    """
    from rich.table import Table

    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    session = _call(lambda: api.get(f"/v1/sessions/{quote_segment(bot_id)}"))
    if as_json:
        print(json.dumps(session, indent=2))
        return
    meeting = session.get("meeting") or {}
    console.print(f"[bold]session {session['session_id']}[/bold]  bot {session.get('bot_id') or '-'}")
    console.print(f"  meeting   : {meeting.get('title') or ''} {meeting.get('meeting_url') or session['meeting_key']}")
    console.print(f"  starts    : {meeting.get('start') or '-'}")
    console.print(f"  status    : {session['status']}  (stop reason {session.get('stop_reason') or '-'})")
    reason = f" - {session['outcome_reason']}" if session.get("outcome_reason") else ""
    console.print(f"  outcome   : {session.get('outcome') or 'not yet'}{reason}")
    console.print(f"  joined    : {_punctuality_line(session)}")
    figures = session.get("transcript") or {}
    if figures.get("words") is not None:
        console.print(
            f"  transcript: {figures['words']} words, {figures.get('turns')} turns, "
            f"{figures.get('speaker_count')} speakers (meetpilot transcript get {session.get('bot_id')})"
        )
    else:
        console.print(f"  transcript: {session['transcript_state']}")
    table = Table(title="history")
    for column in ("received", "event", "status", "message"):
        table.add_column(column, overflow="fold")
    for entry in session.get("history") or []:
        table.add_row(
            str(entry.get("received_at") or "")[11:19],
            str(entry.get("name") or ""),
            str(entry.get("status") or ""),
            str(entry.get("message") or ""),
        )
    console.print(table)


def _punctuality_line(session: dict[str, Any]) -> str:
    """How late the bot reached the meeting and how long it waited, as the session view has them."""
    late = session.get("join_lateness_seconds")
    wait = session.get("admission_wait_seconds")
    platform = session.get("platform") or "?"
    if late is None:
        return f"not known yet ({platform})"
    when = f"{late:.1f} s late" if late >= 0 else f"{-late:.1f} s early"
    admitted = "not admitted yet" if wait is None else f"admitted after {wait:.1f} s"
    return f"{when} on {platform}, {admitted}"


@sessions_app.command("watch")
def sessions_watch(
    status: StatusFilter = None,
    user: UserFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    interval: Annotated[float, typer.Option(min=0.2, help="seconds between refreshes")] = 2.0,
    count: Annotated[int | None, typer.Option(min=1, help="stop after this many refreshes (default: Ctrl-C)")] = None,
    stack: Stack = None,
) -> None:
    """A live table of sessions that refreshes until Ctrl-C.

    Example: meetpilot sessions watch --from 2026-06-01T00:00:00Z --interval 2
    """
    import time

    from rich.live import Live

    api = _api(stack)
    params = _session_filters(status, user, None, since, until) | {"limit": 50}
    refreshes = 0

    def table() -> Any:
        page = _call(lambda: api.get("/v1/sessions", params=params))
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        return _sessions_table(page["items"], f"meetpilot sessions, {stamp} UTC (Ctrl-C stops)")

    try:
        with Live(table(), console=console, refresh_per_second=4) as live:
            refreshes = 1
            while count is None or refreshes < count:
                time.sleep(interval)
                live.update(table())
                refreshes += 1
    except KeyboardInterrupt:
        pass


# --- transcripts ------------------------------------------------------------------------------


class TranscriptFormat(StrEnum):
    TXT = "txt"
    VTT = "vtt"
    JSON = "json"


@transcript_app.command("get")
def transcript_get(
    bot_id: Annotated[str, typer.Argument(help="the bot id (or the session id)")],
    fmt: Annotated[TranscriptFormat, typer.Option("--format", help="txt, vtt or json")] = TranscriptFormat.TXT,
    out: Annotated[
        Path | None, typer.Option(help="write it to this file ('-' prints it; default: <bot id>.<format>)")
    ] = None,
    stack: Stack = None,
) -> None:
    """Download a stored transcript through a short-lived link.

    Example: meetpilot transcript get 6667fd0c-0165-471a-a880-06a1180be377 --format vtt
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from meetpilot_dev.client import quote_segment

    api = _api(stack)
    link = _call(lambda: api.get(f"/v1/transcripts/{quote_segment(bot_id)}", params={"format": fmt.value}))
    if out is not None and str(out) == "-":
        _call(lambda: api.download(link["url"], sys.stdout.buffer))
        sys.stdout.flush()
        return
    target = out or Path(f"{link.get('bot_id') or bot_id}.{fmt.value}")
    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console) as bar:
        task = bar.add_task(f"downloading {target.name}", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        with target.open("wb") as sink:
            size = _call(lambda: api.download(link["url"], sink, progress=advance))
    console.print(f"saved {target} ({size} bytes)")


# --- the API document -------------------------------------------------------------------------


@api_app.command("openapi")
def api_openapi() -> None:
    """Print the management API's OpenAPI document (docs/openapi.json is this output).

    Example: meetpilot api openapi > docs/openapi.json
    """
    from meetpilot_dev.openapi import openapi_json

    sys.stdout.write(openapi_json())


@app.command()
def reconcile(stack: Stack = None) -> None:
    """Run one reconciler round now: missed dispatches, stuck sessions, transcripts never fetched,
    calendar channels about to expire. Prints what it did.

    Example: meetpilot reconcile
    """
    if stack:
        summary = _invoke_stack_function(stack, "ReconcileFunction")
    else:
        from meetpilot.composition import using_container
        from meetpilot.handlers.reconcile import handler
        from meetpilot_dev.dev import container_from_state, read_state
        from meetpilot_dev.stack.invoke import LambdaContext

        try:
            dev = container_from_state(read_state())
        except FileNotFoundError as exc:
            console.print(f"[red]error:[/red] {exc}, or pass --stack NAME for a deployed one")
            raise typer.Exit(2) from None
        with console.status("reconciling"), using_container(dev):
            summary = handler({}, LambdaContext("ReconcileFunction"))
    for name, value in sorted((summary or {}).items()):
        console.print(f"  {name}: {value}")


def _invoke_stack_function(stack: str, logical_id: str) -> Any:
    """Invoke one of a deployed stack's functions synchronously, with the caller's AWS credentials."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session()
    try:
        name = session.client("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)[
            "StackResourceDetail"
        ]["PhysicalResourceId"]
        with console.status(f"running {logical_id} in {stack}"):
            answer = session.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    except (ClientError, BotoCoreError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    payload = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        console.print(f"[red]error:[/red] {logical_id} failed: {payload.get('errorMessage') if payload else ''}")
        raise typer.Exit(1)
    return payload


@app.command()
def forget(
    bot_id: Annotated[str | None, typer.Argument(help="a bot id, as 'sessions list' shows it")] = None,
    meeting: Annotated[
        str | None, typer.Option(help="instead: a meeting, by the id 'meetings add' printed or its link")
    ] = None,
    start: Annotated[str | None, typer.Option(help="with a meeting link: its start time, ISO-8601 with a zone")] = None,
    user: Annotated[str | None, typer.Option(help="instead: a user, with their calendars and meetings")] = None,
    stack: Stack = None,
) -> None:
    """Erase everything about one bot, meeting or user: sessions and their history, live segments,
    meetings only they had, index entries, calendar links, every S3 version of their transcripts and
    the provider's copy. A meeting someone else also has only loses the forgotten user. Reports each
    step; exits 1 when something is left (running it again finishes the job).

    Example: meetpilot forget 6667fd0c-0165-471a-a880-06a1180be377   (or --meeting ID, or --user alice)
    """

    if sum(x is not None for x in (bot_id, meeting, user)) != 1:
        console.print("[red]error:[/red] give exactly one of a bot id, --meeting or --user")
        raise typer.Exit(2)
    body: dict[str, str]
    if meeting is not None:
        ident = _meeting_ident(meeting, start)
        body = {"meeting_id": ident}
    elif user is not None:
        body = {"user_id": user}
    else:
        assert bot_id is not None
        body = {"bot_id": bot_id}
    api = _api(stack)
    with console.status("forgetting"):
        _, report = _call(lambda: api.post("/v1/forget", body))
    console.print(f"{report['target']} {report['id']}")
    console.print(
        f"  DynamoDB items deleted: {report['items_deleted']} (sessions {report['sessions_deleted']}, "
        f"meetings {report['meetings_deleted']}, calendars {report['calendars_removed']})"
    )
    console.print(
        f"  transcripts in S3: {report['transcript_versions_deleted']} object versions and delete markers deleted"
    )
    if report["meetings_kept_for_others"]:
        console.print(f"  meetings others also have: {report['meetings_kept_for_others']} (only this user taken off)")
    if report["bots_withdrawn"]:
        console.print(f"  bots taken out of their meetings first: {report['bots_withdrawn']}")
    for bot, said in sorted(report["provider"].items()):
        console.print(f"  provider's copy of bot {bot}: {said}")
    for why in report["unfinished"]:
        console.print(f"  [red]not finished:[/red] {why}")
    raise typer.Exit(0 if report["complete"] else 1)


class RedriveQueue(StrEnum):
    """The queues with a dead-letter queue, named as on the command line."""

    DISPATCH = "dispatch"
    BOT_EVENTS = "bot-events"
    TRANSCRIPT = "transcript"

    @property
    def url_variable(self) -> str:
        """The environment variable (as the functions get it) holding the queue's URL."""
        return f"{self.name}_QUEUE_URL"

    @property
    def output_key(self) -> str:
        """The stack output holding the queue's URL."""
        return "".join(part.capitalize() for part in self.name.split("_")) + "QueueUrl"


@app.command()
def redrive(
    queue: Annotated[RedriveQueue, typer.Argument(help="the queue whose dead letters go back to it")],
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="move at most this many")] = None,
    queue_url: Annotated[
        str | None,
        typer.Option(
            help="the queue's URL on AWS (the stack's DispatchQueueUrl, BotEventsQueueUrl or TranscriptQueueUrl "
            "output), used with your usual AWS credentials; default: the running 'meetpilot dev'"
        ),
    ] = None,
    stack: Stack = None,
) -> None:
    """Move the messages in a queue's dead-letter queue back to the queue, once the cause is fixed.

    Each message goes back with its body and attributes and leaves the DLQ only once that send succeeded.

    Example: meetpilot redrive bot-events   (or: meetpilot redrive dispatch --stack meetpilot)
    """
    import boto3

    from meetpilot_dev.dev_state import read_state
    from meetpilot_dev.redrive import RedriveError, dead_letter_queue_url, queue_name
    from meetpilot_dev.redrive import redrive as move_back

    if stack and not queue_url:
        from meetpilot.errors import MeetpilotError
        from meetpilot_dev.client import stack_outputs

        try:
            queue_url = stack_outputs(stack).get(queue.output_key)
        except MeetpilotError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        if not queue_url:
            console.print(f"[red]error:[/red] stack {stack} has no {queue.output_key} output")
            raise typer.Exit(2)
    if queue_url:
        sqs = boto3.client("sqs")
        target = queue_url
    else:
        try:
            env = read_state()["environment"]
        except FileNotFoundError as exc:
            console.print(f"[red]error:[/red] {exc}, or pass --queue-url for a deployed stack")
            raise typer.Exit(2) from None
        sqs = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        ).client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
        target = env[queue.url_variable]
    try:
        dlq = dead_letter_queue_url(sqs, target)
        moved = move_back(sqs, dlq, target, max_messages=max_messages)
    except RedriveError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(f"moved {moved} message(s) from {queue_name(dlq)} back to {queue_name(target)}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def simulator(ctx: typer.Context) -> None:
    """Run the MeetStream simulator alone on 127.0.0.1 (options: --port, --speed, --api-key, ...).

    Example: meetpilot simulator --port 8765 --speed 60
    """
    from meetpilot_dev.simulator.cli import main as simulator_main

    raise typer.Exit(simulator_main(list(ctx.args)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
