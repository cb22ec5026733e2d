"""transcript_fetch against the simulator: 202 is retried, big transcripts stream, every end is named."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meetpilot.app.messages import BotEventDelivery, TranscriptJob
from meetpilot.app.ports import BotRequest
from meetpilot.app.transcripts import FetchOutcome, fetch_transcript
from meetpilot.domain.clock import FixedClock
from meetpilot.domain.session import Session, TranscriptMode, TranscriptState
from meetpilot.domain.status import Outcome
from meetpilot_dev.simulator import Scenario


class DiskStore:
    """A TranscriptStore on local disk, so a memory measurement sees only meetpilot's own copies."""

    bucket = "local-disk"  # the TranscriptStore port names where files land

    def __init__(self, root):
        self.root = root
        self.objects: dict[str, dict] = {}

    def put_file(self, key, path, *, content_type, content_encoding=None):
        target = os.path.join(self.root, key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
        self.objects[key] = {"content_type": content_type, "content_encoding": content_encoding}


def start_bot(stack, scenario=Scenario.NORMAL, link="https://meet.google.com/aaa-bbbb-ccc"):
    stack.simulator.set_scenario(link, scenario)
    created = stack.container.provider.create_bot(
        BotRequest(
            meeting_url=link,
            bot_name="t",
            callback_url=stack.gateway.url + "/nowhere",
            deduplication_key=link + scenario,
            transcript_provider="deepgram",
        ),
        idempotency_key=f"idem-{scenario}",
    )
    session = Session(
        session_id=f"s-{created.bot_id[:8]}",
        meeting_key="k|2026-12-01T15:00Z",
        transcript_mode=TranscriptMode.POST_CALL,
        bot_id=created.bot_id,
        transcript_id=created.transcript_id,
    )
    stack.container.repository.create_session(session, datetime.now(UTC))
    return session


def as_job(job):
    """A job as the fetcher gets it: a body read off the queue (a dict here) or a job already."""
    return job if isinstance(job, TranscriptJob) else TranscriptJob.model_validate(job)


def fetch(stack, session, *, clock=None, store=None, job=None, spool=None):
    return fetch_transcript(
        as_job(job or {"session_id": session.session_id, "attempt": 0}),
        repo=stack.container.repository,
        provider=stack.container.provider,
        store=store or stack.container.transcript_store,
        clock=clock or stack.container.clock,
        spool_dir=spool,
    )


def fetch_until_done(stack, session, timeout=30.0, **kw):
    deadline = time.monotonic() + timeout
    while True:
        result = fetch(stack, session, **kw)
        if result.outcome is not FetchOutcome.RETRY or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def stored_session(stack, session):
    return stack.container.repository.get_session(session.session_id)


def test_not_ready_is_retried_with_a_growing_delay_then_given_up(stack):
    session = start_bot(stack, Scenario.TRANSCRIPTION_FAILED)
    clock = FixedClock(datetime.now(UTC))
    first = fetch(stack, session, clock=clock)
    assert first.outcome is FetchOutcome.RETRY
    second = fetch(stack, session, clock=clock, job=first.next_job)
    assert second.next_job.attempt == 2 and second.retry_in > first.retry_in
    assert second.next_job.first_attempt_at == first.next_job.first_attempt_at
    assert stored_session(stack, session).outcome is None  # not failed: just not ready

    clock.advance(31 * 60)
    last = fetch(stack, session, clock=clock, job=second.next_job)
    assert last.outcome is FetchOutcome.GAVE_UP
    s = stored_session(stack, session)
    assert s.outcome is Outcome.GAVE_UP and s.needs_review and "30 minutes" in s.outcome_reason


class NoCallsProvider:
    """A provider that fails the test if anything calls it."""

    def __getattr__(self, name):
        raise AssertionError(f"the provider was called ({name})")


@pytest.mark.parametrize("outcome", [Outcome.NOT_ADMITTED, Outcome.DENIED, Outcome.CANCELLED])
def test_a_job_for_a_bot_that_never_recorded_ends_at_once_without_calling_the_provider(stack, outcome):
    session = start_bot(stack, link=f"https://meet.google.com/nev-{outcome.value[:4]}-rec")
    repo = stack.container.repository
    settled = repo.get_session(session.session_id)
    settled.outcome, settled.outcome_reason = outcome, "the host said no"
    settled.transcript_state = TranscriptState.QUEUED  # a job was queued before the verdict came
    repo.save_session(settled, datetime.now(UTC))
    result = fetch_transcript(
        TranscriptJob(session_id=session.session_id, attempt=3),
        repo=repo,
        provider=NoCallsProvider(),
        store=stack.container.transcript_store,
        clock=stack.container.clock,
    )
    assert result.outcome is FetchOutcome.FAILED and result.next_job is None
    assert result.reason == "no transcript: the host said no"
    assert stored_session(stack, session).outcome is outcome  # the verdict stands


class JobQueue:
    """The transcript queue as a list: what apply_delivery sends is what the fetcher gets."""

    def __init__(self):
        self.sent: list[dict] = []

    def send(self, body, *, delay_seconds=0):
        self.sent.append(dict(body))
        return str(len(self.sent))


def _webhook(session, name, *, second):
    stop = {"bot.notallowed", "bot.denied", "bot.stopped"}
    payload = {
        "event": "bot.stopped" if name in stop else name,
        "bot_event": name,
        "bot_id": session.bot_id,
        "status_code": 500 if name in ("bot.notallowed", "bot.denied") else 200,
        "timestamp": f"2026-12-01T15:30:{second:02d}Z",
        "message": f"{name} said so",
    }
    return BotEventDelivery(body=json.dumps(payload), session_id=session.session_id)


# The late webhook, and what came before bot.done (a bot never admitted sends no bot.stopped first).
LATE_VERDICTS = {
    "bot.notallowed": ([], Outcome.NOT_ADMITTED),
    "bot.denied": ([], Outcome.DENIED),
    "transcription.failed": (["bot.stopped"], Outcome.TRANSCRIPTION_FAILED),
    "transcription.skipped": (["bot.stopped"], Outcome.TRANSCRIPTION_FAILED),
}


@pytest.mark.parametrize("late", sorted(LATE_VERDICTS))
def test_a_verdict_arriving_after_bot_done_ends_the_waiting_job_at_its_next_retry(stack, late):
    from meetpilot.app.bot_events import apply_delivery

    before, outcome = LATE_VERDICTS[late]
    session = start_bot(stack, Scenario.TRANSCRIPTION_FAILED, link=f"https://meet.google.com/lat-{late[-6:]}-ver")
    repo, clock, queue = stack.container.repository, stack.container.clock, JobQueue()
    for second, name in enumerate([*before, "bot.done"]):
        apply_delivery(_webhook(session, name, second=second), repo=repo, transcript_queue=queue, clock=clock)
    assert len(queue.sent) == 1  # bot.done queued a fetch: nothing has said there is no transcript yet

    # The job waits out a few 202s from the provider, as it would for a slow transcription.
    job = queue.sent[0]
    for attempt in (1, 2, 3):
        waiting = fetch(stack, session, job=job)
        assert waiting.outcome is FetchOutcome.RETRY and waiting.next_job.attempt == attempt
        job = waiting.next_job

    apply_delivery(_webhook(session, late, second=30), repo=repo, transcript_queue=queue, clock=clock)
    assert stored_session(stack, session).outcome is outcome

    ended = fetch_transcript(
        as_job(job),
        repo=repo,
        provider=NoCallsProvider(),
        store=stack.container.transcript_store,
        clock=clock,
    )
    assert ended.outcome is FetchOutcome.FAILED and ended.next_job is None and ended.retry_in is None
    assert ended.reason == f"no transcript: {stored_session(stack, session).outcome_reason}"
    assert stored_session(stack, session).outcome is outcome  # the verdict stands


def test_transcript_stored_in_s3_in_four_forms_and_a_second_job_is_a_noop(stack):
    session = start_bot(stack)
    result = fetch_until_done(stack, session)
    assert result.outcome is FetchOutcome.STORED
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed) == [
        "raw.json.gz",
        "transcript.json",
        "transcript.txt",
        "transcript.vtt",
    ]
    raw = s3.get_object(Bucket=bucket, Key=result.keys["raw"])
    assert raw["ServerSideEncryption"] == "AES256" and raw["ContentEncoding"] == "gzip"
    segments = json.loads(gzip.decompress(raw["Body"].read()))
    s = stored_session(stack, session)
    assert s.outcome is Outcome.TRANSCRIPT_STORED and s.transcript_state is TranscriptState.STORED
    assert s.transcript["turns"] == len(segments)
    assert s.transcript["words"] == sum(len(seg["transcript"].split()) for seg in segments)
    assert set(s.transcript["speakers"]) == {seg["speaker"] for seg in segments}

    again = fetch(stack, session)
    assert again.outcome is FetchOutcome.ALREADY_STORED
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 4


