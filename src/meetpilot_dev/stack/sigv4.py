"""The local gateway's AWS_IAM authoriser: checks a request's SigV4 signature (service execute-api)
the way API Gateway does, by recomputing it with botocore's own signer and comparing.

    identity = SigV4Verifier({"local": "local"}, region="us-east-1").verify(method, target, headers, body)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=15)  # API Gateway's window for X-Amz-Date
ACCOUNT_ID = "123456789012"
_HOW = "sign requests with SigV4 for service execute-api (the meetpilot CLI does)"


class SignatureRejected(Exception):
    """The request is not signed, or not signed by a known key; the message never echoes a secret."""


@dataclass(frozen=True)
class Identity:
    access_key: str

    def as_authorizer(self) -> dict[str, Any]:
        """``requestContext.authorizer`` as API Gateway fills it for an IAM-authorised route."""
        return {
            "iam": {
                "accessKey": self.access_key,
                "accountId": ACCOUNT_ID,
                "callerId": self.access_key,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/{self.access_key}",
                "userId": self.access_key,
            }
        }


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureRejected(f"the Authorization header is not {ALGORITHM}; {_HOW}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, content = part.strip().partition("=")
        if sep:
            fields[name] = content
    if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        raise SignatureRejected("the Authorization header lacks Credential, SignedHeaders or Signature")
    return fields


class SigV4Verifier:
    def __init__(self, keys: Mapping[str, str], *, region: str, service: str = SERVICE) -> None:
        self._keys = dict(keys)  # access key id -> secret key
        self._region = region
        self._service = service

    def verify(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Identity:
        """The caller's identity, or SignatureRejected saying what is wrong with the signature."""
        lowered = {k.lower(): v for k, v in headers.items()}
        authorization = lowered.get("authorization")
        if not authorization:
            raise SignatureRejected(f"this route needs a signed request; {_HOW}")
        fields = _parse_authorization(authorization)
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise SignatureRejected("the credential scope is malformed")
        access_key, day, region, service = scope[:4]
        secret = self._keys.get(access_key)
        if secret is None:
            raise SignatureRejected("the access key is not one of the local stack's; use the credentials in .meetpilot")
        if region != self._region or service != self._service:
            raise SignatureRejected(f"sign for region {self._region} and service {self._service}")

        stamp = lowered.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise SignatureRejected("X-Amz-Date is missing or not in the form 20260101T120000Z") from None
        if stamp[:8] != day:
            raise SignatureRejected("the credential scope's date is not the day of X-Amz-Date")
        if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
            raise SignatureRejected("the signature has expired (X-Amz-Date is over 15 minutes off); sign it again")

        signed = [name for name in fields["SignedHeaders"].split(";") if name]
        if "host" not in signed or "x-amz-date" not in signed:
            raise SignatureRejected("the signature must cover the host and x-amz-date headers")
        missing = [name for name in signed if name not in lowered]
        if missing:
            raise SignatureRejected(f"signed headers are missing from the request: {', '.join(missing)}")
        declared_hash = lowered.get("x-amz-content-sha256")
        if declared_hash is not None and not hmac.compare_digest(declared_hash, hashlib.sha256(body).hexdigest()):
            raise SignatureRejected("X-Amz-Content-SHA256 is not the SHA-256 of the body")

        request = AWSRequest(
            method=method.upper(),
            url=f"http://{lowered['host']}{target}",
            data=body,
            headers={name: lowered[name] for name in signed},
        )
        request.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(access_key, secret, lowered.get("x-amz-security-token")), service, region)
        chosen = signer.headers_to_sign(request)
        if signer.signed_headers(chosen) != ";".join(sorted(signed)):
            raise SignatureRejected("SignedHeaders names headers a SigV4 signer never signs")
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise SignatureRejected(
                "the signature does not match this request: sign the exact method, path, query, headers "
                "and body sent, with the local stack's credentials"
            )
        return Identity(access_key)
