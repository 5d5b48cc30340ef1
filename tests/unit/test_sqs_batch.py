"""SQS partial batch responses (relasify.web.sqs_batch): the answers Powertools' BatchProcessor gave."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError, UnexpectedBatchTypeError
from relasify.web.sqs_batch import QueueRecord, process_partial_response


def _event(*bodies: str) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{n}", "body": body} for n, body in enumerate(bodies)]}


def _fail_on_bad(record: QueueRecord) -> None:
    if record.body == "bad":
        raise ValueError("bad record")


def test_every_record_is_handled_and_only_the_failed_ones_are_reported() -> None:
    seen: list[tuple[str, str]] = []

    def handle(record: QueueRecord) -> None:
        seen.append((record.message_id, record.body))
        _fail_on_bad(record)

    response = process_partial_response(_event("ok", "bad", "ok", "bad"), handle)

    assert seen == [("m0", "ok"), ("m1", "bad"), ("m2", "ok"), ("m3", "bad")]
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}


def test_a_batch_without_failures_reports_none() -> None:
    assert process_partial_response(_event("ok", "ok"), _fail_on_bad) == {"batchItemFailures": []}


def test_a_batch_whose_every_record_failed_raises_powertools_error() -> None:
    with pytest.raises(BatchProcessingError) as raised:
        process_partial_response(_event("bad", "bad"), _fail_on_bad)
    assert len(raised.value.child_exceptions) == 2


def test_a_batch_whose_every_record_failed_is_reported_when_asked() -> None:
    response = process_partial_response(_event("bad"), _fail_on_bad, raise_on_entire_batch_failure=False)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": "not a list"}])
def test_an_event_without_records_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(UnexpectedBatchTypeError):
        process_partial_response(event, _fail_on_bad)
