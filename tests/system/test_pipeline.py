"""One meeting through all four handlers on the embedded stack, with the simulator over loopback."""

from __future__ import annotations

import gzip
import json
import logging
from datetime import UTC, datetime, timedelta

from meetpilot.domain.status import BotStatus, Outcome
from meetpilot.domain.webhook_auth import capability_token
from tests.support.stacks import run_until


def _read(stack, key: str) -> bytes:
    s3 = stack.container.client("s3")
    return s3.get_object(Bucket=stack.container.settings.transcript_bucket, Key=key)["Body"].read()


def test_one_meeting_end_to_end_stores_transcript_and_creates_one_bot(stack, caplog, capsys):
    caplog.set_level(logging.INFO)
    start = datetime.now(UTC) + timedelta(seconds=2)
    url = "https://meet.google.com/abc-defg-hij"
    key = stack.submit_meeting(url, start, title="Weekly sync", user_id="alice")

    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.outcome is not None, 40)
    session = stack.session_for(key)

    assert session.outcome is Outcome.TRANSCRIPT_STORED, session.outcome_reason
    assert session.status is BotStatus.DONE
    # exactly one bot was created at the provider, for this meeting
    bots = stack.simulator.bots()
    assert len(bots) == 1 and stack.simulator.create_calls == 1
    assert bots[0]["bot_id"] == session.bot_id
    assert bots[0]["custom_attributes"]["meeting_key"] == key

    # the history holds the lifecycle in arrival order, each event once
    names = [h["name"] for h in session.history]
    for expected in ("bot.joining", "bot.inmeeting", "bot.stopped", "transcription.processed", "bot.done"):
        assert expected in names
    assert len(names) == len(set(h["name"] + str(h.get("timestamp")) for h in session.history))

    keys = session.transcript["keys"]
    assert keys["json"].startswith(f"transcripts/{start:%Y/%m/%d}/{session.bot_id}/")
    raw = json.loads(gzip.decompress(_read(stack, keys["raw"])))
    assert isinstance(raw, list) and raw
    doc = json.loads(_read(stack, keys["json"]))
    assert len(doc["turns"]) == len(raw) == session.transcript["turns"]
    assert doc["metadata"]["bot_id"] == session.bot_id
    assert _read(stack, keys["vtt"]).startswith(b"WEBVTT")
    first = raw[0]
    assert first["transcript"].split()[0].encode() in _read(stack, keys["txt"])
    assert session.transcript["words"] > 0

    meeting = stack.container.repository.get_meeting(key)
    assert meeting.dispatch_state.value == "dispatched" and meeting.bot_id == session.bot_id

    # secrets never reach the logs
    # (the simulator, playing MeetStream, posts to the callback URL; httpx logs its own requests)
    ours = [r for r in caplog.records if not r.name.startswith("httpx")]
    logged = "\n".join(r.getMessage() for r in ours) + capsys.readouterr().out
    for secret in (stack.api_key, stack.webhook_secret):
        assert secret not in logged
    token = capability_token(stack.webhook_secret, session.session_id)
    assert token not in logged  # nor is the callback URL that carries it
