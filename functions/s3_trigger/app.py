"""S3 → SQS → img2img jobs: one SQS message per S3 notification, partial batch failures.

Each record is handled on its own (`UploadService.ingest`): a message that fails (unreadable
body, a transient AWS or upstream error) is reported back to SQS alone, is redelivered, and ends
in the DLQ after the queue's maxReceiveCount; the other messages of the batch are done.
Redelivery is safe: one object version gives at most one upstream submission.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.models.s3events import s3_objects
from fluxrelay.observability import logger, metrics

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    # A body that is not JSON raises here: that message fails alone and ends in the DLQ.
    notification = json.loads(record.body)
    service = composition.container().uploads
    for obj in s3_objects(notification):
        outcome = service.ingest(obj)
        logger.info("s3 object handled", extra={"key": obj.key, "outcome": outcome})
        metrics.add_metric(name=f"Img2Img{outcome.capitalize()}", unit="Count", value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
