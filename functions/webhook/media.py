"""MediaQueue consumer: copies inbound WhatsApp media to S3 `media/<ws>/<message id>` with the
workspace's token (Meta's download URLs live five minutes). Failed records are retried alone."""

from __future__ import annotations

import json
from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger
    from relasify.services import media_copy

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    job = json.loads(record.body)
    outcome = media_copy.copy_media(job["ws"], job["message_id"], job["media_id"])
    logger.info("media job done", extra={"message_id": job["message_id"], "outcome": outcome})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
