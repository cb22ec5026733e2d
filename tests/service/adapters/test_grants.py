"""KmsSsmGrants against moto's KMS and SSM: OAuth clients from SecureStrings, refresh tokens sealed to
their calendar, rotated tokens stored at once, and no value in any message."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meetpilot.adapters.grants import KmsSsmGrants
from meetpilot.domain.calendar import AccessRevoked, Calendar, CalendarKind, CalendarSourceError, OAuthClient
from meetpilot_dev.fakes.memory import MemoryRepository

REGION = "us-east-1"
GOOGLE_PARAM = "/meetpilot/oauth/google"
MICROSOFT_PARAM = "/meetpilot/oauth/microsoft"
CLIENT_SECRET = "GOCSPX-grants-client-secret"
REFRESH_TOKEN = "1//0grants-refresh-token-never-shown"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture
def key_id(aws: boto3.Session) -> str:
    kms = aws.client("kms")
    key = kms.create_key(Description="calendar grants")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/test-calendar-grants", TargetKeyId=key)
    return "alias/test-calendar-grants"


@pytest.fixture
def repo() -> MemoryRepository:
    return MemoryRepository()


def grants_for(aws: boto3.Session, key_id: str, repo: MemoryRepository) -> KmsSsmGrants:
    return KmsSsmGrants(
        aws.client("kms"),
        aws.client("ssm"),
        repo=repo,
        key_id=key_id,
        client_params={CalendarKind.GOOGLE: GOOGLE_PARAM, CalendarKind.MICROSOFT: MICROSOFT_PARAM},
    )


@pytest.fixture
def grants(aws: boto3.Session, key_id: str, repo: MemoryRepository) -> KmsSsmGrants:
    return grants_for(aws, key_id, repo)


def put(aws: boto3.Session, name: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    aws.client("ssm").put_parameter(Name=name, Value=text, Type="SecureString", Overwrite=True)


def calendar(calendar_id: str = "google-aaaa", sealed: str | None = None) -> Calendar:
    return Calendar(
        calendar_id=calendar_id,
        kind=CalendarKind.GOOGLE,
        user_id="alice",
        source_calendar_id="primary",
        sealed_refresh_token=sealed,
    )


def text_of(error: BaseException) -> str:
    return str(error) + "".join(traceback.format_exception(error))


# --- OAuth clients ----------------------------------------------------------------------------


def test_oauth_clients_are_read_from_their_secure_strings(aws, grants):
    put(aws, GOOGLE_PARAM, {"client_id": "g-id", "client_secret": CLIENT_SECRET})
    put(aws, MICROSOFT_PARAM, {"client_id": "m-id", "client_secret": "ms~secret", "tenant": "common"})
    assert grants.client(CalendarKind.GOOGLE) == OAuthClient("g-id", CLIENT_SECRET)
    assert grants.client(CalendarKind.MICROSOFT) == OAuthClient("m-id", "ms~secret", tenant="common")
    assert CLIENT_SECRET not in repr(grants.client(CalendarKind.GOOGLE))


def test_a_missing_oauth_client_says_which_parameter_to_create(grants):
    with pytest.raises(CalendarSourceError) as caught:
        grants.client(CalendarKind.MICROSOFT)
    message = str(caught.value)
    assert MICROSOFT_PARAM in message and "create the SSM SecureString" in message and "tenant" in message
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not json " + CLIENT_SECRET, "is not JSON"),
        (["client_id"], "JSON object"),
        ({"client_id": "g-id"}, "lacks client_secret"),
        ({"client_id": "", "client_secret": CLIENT_SECRET}, "lacks client_id"),
    ],
)
def test_a_malformed_oauth_client_names_the_parameter_never_the_value(aws, grants, value, says):
    put(aws, GOOGLE_PARAM, value)
    with pytest.raises(CalendarSourceError, match=says) as caught:
        grants.client(CalendarKind.GOOGLE)
    assert GOOGLE_PARAM in str(caught.value) and CLIENT_SECRET not in text_of(caught.value)


def test_a_changed_oauth_client_is_read_again_once_the_cache_ages(aws, grants):
    put(aws, GOOGLE_PARAM, {"client_id": "g-id", "client_secret": "old-secret"})
    assert grants.client(CalendarKind.GOOGLE).client_secret == "old-secret"
    put(aws, GOOGLE_PARAM, {"client_id": "g-id", "client_secret": "new-secret"})
    assert grants.client(CalendarKind.GOOGLE).client_secret == "old-secret"  # cached per warm instance
    grants._parameters.clear_cache()  # what max_age does after five minutes
    assert grants.client(CalendarKind.GOOGLE).client_secret == "new-secret"


def test_ics_calendars_have_no_oauth_client(grants):
    with pytest.raises(CalendarSourceError, match="no OAuth client"):
        grants.client(CalendarKind.ICS)


# --- sealing ----------------------------------------------------------------------------------


def test_a_sealed_token_opens_for_its_own_calendar(grants):
    sealed = grants.seal(REFRESH_TOKEN, calendar_id="google-aaaa")
    assert REFRESH_TOKEN not in sealed and sealed.startswith("kms1:")
    assert grants.refresh_token(calendar("google-aaaa", sealed)) == REFRESH_TOKEN


def test_a_sealed_token_copied_to_another_calendar_does_not_open(grants):
    sealed = grants.seal(REFRESH_TOKEN, calendar_id="google-aaaa")
    with pytest.raises(AccessRevoked, match="does not open for this calendar") as caught:
        grants.refresh_token(calendar("google-bbbb", sealed))
    assert "google-bbbb" in str(caught.value) and REFRESH_TOKEN not in text_of(caught.value)


def test_a_token_sealed_under_another_key_does_not_open(aws, grants, repo):
    kms = aws.client("kms")
    other = kms.create_key(Description="someone else's")["KeyMetadata"]["KeyId"]
    foreign = grants_for(aws, other, repo).seal(REFRESH_TOKEN, calendar_id="google-aaaa")
    with pytest.raises(CalendarSourceError) as caught:
        grants.refresh_token(calendar("google-aaaa", foreign))
    assert REFRESH_TOKEN not in text_of(caught.value)


@pytest.mark.parametrize("sealed", [None, "", "plain-" + REFRESH_TOKEN, "kms1:not base64!"])
def test_a_missing_or_damaged_seal_asks_to_reconnect(grants, sealed):
    with pytest.raises(AccessRevoked, match="reconnect") as caught:
        grants.refresh_token(calendar("google-aaaa", sealed))
    assert REFRESH_TOKEN not in text_of(caught.value)


def test_a_key_meetpilot_may_not_use_names_the_key_never_the_token(aws, repo):
    grants = grants_for(aws, "alias/no-such-key", repo)
    with pytest.raises(CalendarSourceError, match="alias/no-such-key") as caught:
        grants.seal(REFRESH_TOKEN, calendar_id="google-aaaa")
    assert "kms:Encrypt" in str(caught.value) and REFRESH_TOKEN not in text_of(caught.value)


# --- rotation ---------------------------------------------------------------------------------


def test_a_rotated_token_is_stored_at_once_and_opens(grants, repo):
    original = grants.seal(REFRESH_TOKEN, calendar_id="google-aaaa")
    first = calendar("google-aaaa", original)
    repo.put_calendar(first, datetime.now(UTC))
    grants.store_rotated(first, "1//0rotated-token")
    stored = repo.get_calendar("google-aaaa")
    assert stored.sealed_refresh_token != original and stored.sealed_refresh_token == first.sealed_refresh_token
    assert grants.refresh_token(stored) == "1//0rotated-token"


def test_a_rotation_does_not_overwrite_a_newer_reconnect(grants, repo):
    old = calendar("google-aaaa", grants.seal(REFRESH_TOKEN, calendar_id="google-aaaa"))
    repo.put_calendar(old, datetime.now(UTC))
    repo.reconnect_calendar("google-aaaa", grants.seal("1//0from-the-user", calendar_id="google-aaaa"))
    grants.store_rotated(old, "1//0rotated-from-the-old-grant")
    assert grants.refresh_token(repo.get_calendar("google-aaaa")) == "1//0from-the-user"
