"""The S3 transcript store: files are streamed up (multipart for big ones), encrypted at rest."""

from __future__ import annotations

import os
from typing import Any

from boto3.s3.transfer import TransferConfig

from meetpilot.errors import MeetpilotError

# 8 MB parts, at most two in flight: bounded memory whatever the transcript size.
_TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
_TAG = "source-digest"  # user metadata (x-amz-meta-source-digest): what the object was made from


class StorageError(MeetpilotError):
    """S3 did not carry out a delete; the message says what it answered."""


class S3TranscriptStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def put_file(
        self,
        key: str,
        path: str,
        *,
        content_type: str,
        content_encoding: str | None = None,
        tag: str | None = None,
    ) -> None:
        """Upload ``path`` under ``key``; ``tag`` (if given) is kept in the object's metadata."""
        extra: dict[str, Any] = {"ContentType": content_type, "ServerSideEncryption": "AES256"}
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        if tag:
            extra["Metadata"] = {_TAG: tag}
        if os.path.getsize(path) < _TRANSFER.multipart_threshold:
            # One PutObject streamed from the file: the transfer manager's thread pool costs more
            # than a small file takes to send.
            with open(path, "rb") as body:
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            return
        self._s3.upload_file(path, self.bucket, key, ExtraArgs=extra, Config=_TRANSFER)

    def stored_tag(self, key: str) -> str | None:
        """The tag ``put_file`` kept on ``key`` (one HeadObject); None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # Without s3:ListBucket, S3 answers a missing key with 403 rather than 404. Either way
            # the caller uploads: a refused check costs a duplicate upload, never a lost one.
            if exc.response.get("Error", {}).get("Code") in ("403", "404", "NoSuchKey", "NotFound", "Forbidden"):
                return None
            raise
        tag = head.get("Metadata", {}).get(_TAG)
        return str(tag) if tag else None

    def delete_prefix(self, prefix: str) -> int:
        """Erase every version and every delete marker under ``prefix``; return how many went.

        The bucket is versioned, so a plain delete would only add a delete marker and keep the
        data. The listing is read whole before deleting (deleting while paging can skip entries),
        and read again until nothing is left; a refused delete is an error, never a silent leftover.
        """
        if not prefix or not prefix.endswith("/"):
            raise ValueError("refusing to delete without a folder-like prefix ending in '/'")
        erased = 0
        for _ in range(5):
            entries = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix)
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if not entries:
                return erased
            for start in range(0, len(entries), 1000):
                chunk = entries[start : start + 1000]
                resp = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
                errors = resp.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"S3 refused to delete {len(errors)} object version(s) under {prefix} "
                        f"({first.get('Code')}: {first.get('Message')}); run forget again"
                    )
                erased += len(chunk)
        raise StorageError(f"objects kept appearing under {prefix} while it was being erased; run forget again")

    def presign_get(self, key: str, *, expires_in: int, filename: str) -> str:
        """A time-limited GET link for one object, which browsers save as ``filename``.

        The link carries the signer's credentials' authority: on Lambda it stops working when
        either ``expires_in`` runs out or the function's session credentials expire.
        """
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=expires_in,
            )
        )
