"""The dead-letter queues, read message by message for erasure (docs/PRIVACY.md).

SQS has no search: a queue is read by receiving its messages. `hold_all` receives every visible
message of a queue, hiding each for `HOLD_SECONDS` so the walk sees each once; the caller then
deletes the ones it must, and `release` makes the others visible again at once (a crash in between
lets them reappear when the hold runs out). A DLQ has no consumer: its messages wait for an
operator's redrive, so holding them briefly delays nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from relasify.data import aws_clients

HOLD_SECONDS = 60  # longer than one erasure request (API Gateway: 29 s)
RECEIVE_MAX = 10  # SQS ReceiveMessage and the *Batch calls take at most 10
# A DLQ is alarmed and normally empty; this bounds one erasure's work if one is not.
MAX_MESSAGES_PER_QUEUE = 2_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    queue_url: str
    receipt_handle: str
    body: str


def holds_messages(queue_url: str) -> bool:
    """Whether the queue holds any message (visible, held or delayed), by SQS's approximate counts:
    an empty DLQ, the usual case, costs erasure one GetQueueAttributes and no wait."""
    attributes = aws_clients.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return any(int(value) > 0 for value in attributes.values())


def hold_all(queue_url: str, *, limit: int = MAX_MESSAGES_PER_QUEUE) -> Iterator[DeadLetter]:
    """Every visible message of the queue (up to `limit`), each hidden for HOLD_SECONDS. Stops after a
    receive that finds nothing; that receive waits a second, so SQS asks every one of its hosts
    (a short poll samples only some of them and may answer empty while messages remain)."""
    sqs = aws_clients.client("sqs")
    seen = 0
    while seen < limit:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(RECEIVE_MAX, limit - seen),
            VisibilityTimeout=HOLD_SECONDS,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not got:
            return
        for message in got:
            seen += 1
            yield DeadLetter(queue_url, message["ReceiptHandle"], message["Body"])


def delete(letters: Iterable[DeadLetter]) -> None:
    for queue_url, batch in _batches(letters):
        _check(
            aws_clients.client("sqs").delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": letter.receipt_handle} for i, letter in enumerate(batch)],
            ),
            "delete",
        )


def release(letters: Iterable[DeadLetter]) -> None:
    """Make held messages visible again at once (they were not the erased person's)."""
    for queue_url, batch in _batches(letters):
        _check(
            aws_clients.client("sqs").change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                    for i, letter in enumerate(batch)
                ],
            ),
            "release",
        )


def put(queue_url: str, body: str) -> None:
    """Put a message in a DLQ: a dead letter rewritten without an erased person, or the webhook
    processor's pointer to a delivery that failed its last try."""
    aws_clients.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)


def _batches(letters: Iterable[DeadLetter]) -> Iterator[tuple[str, list[DeadLetter]]]:
    by_queue: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        by_queue.setdefault(letter.queue_url, []).append(letter)
    for queue_url, queued in by_queue.items():
        for start in range(0, len(queued), RECEIVE_MAX):
            yield queue_url, queued[start : start + RECEIVE_MAX]


def _check(response: dict, operation: str) -> None:
    failed = response.get("Failed") or []
    if failed:
        raise RuntimeError(f"SQS refused to {operation} {len(failed)} dead letters ({failed[0].get('Code')})")
