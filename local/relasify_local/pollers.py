"""Local SQS event source mappings: poll a queue, invoke the worker with SQS events, delete what succeeded.

Semantics follow Lambda's SQS integration: a batch of up to `BatchSize` records; with
`ReportBatchItemFailures` only the successful messages are deleted and the failed ones
become visible again after the visibility timeout; an exception (or a malformed failure
report) fails the whole batch. Redrive to the DLQ after `maxReceiveCount` receives is
SQS's own behaviour (moto applies it on receive).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from relasify_local.aws import LocalQueue, LocalResources
from relasify_local.runtime import REGION, LocalFunction, log_invocation_error

logger = logging.getLogger("relasify_local")

SQS_RECEIVE_LIMIT = 10  # SQS returns at most 10 messages per ReceiveMessage call


@dataclass(frozen=True)
class BatchOutcome:
    received: int
    deleted: int
    failed: int


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One SQS message as a Lambda SQS event record."""
    attributes = {key: str(value) for key, value in (message.get("Attributes") or {}).items()}
    message_attributes = {}
    for name, attribute in (message.get("MessageAttributes") or {}).items():
        binary = attribute.get("BinaryValue")
        message_attributes[name] = {
            "stringValue": attribute.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": list(attribute.get("StringListValues") or []),
            "binaryListValues": list(attribute.get("BinaryListValues") or []),
            "dataType": attribute.get("DataType", "String"),
        }
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def failed_message_ids(result: Any, message_ids: set[str]) -> set[str]:
    """Message ids Lambda would treat as failed from a `batchItemFailures` response."""
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failures = result["batchItemFailures"]
    identifiers = {str(item.get("itemIdentifier") or "") for item in failures if isinstance(item, dict)}
    if len(identifiers) != len(failures) or not identifiers <= message_ids:
        # Lambda fails the whole batch when the report names an unknown or empty identifier.
        return set(message_ids)
    return identifiers


class SqsPoller:
    def __init__(
        self,
        function: LocalFunction,
        queue: LocalQueue,
        sqs_client: Any,
        *,
        batch_size: int = 10,
        report_batch_item_failures: bool = False,
        wait_seconds: int = 1,
    ) -> None:
        self.function = function
        self.queue = queue
        self.sqs = sqs_client
        self.batch_size = max(1, batch_size)
        self.report_batch_item_failures = report_batch_item_failures
        self.wait_seconds = wait_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _receive_batch(self, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            response = self.sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=min(SQS_RECEIVE_LIMIT, self.batch_size - len(messages)),
                WaitTimeSeconds=wait_seconds if not messages else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages") or []
            messages.extend(received)
            if len(received) < SQS_RECEIVE_LIMIT:
                break
        return messages

    def poll_once(self, wait_seconds: int | None = None) -> BatchOutcome:
        """Receive one batch, invoke the function with it, and delete the messages that succeeded."""
        messages = self._receive_batch(self.wait_seconds if wait_seconds is None else wait_seconds)
        if not messages:
            return BatchOutcome(0, 0, 0)
        event = {"Records": [sqs_record(message, self.queue.arn) for message in messages]}
        message_ids = {message["MessageId"] for message in messages}
        try:
            result = self.function.invoke(event)
        except Exception as exc:
            log_invocation_error(self.function, exc)
            failed = set(message_ids)
        else:
            failed = failed_message_ids(result, message_ids) if self.report_batch_item_failures else set()
        succeeded = [message for message in messages if message["MessageId"] not in failed]
        self._delete(succeeded)
        if failed:
            logger.info("%s: %d of %d messages failed", self.function.logical_id, len(failed), len(messages))
        return BatchOutcome(len(messages), len(succeeded), len(failed))

    def _delete(self, messages: Iterable[dict[str, Any]]) -> None:
        batch = list(messages)
        for start in range(0, len(batch), SQS_RECEIVE_LIMIT):
            chunk = batch[start : start + SQS_RECEIVE_LIMIT]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome = self.poll_once()
            except Exception:
                logger.exception("poller for %s failed; retrying", self.queue.name)
                self._stop.wait(1.0)
                continue
            if outcome.received == 0 and self.wait_seconds == 0:
                self._stop.wait(0.2)

    def start(self) -> None:
        name = f"relasify-poller-{self.function.logical_id}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)


def pollers_from_functions(
    functions: dict[str, LocalFunction], resources: LocalResources, sqs_client: Any
) -> list[SqsPoller]:
    """One poller per SQS event of every function, configured from the template event's properties."""
    pollers = []
    for function in functions.values():
        for event_name, props in function.events_of_type("SQS").items():
            queue = resources.queue_by_arn_reference(props.get("Queue"))
            if queue is None:
                logger.warning(
                    "%s.%s: queue %r not found; not polled", function.logical_id, event_name, props.get("Queue")
                )
                continue
            pollers.append(
                SqsPoller(
                    function,
                    queue,
                    sqs_client,
                    batch_size=int(props.get("BatchSize") or 10),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                )
            )
    return pollers