def test_empty_transcript_is_its_own_outcome(stack):
    session = start_bot(stack, Scenario.EMPTY_TRANSCRIPT)
    assert fetch_until_done(stack, session).outcome is FetchOutcome.EMPTY
    s = stored_session(stack, session)
    assert s.outcome is Outcome.EMPTY and s.outcome_reason == "the transcript has no speech"


def test_missing_transcript_id_is_looked_up_from_bot_detail(stack):
    session = start_bot(stack)
    session.transcript_id = None
    stack.container.repository.save_session(session, datetime.now(UTC))
    assert fetch_until_done(stack, session).outcome is FetchOutcome.STORED
    assert stored_session(stack, session).transcript_id


class GarbageProvider:
    def __init__(self, inner):
        self.inner = inner

    def download_transcript(self, transcript_id, sink):
        sink.write(b'{"unexpected": true}')
        return 20

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_unreadable_transcript_keeps_the_raw_body_and_says_why(stack):
    session = start_bot(stack)
    result = fetch_transcript(
        TranscriptJob(session_id=session.session_id),
        repo=stack.container.repository,
        provider=GarbageProvider(stack.container.provider),
        store=stack.container.transcript_store,
        clock=stack.container.clock,
    )
    assert result.outcome is FetchOutcome.FAILED and list(result.keys) == ["raw"]
    s = stored_session(stack, session)
    assert s.outcome is Outcome.TRANSCRIPTION_FAILED and "unreadable" in s.outcome_reason
    assert s.transcript["raw_key"] == result.keys["raw"]


