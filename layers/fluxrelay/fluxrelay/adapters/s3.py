"""Our bucket: streamed outputs, presigned URLs, small reads, and the upload tickets."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import LazyClient, error_code
from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.domain.errors import InvalidRequestError


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of chunks, so upload_fileobj can stream it (multipart
    for large bodies) without the whole object in memory."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self.total += n
        return n


class S3OutputStore:
    """`OutputStore` on S3 (server-side encryption is the bucket default)."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self._bucket = bucket
        self._client = client or aws_client("s3")

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        reader = _ChunkReader(chunks)
        self._client.upload_fileobj(
            io.BufferedReader(reader), self._bucket, key, ExtraArgs={"ContentType": content_type}
        )
        return reader.total

    def presigned_get(self, key: str, expires_in: int) -> str:
        return str(
            self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
            )
        )

    def read(self, key: str) -> bytes:
        return bytes(self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read())


# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str
    etag: str
    version_id: str | None


class S3UploadStore:
    """`UploadStore` on S3: presigned PUT/GET for uploads, and cheap reads of what arrived."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = LazyClient("s3", client)

    def presigned_put(
        self, key: str, content_type: str, content_length: int | None, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL whose signature covers Content-Type (and Content-Length when given); the
        uploader must send exactly the returned headers, or S3 answers 403 SignatureDoesNotMatch."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        headers = {"Content-Type": content_type}
        if content_length is not None:
            params["ContentLength"] = content_length
            headers["Content-Length"] = str(content_length)
        url = self._client.made.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return str(url), headers

    def presigned_get(self, key: str, expires_in: int) -> str:
        return str(
            self._client.made.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        )

    def head(self, key: str) -> ObjectInfo | None:
        try:
            out = self._client.made.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            size=int(out["ContentLength"]),
            content_type=str(out.get("ContentType", "")),
            etag=str(out.get("ETag", "")).strip('"'),
            version_id=out.get("VersionId"),
        )

    def read_head(self, key: str, length: int) -> bytes:
        """The first `length` bytes (fewer if the object is smaller)."""
        out = self._client.made.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{max(length, 1) - 1}")
        return bytes(out["Body"].read())

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The whole object, or None when it does not exist; refuses objects above `max_bytes`."""
        try:
            out = self._client.made.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        if int(out["ContentLength"]) > max_bytes:
            out["Body"].close()
            raise InvalidRequestError(f"{key} is larger than {max_bytes} bytes")
        return bytes(out["Body"].read())

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._client.made.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
