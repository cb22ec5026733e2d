"""A small client of the management API that signs every request with SigV4 (service execute-api).

It finds the API of a running ``meetpilot dev`` (from its state file) or of a deployed stack (the
``ManagementApiUrl`` output, read with the caller's own AWS credentials):

    api = ManagementClient.for_dev()            # or ManagementClient.for_stack("meetpilot")
    page = api.get("/v1/sessions", params={"status": "done"})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from meetpilot.errors import MeetpilotError
from meetpilot_dev.dev_state import read_state

API_URL_OUTPUT = "ManagementApiUrl"


class ApiError(MeetpilotError):
    """The API answered with an error status; ``message`` is its explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ManagementClient:
    def __init__(self, base_url: str, credentials: Any, region: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials  # botocore Credentials (refreshable ones are frozen per request)
        self._region = region
        self._http = httpx.Client(timeout=timeout)

    # --- finding the API ------------------------------------------------------------------------

    @classmethod
    def for_dev(cls, state: Mapping[str, Any] | None = None) -> ManagementClient:
        """The API of the running ``meetpilot dev`` (FileNotFoundError when none runs here)."""
        state = state if state is not None else read_state()
        env = state["environment"]
        credentials = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
        return cls(state["gateway"], credentials, env["AWS_DEFAULT_REGION"])

    @classmethod
    def for_stack(cls, stack_name: str, *, session: Any = None) -> ManagementClient:
        """The API of a deployed stack, signed with the caller's AWS credentials."""
        session = session or boto3.session.Session()
        outputs = stack_outputs(stack_name, session=session)
        url = outputs.get(API_URL_OUTPUT)
        if not url:
            raise MeetpilotError(f"stack {stack_name} has no {API_URL_OUTPUT} output; deploy this version of meetpilot")
        credentials = session.get_credentials()
        if credentials is None:
            raise MeetpilotError("no AWS credentials found; configure them as for the AWS CLI")
        region = api_region(url) or session.region_name
        return cls(url, credentials, region)

    # --- requests -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        """Send one signed request; return (status, decoded JSON). Raises ApiError for 4xx/5xx."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        # Encoded as SigV4 canonicalises it (every reserved character escaped), so the signed
        # query string and the one sent are the same bytes.
        url = self.base_url + path + ("?" + urlencode(query, quote_via=quote, safe="-_.~") if query else "")
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if body is not None else {}
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self._credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(signed)
        try:
            response = self._http.request(method, url, content=data, headers=dict(signed.headers.items()))
        except httpx.HTTPError as exc:
            raise ApiError(0, f"could not reach the management API at {self.base_url}: {exc}") from None
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        if response.status_code >= 400:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise ApiError(response.status_code, str(message or f"HTTP {response.status_code}"))
        return response.status_code, payload

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)[1]

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", path, body=body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body=body)[1]

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)[1]

    def download(self, url: str, sink: Any, *, progress: Any = None) -> int:
        """Stream a presigned URL's body into ``sink``; ``progress(done, total)`` after each chunk."""
        done = 0
        with self._http.stream("GET", url) as response:
            if response.status_code >= 400:
                raise ApiError(response.status_code, f"the download link answered HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0) or None
            for chunk in response.iter_bytes():
                sink.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        return done

    def close(self) -> None:
        self._http.close()


def stack_outputs(stack_name: str, *, session: Any = None) -> dict[str, str]:
    """A deployed stack's outputs, by key."""
    session = session or boto3.session.Session()
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise MeetpilotError(f"cannot read stack {stack_name}: {exc}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def api_region(url: str) -> str | None:
    """The region in an API Gateway URL (``https://<id>.execute-api.<region>.amazonaws.com``), else None.

    >>> api_region("https://abc123.execute-api.eu-west-1.amazonaws.com/")
    'eu-west-1'
    >>> api_region("http://127.0.0.1:8080") is None
    True
    """
    labels = (urlsplit(url).hostname or "").split(".")
    if len(labels) >= 5 and labels[1] == "execute-api" and labels[-2] == "amazonaws":
        return labels[2]
    return None


def quote_segment(value: str) -> str:
    """One path segment, escaped."""
    return quote(value, safe="-_.~")