# Runs in a child process so its peak RSS is meetpilot's alone (the emulator and the simulator,
# which builds the 100 MB body, stay in the test process).
_CHILD = """
import json, resource, sys
from dataclasses import replace
args = json.loads(sys.argv[1])
import boto3
from meetpilot.app.messages import TranscriptJob
from meetpilot.app.transcripts import fetch_transcript
from meetpilot.composition import Container
from meetpilot.settings import Settings
sys.path.insert(0, args["tests_root"])
from tests.service.app.test_transcripts_on_stack import DiskStore
session = boto3.session.Session(aws_access_key_id=args["access_key"], aws_secret_access_key="local",
                                region_name="us-east-1")
c = Container(Settings(**args["settings"]), boto_session=session, endpoint_url=args["endpoint"])
c.provider.bot_status(args["bot_id"])  # warm every client before measuring
c.repository.get_session(args["session_id"])
def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None
try:  # reset the peak (VmHWM) so it measures the fetch alone, not start-up
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
before = status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = fetch_transcript(TranscriptJob(session_id=args["session_id"]), repo=c.repository, provider=c.provider,
                          store=DiskStore(args["store"]), clock=c.clock, spool_dir=args["spool"])
after = status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": result.outcome.value, "keys": result.keys, "turns": result.summary.turns,
                  "rss_growth_kb": after - before}))
"""


