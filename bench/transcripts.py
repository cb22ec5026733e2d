"""Benchmark 3: transcript scaling.

Transcripts of 1, 10 and 100 MB (MB = 2**20 bytes), each an 8-hour meeting with 50 speakers in
MeetStream's processed-segment shape (speaker, transcript, times, words with timings and
confidences), go through the ``transcript_fetch`` handler: download from a loopback server that
plays MeetStream's ``get_transcript`` (the body is streamed from a file, as the provider streams
it), raw copy gzipped to S3, parsed segment by segment, rendered to JSON, text and WebVTT, all
four uploaded, the session updated. Each size runs in a fresh process; its peak RSS comes from
the kernel's VmHWM and its speed is raw bytes over the handler's wall time. The process's CPU time
(all its threads) and the S3 and DynamoDB calls the job made are kept beside it: on a shared host
the wall time measures the neighbours too. The smallest size is then delivered once more as a
retried job, to count what a retry uploads.

The size is set by how densely the 8 hours are filled: about 10 MB is what 8 hours of steady
speech with word timings makes; 1 MB is a sparse meeting, 100 MB a stress case.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.intake import CHILDREN, lambda_environment

MB = 1 << 20
MEETING_SECONDS = 8 * 3600
_WORDS = (
    "we", "should", "ship", "the", "release", "on", "friday", "after", "review", "budget", "numbers",
    "look", "good", "customer", "asked", "about", "latency", "dashboard", "schedule", "a", "follow-up",
    "next", "week", "I", "think", "that", "works", "for", "me", "migration", "plan", "is", "ready",
    "tests", "pass", "deploy", "staging", "first", "agreed", "action", "items", "owner", "deadline",
)  # fmt: skip


@dataclass(frozen=True)
class TranscriptConfig:
    sizes_mb: tuple[int, ...] = (1, 10, 100)
    speakers: int = 50
    seed: int = 8
    # One more (untimed) run of this size under cProfile, to name where the time goes.
    profile_size_mb: int | None = 10


def speaker_names(count: int) -> list[str]:
    first = ("Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia")
    last = ("Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra")
    return [f"{first[i % len(first)]} {last[(i // len(first)) % len(last)]} {i + 1}" for i in range(count)]


def write_transcript(path: Path, size_bytes: int, *, speakers: int, seed: int) -> dict[str, Any]:
    """Write a deterministic MeetStream transcript of about ``size_bytes``; return its figures."""
    rng = random.Random(seed)
    names = speaker_names(speakers)
    started = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    spacing = 60.0
    for _ in range(2):  # the pace depends on the spacing, the size on the pace: settle it twice
        # Sampled mid-meeting, where the times have as many digits as most segments' do.
        mid = MEETING_SECONDS * 0.6
        average = sum(len(_segment(rng, names, i % speakers, mid, spacing, started)) + 1 for i in range(200)) / 200
        spacing = MEETING_SECONDS / max(1, int(size_bytes / average))
    written, count = 0, 0
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        written += 1
        while written < size_bytes - 2:
            text = _segment(rng, names, count % speakers, count * spacing, spacing, started)
            if count:
                out.write(",")
                written += 1
            out.write(text)
            written += len(text)
            count += 1
        out.write("]")
    span = min(MEETING_SECONDS, count * spacing)
    return {"bytes": path.stat().st_size, "segments": count, "speakers": min(speakers, count), "span_seconds": span}


def _segment(rng: random.Random, names: list[str], speaker: int, at: float, slot: float, started: datetime) -> str:
    """One segment starting at ``at``; its words fit in ``slot`` seconds (dense sizes talk fast)."""
    words = []
    cursor = at
    length = rng.randint(8, 16)
    pace = min(1.0, slot * 0.9 / (length * 0.375))  # 0.375 s: a word and its pause, on average
    texts = []
    for position in range(length):
        word = rng.choice(_WORDS)
        shown = word.capitalize() if position == 0 else word
        if position == length - 1:
            shown += "."
        duration = rng.uniform(0.15, 0.5) * pace
        words.append(
            f'{{"word":"{word.lower()}","punctuated_word":"{shown}","start":{cursor:.3f},'
            f'"end":{cursor + duration:.3f},"confidence":{rng.uniform(0.8, 1.0):.4f},'
            f'"speaker":{speaker},"speaker_confidence":{rng.uniform(0.6, 1.0):.4f}}}'
        )
        texts.append(shown)
        cursor += duration + 0.05 * pace
    first = (started + timedelta(seconds=at)).isoformat()
    last = (started + timedelta(seconds=cursor)).isoformat()
    return (
        f'{{"speaker":"{names[speaker]}","transcript":"{" ".join(texts)}","start_time":{at:.3f},'
        f'"end_time":{cursor:.3f},"absolute_start_time":"{first}","absolute_end_time":"{last}",'
        f'"words":[{",".join(words)}]}}'
    )


class TranscriptServer:
    """MeetStream's ``GET /transcript/{id}/get_transcript`` on loopback, streaming files."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                path = files.get(parts[-2]) if len(parts) >= 2 and parts[-1] == "get_transcript" else None
                if path is None or not self.headers.get("authorization", "").startswith("Token "):
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(path.stat().st_size))
                self.end_headers()
                with path.open("rb") as body:
                    while chunk := body.read(64 * 1024):
                        self.wfile.write(chunk)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="bench-transcripts", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _seed_session(stack: Any, transcript_id: str, index: int) -> str:
    from meetpilot.app.dispatch import MeetingRequest, submit_meeting
    from meetpilot.domain.session import Session, TranscriptMode
    from meetpilot.domain.status import BotStatus

    c = stack.container
    now = c.clock.now()
    request = MeetingRequest(f"https://meet.google.com/big-tran-{index:03d}", now + timedelta(hours=1), title="8 hours")
    meeting = submit_meeting(request, repo=c.repository, clock=c.clock)
    session = Session(
        session_id=uuid.uuid4().hex,
        meeting_key=meeting.meeting_key,
        transcript_mode=TranscriptMode.POST_CALL,
        bot_id=str(uuid.uuid4()),
        status=BotStatus.STOPPED,
        transcript_id=transcript_id,
    )
    c.repository.create_session(session, now)
    return session.session_id


