"""WebhookDelivery: one attempt per OutgoingWebhookQueue message (SPEC 5c), partial batch failures.
Thin: logic lives in relasify.services.webhook_delivery. A failed attempt is not a failed record:
the service re-enqueues it with a delay; only faults of ours (store errors) fail the record."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger
    from relasify.services import webhook_delivery

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    outcomes = dict(
        zip(
            (record.get("messageId") for record in records),
            webhook_delivery.deliver_all([record.get("body") or "" for record in records]),
            strict=True,
        )
    )

    def record_handler(record: SQSRecord) -> None:
        outcome = outcomes[record.message_id]
        if isinstance(outcome, Exception):
            raise outcome

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
