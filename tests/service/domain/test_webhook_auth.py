from datetime import UTC, datetime, timedelta

import pytest

from meetpilot.domain.clock import to_iso
from meetpilot.domain.webhook_auth import (
    capability_token,
    parse_secrets,
    sign_body,
    timestamp_problem,
    verify_capability_token,
    verify_signature,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_token_for_session_verifies_and_is_url_safe():
    token = capability_token("s3cret", "sess-1")
    assert verify_capability_token(("s3cret",), "sess-1", token)
    assert all(c.isalnum() or c in "-_" for c in token)


@pytest.mark.parametrize(
    "secrets,session,mangle",
    [
        (("s3cret",), "sess-2", lambda t: t),  # token of another session
        (("other",), "sess-1", lambda t: t),  # wrong secret
        (("s3cret",), "sess-1", lambda t: t[:-1]),  # truncated
        (("s3cret",), "sess-1", lambda t: ""),  # missing
        (("s3cret",), "sess-1", lambda t: t.upper()),  # case changed
    ],
)
def test_token_rejections(secrets, session, mangle):
    token = mangle(capability_token("s3cret", "sess-1"))
    assert not verify_capability_token(secrets, session, token)


def test_rotation_accepts_old_and_new_then_only_new():
    old_token = capability_token("old", "s")
    new_token = capability_token("new", "s")
    during = parse_secrets("new\nold")
    assert verify_capability_token(during, "s", old_token)
    assert verify_capability_token(during, "s", new_token)
    after = parse_secrets("new")
    assert not verify_capability_token(after, "s", old_token)
    assert verify_capability_token(after, "s", new_token)


def test_parse_secrets_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        parse_secrets(" \n , ")
    assert parse_secrets("a, b") == ("a", "b")


def test_signature_with_and_without_prefix():
    body = b'{"event":"bot.joining"}'
    header = sign_body("k", body)
    assert header.startswith("sha256=")
    assert verify_signature(("k",), body, header)
    assert verify_signature(("k",), body, header.removeprefix("sha256="))
    assert verify_signature(("k",), body, header.upper().replace("SHA256=", "sha256="))
    assert not verify_signature(("k",), body + b" ", header)  # tampered body
    assert not verify_signature(("x",), body, header)
    assert not verify_signature(("k",), body, None)
    assert not verify_signature(("k",), body, "sha256=")


def test_timestamp_window():
    assert timestamp_problem(to_iso(NOW - timedelta(seconds=60)), NOW) is None
    assert "too old" in timestamp_problem(to_iso(NOW - timedelta(seconds=301)), NOW)
    assert "future" in timestamp_problem(to_iso(NOW + timedelta(seconds=301)), NOW)
    assert "missing" in timestamp_problem(None, NOW)
    assert "ISO-8601" in timestamp_problem("yesterday", NOW)
    assert "ISO-8601" in timestamp_problem("2026-11-24T15:00:00", NOW)  # no zone


def test_the_token_secret_and_the_signing_secret_never_stand_in_for_each_other():
    token_secrets, signing_secrets = parse_secrets("tok-new,tok-old"), parse_secrets("sig-new\nsig-old")
    body = b'{"event":"bot.joining"}'
    for secret in signing_secrets:
        assert not verify_capability_token(token_secrets, "s", capability_token(secret, "s"))
    for secret in token_secrets:
        assert not verify_signature(signing_secrets, body, sign_body(secret, body))
    # Each list, during its own rotation, takes both of its values.
    assert all(verify_capability_token(token_secrets, "s", capability_token(t, "s")) for t in token_secrets)
    assert all(verify_signature(signing_secrets, body, sign_body(k, body)) for k in signing_secrets)
