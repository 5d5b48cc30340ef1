"""RealtimePublisher: DynamoDB Streams records of new change-feed items (the event source mapping
filters on the `CHG#` prefix and INSERT) pushed to the connected members of each workspace, and
fanned out to the workspace's outgoing webhooks (one queue job per subscription and event, SPEC 5c):
both fed from the same recorded item, so an event has one id everywhere. Thin: logic lives in
relasify.services.realtime and relasify.services.webhook_delivery. An error fails the batch: the mapping retries it
(bisecting), so a push may repeat; events are idempotent notifications (ids only)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from relasify.data.changes import from_stream_image
from relasify.observability import logger
from relasify.services import realtime, webhook_delivery
from relasify.settings import get_settings


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    events = []
    for record in event.get("Records") or []:
        if record.get("eventName") != "INSERT":
            continue  # TTL deletes and updates push nothing
        change = from_stream_image((record.get("dynamodb") or {}).get("NewImage") or {})
        if change is not None:
            events.append(change)
    # Webhook jobs first: enqueueing is one SQS call per ten jobs, and a failed push must not lose
    # them (the batch is retried whole: a job may repeat, with the same event id).
    jobs = webhook_delivery.fan_out(events)
    delivered = realtime.publish(events, get_settings().realtime_management_url)
    logger.info("realtime events pushed", extra={"events": len(events), "pushes": delivered, "webhook_jobs": jobs})
    return {"events": len(events), "pushes": delivered, "webhook_jobs": jobs}
