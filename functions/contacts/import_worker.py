"""ImportQueue consumer: runs a contact import job from its checkpoint (partial batch response: a
failing message fails only itself and is retried from the checkpoint)."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger
    from relasify.services import imports

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    imports.handle_queue_message(record.body, lambda_context.get_remaining_time_in_millis)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
