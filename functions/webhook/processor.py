"""WebhookQueue consumer: applies queued WhatsApp webhooks. A failing record fails only itself
(partial batch response); every effect is idempotent, so its retry is safe."""

from __future__ import annotations

from typing import Any

from relasify.cold_start import collector_paused

with collector_paused():  # the imports below, without collector passes (relasify.cold_start)
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from relasify.observability import logger
    from relasify.services import webhook, webhook_last_try
    from relasify.services.webhook_batch import invocation_reads

# A batch whose every record failed is reported like any other (not raised as an invocation error):
# the last-try parking below must run for it too. SQS retries the failed records either way.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    routes = invocation_reads(event.get("Records", []))  # this invocation's routes and reads, shared by its records
    discards = webhook.RawDiscards()  # processed records' raw copies, deleted together below

    def record_handler(record: SQSRecord) -> None:
        summary = webhook.process_queued_webhook(
            record.body, routes=routes, discard_raw=discards.deferrer(record.message_id)
        )
        logger.info("webhook processed", extra={"message_id": record.message_id, "outcomes": summary.counts})

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # A record is done only once its raw copy is deleted: one whose copy could not be deleted is
    # reported failed, so SQS redelivers it and the (idempotent) retry deletes it again.
    failures = response.setdefault("batchItemFailures", [])
    records = event.get("Records", [])
    failed_ids = {failure["itemIdentifier"] for failure in failures}
    failed = {r["messageId"]: r.get("body", "") for r in records if r.get("messageId") in failed_ids}
    for record_id in discards.flush(failed):
        logger.warning("raw webhook copy not deleted; record retried", extra={"message_id": record_id})
        failures.append({"itemIdentifier": record_id})
    # After the discards: a parked copy is never one this batch deletes. Parked records are done.
    parked = webhook_last_try.park_last_tries(records, {f["itemIdentifier"] for f in failures})
    response["batchItemFailures"] = [f for f in failures if f["itemIdentifier"] not in parked]
    return response
