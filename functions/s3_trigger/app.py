"""S3 → SQS → img2img jobs: one SQS message per S3 notification, partial batch failures.

Each message is handled on its own (`UploadService.ingest`): a message that fails (unreadable
body, a transient AWS or upstream error) is reported back to SQS alone (`batchItemFailures`, the
event source mapping has `ReportBatchItemFailures`), is redelivered, and ends in the DLQ after the
queue's maxReceiveCount; the other messages of the batch are done. Redelivery is safe: one object
version gives at most one upstream submission.

The loop is ours rather than Powertools' batch utility: that utility imports the event class of
every AWS event source (its `data_classes` package) at each cold start, for what is a try/except
per message here.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.models.s3events import s3_objects
from fluxrelay.observability import logger, metrics


class BatchFailedError(Exception):
    """Every message of the batch failed: the invocation fails, as Powertools' batch utility
    makes it, and the whole batch goes back to the queue (the same as reporting each message)."""


def ingest_message(body: str) -> None:
    # A body that is not JSON raises here: that message fails alone and ends in the DLQ.
    notification = json.loads(body)
    service = composition.container().uploads
    for obj in s3_objects(notification):
        outcome = service.ingest(obj)
        logger.info("s3 object handled", extra={"key": obj.key, "outcome": outcome})
        metrics.add_metric(name=f"Img2Img{outcome.capitalize()}", unit="Count", value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        message_id = record["messageId"]
        try:
            ingest_message(record["body"])
        except Exception:  # a true boundary: whatever failed, only this message is retried
            logger.exception("message failed; SQS delivers it again", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    if failures and len(failures) == len(event["Records"]):
        raise BatchFailedError(f"all {len(failures)} messages failed; each error is logged above")
    return {"batchItemFailures": failures}
