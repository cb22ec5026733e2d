"""forget erases a bot's transcripts (every S3 version), its session, and the provider's copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.app.forget import forget_bot
from meetpilot.errors import NotFound
from meetpilot.simulator import Faults
from tests.integration.conftest import run_until


def _recorded(stack):
    key = stack.submit_meeting("https://meet.google.com/for-gett-ing", datetime.now(UTC) + timedelta(seconds=1))
    assert run_until(stack, lambda: (s := stack.session_for(key)) is not None and s.outcome is not None, 40)
    return stack.session_for(key)


def test_forget_erases_transcripts_session_and_provider_copy(stack):
    session = _recorded(stack)
    c = stack.container
    s3 = c.client("s3")
    bucket = c.settings.transcript_bucket
    prefix = session.transcript["keys"]["raw"].rsplit("/", 1)[0] + "/"
    # a second version of one object, as a re-run upload would leave in the versioned bucket
    s3.put_object(Bucket=bucket, Key=session.transcript["keys"]["txt"], Body=b"again")
    report = forget_bot(session.bot_id, repo=c.repository, store=c.transcript_store, provider=c.provider, clock=c.clock)
    assert report.transcript_objects_deleted == 5
    assert report.session_deleted and report.provider.startswith("deleted")
    assert s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", []) == []
    assert c.repository.get_session(session.session_id) is None
    assert [e for e in stack.simulator.deliveries() if e.get("name") == "data_deletion"]
    with pytest.raises(NotFound, match="no session for bot"):
        forget_bot(session.bot_id, repo=c.repository, store=c.transcript_store, provider=c.provider, clock=c.clock)


def test_forget_keeps_the_session_when_the_provider_copy_could_not_be_deleted(stack):
    session = _recorded(stack)
    c = stack.container
    stack.simulator.set_faults(Faults(server_error=1.0, paths=("/delete",)))
    report = forget_bot(session.bot_id, repo=c.repository, store=c.transcript_store, provider=c.provider, clock=c.clock)
    assert "run forget again" in report.provider and not report.session_deleted
    assert c.repository.get_session(session.session_id) is not None
    stack.simulator.set_faults(Faults())
    again = forget_bot(session.bot_id, repo=c.repository, store=c.transcript_store, provider=c.provider, clock=c.clock)
    assert again.session_deleted and again.provider.startswith("deleted")
