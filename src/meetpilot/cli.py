"""The ``meetpilot`` command."""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

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


def _dev_container() -> Any:
    from meetpilot.local.dev import container_from_state, read_state

    try:
        return container_from_state(read_state())
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@calendars_app.command("add")
def calendars_add(
    ics: Annotated[str, typer.Option(help="the calendar's secret iCal (ICS) address")],
    user: Annotated[str, typer.Option(help="whose calendar it is")],
    email: Annotated[str | None, typer.Option(help="the owner's email, to honour their declines")] = None,
    label: Annotated[str, typer.Option(help="a name to show")] = "",
) -> None:
    """Register an ICS feed with the running local stack; its meetings get bots.

    Example: meetpilot calendars add --ics https://example.com/alice.ics --user alice
    """
    from meetpilot.app.calendars import IcsRegistration, add_ics_calendar
    from meetpilot.errors import InvalidInput

    c = _dev_container()
    try:
        done = add_ics_calendar(
            IcsRegistration(user_id=user, feed_url=ics, owner_email=email, label=label),
            repo=c.repository,
            sync_queue=c.calendar_sync_queue,
            clock=c.clock,
        )
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    state = "registered" if done.created else "already registered"
    console.print(f"{state}: {done.calendar.calendar_id}")


@calendars_app.command("list")
def calendars_list(
    user: Annotated[str | None, typer.Option(help="only this user's calendars")] = None,
) -> None:
    """List the calendars the running local stack watches.

    Example: meetpilot calendars list --user alice
    """
    from meetpilot.app.calendars import list_calendars

    c = _dev_container()
    for cal in list_calendars(repo=c.repository, user_id=user):
        console.print(f"{cal.calendar_id}  {cal.kind.value}  user={cal.user_id}  {cal.label}")


@calendars_app.command("remove")
def calendars_remove(
    calendar_id: Annotated[str, typer.Argument(help="the id 'calendars list' shows")],
) -> None:
    """Remove a calendar; meetings that only it asked for lose their schedule or bot.

    Example: meetpilot calendars remove cal-0123abcd
    """
    from meetpilot.app.calendars import remove_calendar
    from meetpilot.errors import NotFound

    c = _dev_container()
    try:
        removal = remove_calendar(calendar_id, deps=c.calendar_sync_deps, google=lambda: c.google_calendars)
    except NotFound as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    details = ", ".join(f"{k} {v}" for k, v in sorted(removal.actions.items())) or "nothing else to undo"
    console.print(f"removed {calendar_id}: {details}")


console = Console()


@app.command()
def demo(
    meetings: Annotated[int, typer.Option(help="how many meetings to run", min=1, max=200)] = 12,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 100.0,
    out: Annotated[Path, typer.Option(help="folder for the transcripts (.txt, .vtt, .json)")] = Path(".demo"),
    live: Annotated[bool, typer.Option(help="show a live table while it runs")] = True,
) -> None:
    """Run a mixed set of meetings through the whole pipeline on the local stack.

    Example: meetpilot demo --meetings 12
    """
    from meetpilot.local.demo import run_demo

    report = run_demo(meetings, timeout=timeout, out_dir=out, console=console, live=live)
    for problem in report.mismatches:
        console.print(f"[red]x[/red] {problem}")
    print(report.summary_line())  # plain print: one line, whatever the terminal width
    print(f"transcripts: {(out / 'transcripts').resolve()} ({report.seconds:.0f} s)")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def chaos(
    meetings: Annotated[int, typer.Option(help="how many meetings to run", min=1, max=5000)] = 300,
    seed: Annotated[int, typer.Option(help="seed of every fault draw")] = 7,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 900.0,
) -> None:
    """Run many meetings through the local stack while faults are injected everywhere, then check
    every invariant (one bot per meeting, none lost, right final state, transcripts stored once).

    Example: meetpilot chaos --meetings 300 --seed 7
    """
    from rich.table import Table

    from meetpilot.local.chaos import run_chaos

    def progress(done: int, total: int) -> None:
        console.print(f"  {done}/{total} meetings final", end="\r")

    report = run_chaos(meetings, seed=seed, timeout=timeout, progress=progress)
    table = Table(title=f"meetpilot chaos: {meetings} meetings, seed {seed}, {report.seconds:.0f} s")
    for column in ("figure", "value", "check"):
        table.add_column(column)
    for row in report.rows():
        table.add_row(*row)
    console.print(table)
    for problem in (report.wrong_final_state + report.lost)[:20]:
        console.print(f"[red]x[/red] {problem}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def dev(
    speed: Annotated[float, typer.Option(help="simulator speed: simulated seconds per real second")] = 60.0,
) -> None:
    """Run the local stack until Ctrl-C: gateway, AWS emulator, queue pollers, scheduler, simulator.

    Example: meetpilot dev --speed 60
    """
    from meetpilot.local.dev import run_dev
    from meetpilot.local.stack import StackOptions

    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    run_dev(stop, options=StackOptions(speed=speed, quiet_logs=True), say=console.print)