@pytest.mark.slow
def test_100_mb_transcript_is_stored_without_a_whole_copy_in_memory(stack_factory, tmp_path):
    stack = stack_factory(simulator_overrides={"long_transcript_segments": 54_000})
    session = start_bot(stack, Scenario.LONG_TRANSCRIPT)
    deadline = time.monotonic() + 30
    while stack.simulator.bots()[0]["status"] != "Done" and time.monotonic() < deadline:
        time.sleep(0.1)
    settings = stack.container.settings
    args = {
        "settings": {
            "table_name": settings.table_name,
            "transcript_bucket": settings.transcript_bucket,
            "meetstream_base_url": settings.meetstream_base_url,
            "api_key_param": settings.api_key_param,
            "webhook_secret_param": settings.webhook_secret_param,
        },
        "endpoint": stack.aws_endpoint,
        "access_key": stack.environment()["AWS_ACCESS_KEY_ID"],
        "bot_id": session.bot_id,
        "session_id": session.session_id,
        "store": str(tmp_path / "store"),
        "spool": str(tmp_path),
        "tests_root": str(Path(__file__).resolve().parents[3]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "stored" and report["turns"] == 54_000
    raw_size = len(gzip.decompress((tmp_path / "store" / report["keys"]["raw"]).read_bytes()))
    assert raw_size >= 100 * 1024 * 1024, raw_size
    growth_mb = report["rss_growth_kb"] / 1024
    print(f"100 MB transcript: {raw_size / 1e6:.0f} MB body, peak RSS growth {growth_mb:.1f} MB")
    assert growth_mb < 64, f"peak RSS grew {growth_mb:.0f} MB for a {raw_size / 1e6:.0f} MB transcript"


def test_a_lost_denial_is_read_from_the_providers_record_when_the_bot_has_no_transcript_id(stack):
    # The callback goes nowhere, so no webhook arrives; the provider's record says the host denied
    # the bot, and holds no transcript id. A job for it settles from that record at once.
    link = "https://meet.google.com/den-lost-hoo"
    stack.simulator.set_scenario(link, Scenario.DENIED)
    request = BotRequest(
        meeting_url=link, bot_name="t", callback_url=stack.gateway.url + "/nowhere", deduplication_key=link
    )
    created = stack.container.provider.create_bot(request, idempotency_key="idem-lost-denial")
    session = Session(
        session_id="s-lost-denial",
        meeting_key="k|2026-12-01T15:00Z",
        transcript_mode=TranscriptMode.POST_CALL,
        bot_id=created.bot_id,
    )
    stack.container.repository.create_session(session, datetime.now(UTC))
    deadline = time.monotonic() + 60
    while "Done" not in stack.container.provider.bot_detail(session.bot_id).get("StatusTimeline", {}):
        assert time.monotonic() < deadline, "the simulated bot never finished"
        time.sleep(0.1)
    assert stack.container.provider.find_transcript_id(session.bot_id) is None
    result = fetch(stack, session)
    assert result.outcome is FetchOutcome.FAILED and result.next_job is None
    assert stored_session(stack, session).outcome is Outcome.DENIED


# --- stored once: a retried job, or one that lost the race for its session, uploads nothing ---


class S3Calls:
    """The S3 operations the container's client sends (counted below retries), by name."""

    def __init__(self, stack):
        from collections import Counter

        self.calls = Counter()
        self._events = stack.container.client("s3").meta.events
        self._events.register("before-call.s3", self._count)

    def _count(self, model, **_):
        self.calls[model.name] += 1

    def puts(self):
        return sum(self.calls[op] for op in ("PutObject", "CreateMultipartUpload", "UploadPart"))

    def close(self):
        self._events.unregister("before-call.s3", self._count)


class SettleFails:
    """Sessions whose save of a stored transcript fails once, as a job dying right after uploading."""

    def __init__(self, inner):
        self._inner = inner
        self.failed = False

    def save_session(self, session, now):
        if session.transcript_state is TranscriptState.STORED and not self.failed:
            self.failed = True
            raise ConnectionError("lost the connection to DynamoDB")
        return self._inner.save_session(session, now)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def fetch_with(stack, session, repo):
    return fetch_transcript(
        TranscriptJob(session_id=session.session_id, attempt=0),
        repo=repo,
        provider=stack.container.provider,
        store=stack.container.transcript_store,
        clock=stack.container.clock,
    )


def test_a_job_retried_after_uploading_finds_its_objects_stored_and_puts_nothing(stack):
    session = start_bot(stack, link="https://meet.google.com/ret-ried-job")
    fetch_until_done(stack, session)  # the provider's transcript is ready: no 202 left below
    repo = stack.container.repository
    undone = repo.get_session(session.session_id)
    undone.transcript_state, undone.outcome, undone.transcript = TranscriptState.QUEUED, None, {}
    repo.save_session(undone, datetime.now(UTC))  # back to "a job is queued", objects in place
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    for listed in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        s3.delete_object(Bucket=bucket, Key=listed["Key"])

    calls = S3Calls(stack)
    try:
        dying = SettleFails(repo)
        with pytest.raises(ConnectionError):
            fetch_with(stack, session, dying)  # uploads all four, then fails to record it
        assert calls.puts() == 4 and calls.calls["HeadObject"] == 1
        assert stored_session(stack, session).transcript_state is not TranscriptState.STORED

        retried = fetch_with(stack, session, repo)  # the queue delivers the job again
        assert retried.outcome is FetchOutcome.STORED
        assert calls.puts() == 4, calls.calls  # nothing uploaded again
        assert calls.calls["HeadObject"] == 2  # one check per job
    finally:
        calls.close()
    s = stored_session(stack, session)
    assert s.transcript_state is TranscriptState.STORED and s.transcript["turns"] == retried.summary.turns
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 4


class HoldsSettle:
    """Sessions whose first save of a stored transcript waits until ``release`` is set."""

    def __init__(self, inner):
        import threading

        self._inner = inner
        self.reached = threading.Event()
        self.release = threading.Event()

    def save_session(self, session, now):
        if session.transcript_state is TranscriptState.STORED and not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(30)
        return self._inner.save_session(session, now)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_two_jobs_racing_for_one_session_upload_the_four_objects_once(stack):
    from concurrent.futures import ThreadPoolExecutor

    session = start_bot(stack, link="https://meet.google.com/two-jobs-race")
    first_try = fetch_until_done(stack, session)
    assert first_try.outcome is FetchOutcome.STORED
    repo = stack.container.repository
    undone = repo.get_session(session.session_id)
    undone.transcript_state, undone.outcome, undone.transcript = TranscriptState.QUEUED, None, {}
    repo.save_session(undone, datetime.now(UTC))
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    for listed in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        s3.delete_object(Bucket=bucket, Key=listed["Key"])

    calls = S3Calls(stack)
    held = HoldsSettle(repo)
    try:
        with ThreadPoolExecutor(1) as pool:
            # Job A has uploaded and is about to record it when job B reads the session: B sees no
            # transcript stored yet, so it fetches and renders, and its one check finds A's set.
            a = pool.submit(fetch_with, stack, session, held)
            assert held.reached.wait(30)
            b = fetch_with(stack, session, repo)
            held.release.set()
            a_result = a.result(30)
        assert b.outcome is FetchOutcome.STORED
        assert a_result.outcome is FetchOutcome.STORED  # its settle found the session settled
        assert calls.puts() == 4, calls.calls
        assert calls.calls["HeadObject"] == 2
    finally:
        held.release.set()
        calls.close()
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 4


def test_a_stored_set_made_from_something_else_is_uploaded_again(stack):
    session = start_bot(stack, link="https://meet.google.com/oth-erse-tsx")
    result = fetch_until_done(stack, session)
    repo = stack.container.repository
    undone = repo.get_session(session.session_id)
    undone.transcript_state, undone.outcome = TranscriptState.QUEUED, None
    repo.save_session(undone, datetime.now(UTC))
    s3 = stack.container.client("s3")
    bucket = stack.container.settings.transcript_bucket
    # Same key, other content (an older rendering, say): its tag is not this job's digest.
    s3.put_object(Bucket=bucket, Key=result.keys["txt"], Body=b"old", Metadata={"source-digest": "0" * 64})

    calls = S3Calls(stack)
    try:
        again = fetch_with(stack, session, repo)
    finally:
        calls.close()
    assert again.outcome is FetchOutcome.STORED
    assert calls.puts() == 4 and calls.calls["HeadObject"] == 1
    body = s3.get_object(Bucket=bucket, Key=result.keys["txt"])["Body"].read()
    assert body != b"old" and body.startswith(b"[")
