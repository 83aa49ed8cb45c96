"""Our bucket: streamed uploads, presigned URLs, small reads."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from fluxrelay.adapters.aws import client as aws_client


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
