"""Only the stack's own clients can use the local AWS emulator: a web page in the developer's browser
gets no answer it could read, and a client without the stack's access key id gets none at all.

The stack itself, the presigned links it hands out and the AWS CLI run with the export lines of
``meetpilot dev`` keep working.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from meetpilot_dev.stack.embedded import LocalStack

EVIL = "https://evil.example"


def _signed_headers(stack: LocalStack) -> dict[str, str]:
    """An Authorization header as a client of the stack sends it (moto does not check the signature)."""
    key = stack.environment()["AWS_ACCESS_KEY_ID"]
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/sqs/aws4_request, Signature=x"}


def test_a_request_from_another_origin_is_refused_and_no_origin_is_reflected(stack: LocalStack) -> None:
    list_queues = {"Action": "ListQueues", "Version": "2012-11-05"}
    for headers in (
        {"Origin": EVIL},
        {"Origin": EVIL, **_signed_headers(stack)},  # even with the key: a page must not use it
        {"Sec-Fetch-Site": "cross-site", **_signed_headers(stack)},
    ):
        answer = httpx.post(stack.aws_endpoint + "/", data=list_queues, headers=headers)
        assert answer.status_code == 403
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers
    preflight = httpx.options(
        stack.aws_endpoint + "/",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-amz"},
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    # moto's own admin routes are behind the same guard.
    assert httpx.post(stack.aws_endpoint + "/moto-api/reset", headers={"Origin": EVIL}).status_code == 403


def test_a_client_without_the_stacks_access_key_is_refused(stack: LocalStack) -> None:
    assert httpx.get(stack.aws_endpoint + "/?Action=ListQueues").status_code == 403
    assert httpx.post(stack.aws_endpoint + "/moto-api/reset").status_code == 403
    stranger = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    with pytest.raises(ClientError) as refused:
        stranger.client("sqs", endpoint_url=stack.aws_endpoint).list_queues()
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # The stack's own clients are served (the tables it made are there).
    assert stack.container is not None
    assert stack.container.settings.table_name in stack.container.client("dynamodb").list_tables()["TableNames"]


def test_presigned_links_the_stack_hands_out_still_work(stack: LocalStack) -> None:
    assert stack.container is not None
    store = stack.container.transcript_store
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("hello from the transcript")
    try:
        store.put_file("transcripts/t/transcript.txt", f.name, content_type="text/plain")
    finally:
        os.unlink(f.name)
    link = store.presign_get("transcripts/t/transcript.txt", expires_in=60, filename="t.txt")
    answer = httpx.get(link)
    assert answer.status_code == 200 and answer.text == "hello from the transcript"


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_works_with_the_dev_export_lines(stack: LocalStack) -> None:
    assert stack.container is not None
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {**keep, **stack.environment(), "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    listed = subprocess.run(
        ["aws", "dynamodb", "list-tables", "--output", "text"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert stack.container.settings.table_name in listed.stdout