def short_location(name: str) -> str:
    """A profiled function's place without the machine's own directories."""
    for marker in ("site-packages/", "/src/"):
        name = name.split(marker)[-1]
    if "/lib/python" in name:
        name = name.split("/lib/python", 1)[1].split("/", 1)[-1]
    return name


def _fetch(
    env: dict[str, str], workdir: Path, session_id: str, tag: str, *, profile: bool = False, retry: bool = False
) -> dict[str, Any]:
    config_path, out = workdir / f"fetch-{tag}.json", workdir / f"fetched-{tag}.json"
    config = {"session_id": session_id, "out": str(out), "profile": profile, "retry": retry}
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(CHILDREN / "transcript_fetch.py"), str(config_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"transcript fetch ({tag} MB) failed: {proc.stderr[-2000:]}")
    return dict(json.loads(out.read_text()))


def run(cfg: TranscriptConfig | None = None) -> dict[str, Any]:
    from meetpilot_dev.stack.embedded import LocalStack, StackOptions

    cfg = cfg or TranscriptConfig()
    started = time.monotonic()
    server = TranscriptServer()
    rows: list[dict[str, Any]] = []
    profile: list[Any] = []
    retried: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="meetpilot-bench-") as tmp,
        LocalStack(StackOptions(background_pollers=False)) as stack,
    ):
        workdir = Path(tmp)
        base_url = server.start()
        env = lambda_environment(stack)
        spool = workdir / "spool"
        spool.mkdir()
        env.update(MEETSTREAM_BASE_URL=base_url, TRANSCRIPT_SPOOL_DIR=str(spool))
        try:
            for index, size_mb in enumerate(cfg.sizes_mb):
                transcript_id = str(uuid.uuid4())
                body = workdir / f"transcript-{size_mb}.json"
                generated = time.monotonic()
                figures = write_transcript(body, size_mb * MB, speakers=cfg.speakers, seed=cfg.seed + index)
                generate_seconds = time.monotonic() - generated
                server.files[transcript_id] = body
                session_id = _seed_session(stack, transcript_id, index)
                # The smallest size is also delivered again, as a retried job whose first try stored
                # the objects but lost its session write: what it uploads the second time.
                measured = _fetch(env, workdir, session_id, f"{size_mb}", retry=index == 0)
                if "retry" in measured:
                    retried = {"size_mb": size_mb, **measured["retry"]}
                stored = stack.container.repository.get_session(session_id)
                summary = stored.transcript if stored else {}
                if size_mb == cfg.profile_size_mb:
                    again = _seed_session(stack, transcript_id, 100 + index)
                    profile = _fetch(env, workdir, again, f"{size_mb}-profile", profile=True)["profile"]
                    profile = [[short_location(name), own, calls] for name, own, calls in profile]
                body.unlink()
                rows.append(
                    {
                        "size_mb": size_mb,
                        "raw_bytes": measured["raw_bytes"],
                        "segments": figures["segments"],
                        "speakers": figures["speakers"],
                        "outcome": stored.outcome.value if stored and stored.outcome else None,
                        "turns_stored": summary.get("turns"),
                        "speakers_stored": summary.get("speaker_count"),
                        "span_hours": figures["span_seconds"] / 3600,
                        "seconds": measured["seconds"],
                        "mb_per_second": measured["raw_bytes"] / MB / measured["seconds"],
                        "cpu_seconds": measured["cpu_seconds"],
                        "aws_calls": measured["aws_calls"],
                        "download_seconds": measured["download_s"],
                        "upload_seconds": measured["upload_s"],
                        "uploaded_bytes": measured["uploaded_bytes"],
                        "other_seconds": measured["seconds"] - measured["download_s"] - measured["upload_s"],
                        "peak_rss_mb": measured["peak_rss_kb"] / 1024,
                        "peak_rss_before_fetch_mb": (measured["peak_rss_before_fetch_kb"] or 0) / 1024,
                        "peak_source": measured["peak_source"],
                        "generate_seconds": round(generate_seconds, 1),
                    }
                )
        finally:
            server.stop()
    smallest, largest = rows[0], rows[-1]
    return {
        "config": asdict(cfg),
        "rows": rows,
        "profile_size_mb": cfg.profile_size_mb if profile else None,
        "profile": profile,
        "rss_growth_mb": largest["peak_rss_mb"] - smallest["peak_rss_mb"],
        "retried_job": retried,
        "slowest_mb_per_second": min(r["mb_per_second"] for r in rows),
        "seconds": round(time.monotonic() - started, 1),
    }


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = result["rows"]
    span = f"{rows[0]['size_mb']} MB to {rows[-1]['size_mb']} MB"
    return [
        (
            f"peak RSS grows by < 64 MB from {span}",
            f"{result['rss_growth_mb']:.1f} MB",
            result["rss_growth_mb"] < 64,
        ),
        (
            ">= 20 MB/s at every size",
            f"{result['slowest_mb_per_second']:.1f} MB/s (slowest)",
            result["slowest_mb_per_second"] >= 20,
        ),
    ]
