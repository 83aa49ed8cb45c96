"""The S3 ObjectCreated notification, as S3 sends it to SQS (one notification per message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class S3Object:
    """One object from an S3 ObjectCreated notification."""

    bucket: str
    key: str
    size: int = 0
    etag: str = ""
    version_id: str | None = None


def s3_objects(notification: dict[str, Any]) -> list[S3Object]:
    """The created objects of one S3 notification (an SQS message body); `s3:TestEvent` → []."""
    found = []
    for record in notification.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        found.append(
            S3Object(
                bucket=s3["bucket"]["name"],
                # Keys arrive URL-encoded with "+" for spaces.
                key=unquote_plus(obj["key"]),
                size=int(obj.get("size", 0)),
                etag=str(obj.get("eTag", "")),
                version_id=obj.get("versionId") or None,
            )
        )
    return found
