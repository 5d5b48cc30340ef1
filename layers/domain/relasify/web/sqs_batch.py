"""SQS partial batch responses for the queue workers, answered as Powertools' `BatchProcessor`
(EventType.SQS) with `process_partial_response` answers them: each record is handled alone, a failed
one is reported in `batchItemFailures` (SQS retries only it), and a batch whose every record failed
raises Powertools' `BatchProcessingError` unless the caller reports it like any other.

Why not Powertools' batch utility itself: importing it loads asyncio (for its async processor) and
every Powertools event data class (its package imports them all), about 0.3 of the cold start
baseline (boto3 + a DynamoDB client) in each queue worker that uses none of them (bench cold_start).
Its exceptions are still the ones raised, imported on the failure path only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

_ExceptionInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


@dataclass(frozen=True)
class QueueRecord:
    """One SQS record of the event, as the record handler sees it."""

    raw: Mapping[str, Any]

    @property
    def message_id(self) -> str:
        message_id: str = self.raw["messageId"]
        return message_id

    @property
    def body(self) -> str:
        body: str = self.raw["body"]
        return body


def process_partial_response(
    event: Mapping[str, Any],
    record_handler: Callable[[QueueRecord], object],
    *,
    raise_on_entire_batch_failure: bool = True,
) -> dict[str, list[dict[str, str]]]:
    """Handle every record of an SQS event; answer the failed ones' ids (`batchItemFailures`)."""
    records = event.get("Records", [])
    if not records or not isinstance(records, list):
        from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError

        raise UnexpectedBatchTypeError("Invalid SQS event: expected a non-empty list in 'Records'.")
    failed: list[QueueRecord] = []
    exceptions: list[_ExceptionInfo] = []
    for raw in records:
        record = QueueRecord(raw)
        try:
            record_handler(record)
        except Exception:  # a failed record fails only itself: SQS retries it alone
            failed.append(record)
            exceptions.append(sys.exc_info())
    if failed and len(failed) == len(records) and raise_on_entire_batch_failure:
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        raise BatchProcessingError(
            msg=f"All records failed processing. {len(exceptions)} individual errors logged separately below.",
            child_exceptions=exceptions,
        )
    return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record in failed]}
