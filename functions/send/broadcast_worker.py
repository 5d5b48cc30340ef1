"""BroadcastWorker: runs broadcast jobs from the BroadcastQueue (partial batch failures)."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger, metrics
    from relasify.services import broadcast_pipeline

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The batch's jobs run together (a chunk's sends overlap the next chunk's, see run_jobs); the
    # processor then reports each record's outcome, so only the failed ones are retried.
    records = event.get("Records") or []
    outcomes = dict(
        zip(
            (record.get("messageId") for record in records),
            broadcast_pipeline.run_jobs(
                [record.get("body") or "" for record in records],
                seconds_left=context.get_remaining_time_in_millis() / 1000,
            ),
            strict=True,
        )
    )

    def record_handler(record: SQSRecord) -> None:
        outcome = outcomes[record.message_id]
        if isinstance(outcome, Exception):
            raise outcome
        logger.info("broadcast job done", extra={"outcome": outcome})

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
