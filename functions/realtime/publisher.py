"""RealtimePublisher: DynamoDB Streams records of new change-feed items (the event source mapping
filters on the `CHG#` prefix and INSERT) pushed to the connected members of each workspace. Thin:
logic lives in relasify.services.realtime. An error fails the batch: the mapping retries it
(bisecting), so a push may repeat; events are idempotent notifications (ids only)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from relasify.data.changes import from_stream_image
from relasify.observability import logger
from relasify.services import realtime
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
    delivered = realtime.publish(events, get_settings().realtime_management_url)
    logger.info("realtime events pushed", extra={"events": len(events), "pushes": delivered})
    return {"events": len(events), "pushes": delivered}