@meetings_app.command("add")
def meetings_add(
    url: Annotated[str, typer.Argument(help="the meeting link (Zoom, Meet, Teams, Webex)")],
    start: Annotated[str | None, typer.Option(help="start time, ISO-8601 with a zone")] = None,
    in_seconds: Annotated[int | None, typer.Option("--in", help="start this many seconds from now")] = None,
    title: Annotated[str, typer.Option(help="meeting title")] = "",
    user: Annotated[str | None, typer.Option(help="who asked for the recording")] = None,
) -> None:
    """Ask the running local stack to record a meeting.

    Example: meetpilot meetings add https://meet.google.com/abc-defg-hij --in 60
    """
    import boto3

    from meetpilot.domain.clock import parse_iso, to_iso
    from meetpilot.domain.meeting import meeting_key
    from meetpilot.errors import InvalidInput
    from meetpilot.local.dev import read_state

    try:
        when = parse_iso(start) if start else datetime.now(UTC) + timedelta(seconds=in_seconds or 60)
        key = meeting_key(url, when)
        state = read_state()
    except (ValueError, InvalidInput, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    env = state["environment"]
    sqs = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    ).client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    submit = {"meeting_url": url, "start": to_iso(when), "title": title}
    if user:
        submit["user_id"] = user
    sqs.send_message(QueueUrl=env["DISPATCH_QUEUE_URL"], MessageBody=json.dumps({"submit": submit}))
    console.print(f"queued {key}")


@app.command()
def forget(
    bot_id: Annotated[str, typer.Argument(help="the MeetStream bot id")],
) -> None:
    """Erase everything about one bot: its transcripts in S3, its session and event history in
    DynamoDB, and the provider's copy. Reports each step. Works against the running local stack.

    Example: meetpilot forget 6667fd0c-0165-471a-a880-06a1180be377
    """
    from meetpilot.app.forget import forget_bot
    from meetpilot.errors import NotFound
    from meetpilot.local.dev import container_from_state, read_state

    try:
        c = container_from_state(read_state())
        report = forget_bot(bot_id, repo=c.repository, store=c.transcript_store, provider=c.provider, clock=c.clock)
    except (FileNotFoundError, NotFound) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    for line in report.lines():
        console.print(line)
    raise typer.Exit(0 if report.session_deleted else 1)


class RedriveQueue(StrEnum):
    """The queues with a dead-letter queue, named as on the command line."""

    DISPATCH = "dispatch"
    BOT_EVENTS = "bot-events"
    TRANSCRIPT = "transcript"

    @property
    def url_variable(self) -> str:
        """The environment variable (as the functions get it) holding the queue's URL."""
        return f"{self.name}_QUEUE_URL"


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
) -> None:
    """Move the messages in a queue's dead-letter queue back to the queue, once the cause is fixed.

    Each message goes back with its body and attributes and leaves the DLQ only once that send succeeded.

    Example: meetpilot redrive bot-events
    """
    import boto3

    from meetpilot.local.dev import read_state
    from meetpilot.redrive import RedriveError, dead_letter_queue_url, queue_name
    from meetpilot.redrive import redrive as move_back

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
    from meetpilot.simulator.cli import main as simulator_main

    raise typer.Exit(simulator_main(list(ctx.args)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
