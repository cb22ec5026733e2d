"""The S3 transcript store: files are streamed up (multipart for big ones), encrypted at rest."""

from __future__ import annotations

from typing import Any

from boto3.s3.transfer import TransferConfig

# 8 MB parts, at most two in flight: bounded memory whatever the transcript size.
_TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)


class S3TranscriptStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def put_file(self, key: str, path: str, *, content_type: str, content_encoding: str | None = None) -> None:
        extra: dict[str, str] = {"ContentType": content_type, "ServerSideEncryption": "AES256"}
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        self._s3.upload_file(path, self.bucket, key, ExtraArgs=extra, Config=_TRANSFER)
