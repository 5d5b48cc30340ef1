"""moto's SQS refusing what SQS refuses: messages over the size limit, counted in bytes.

moto (5.2) measures a message body in characters against a 1 MiB default, and ignores message
attributes, so a SendMessage that SQS refuses passes locally: a webhook body of emoji, which
`json.dumps` escapes to 12 bytes each, made a 324 KB queue message that only AWS refused (issue 19).
`install()` makes every SendMessage and SendMessageBatch entry count as SQS counts it (the body's
UTF-8 bytes plus each message attribute's name, data type and value) and refuses one over
`SQS_MESSAGE_LIMIT_BYTES` with SQS's `InvalidParameterValue`, and a batch whose entries together
exceed it with `BatchRequestTooLong`. The domain checks the same limit before sending
(`relasify.data.webhook_inbox.SQS_MESSAGE_LIMIT_BYTES`); `tests/integration/test_webhook_queue_size.py`
keeps the two honest.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

# The SQS message size limit the product is written against (256 KiB, SQS's long-standing maximum
# and the MaximumMessageSize of queues created with it; a queue may allow more, never less).
SQS_MESSAGE_LIMIT_BYTES = 262_144

_installed: dict[str, Any] = {}


def message_size(body: str, attributes: Mapping[str, Any] | None = None) -> int:
    """The size SQS counts for a message: body bytes plus, per attribute, name, type and value bytes."""
    size = len(body.encode("utf-8"))
    for name, attribute in (attributes or {}).items():
        size += len(name.encode("utf-8"))
        data_type = attribute.get("DataType") or attribute.get("data_type") or ""
        size += len(str(data_type).encode("utf-8"))
        string_value = attribute.get("StringValue", attribute.get("string_value"))
        binary_value = attribute.get("BinaryValue", attribute.get("binary_value"))
        if string_value is not None:
            size += len(str(string_value).encode("utf-8"))
        elif isinstance(binary_value, bytes):
            size += len(binary_value)
        elif isinstance(binary_value, str):  # base64 on the wire
            size += len(base64.b64decode(binary_value))
    return size


def _too_long(size: int) -> Exception:
    from moto.sqs.exceptions import InvalidParameterValue

    return InvalidParameterValue(
        f"One or more parameters are invalid. Reason: Message must be shorter than {SQS_MESSAGE_LIMIT_BYTES} bytes."
        f" (message of {size} bytes)"
    )


def installed() -> bool:
    return "send_message" in _installed


def install() -> None:
    """Refuse oversize messages in every moto SQS backend of this process. Idempotent."""
    from moto.sqs.exceptions import BatchRequestTooLong
    from moto.sqs.models import SQSBackend

    if installed():
        return
    send_message = SQSBackend.send_message
    send_message_batch = SQSBackend.send_message_batch

    def checked_send_message(
        self: Any, queue_name: str, message_body: str, message_attributes: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        size = message_size(message_body, message_attributes)
        if size > SQS_MESSAGE_LIMIT_BYTES:
            raise _too_long(size)
        return send_message(self, queue_name, message_body, message_attributes, *args, **kwargs)

    def checked_send_message_batch(self: Any, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        sizes = [message_size(e["MessageBody"], e.get("MessageAttributes")) for e in entries.values()]
        for size in sizes:
            if size > SQS_MESSAGE_LIMIT_BYTES:
                raise _too_long(size)
        if sum(sizes) > SQS_MESSAGE_LIMIT_BYTES:
            raise BatchRequestTooLong(sum(sizes))
        return send_message_batch(self, queue_name, entries)

    _installed["send_message"] = send_message
    _installed["send_message_batch"] = send_message_batch
    SQSBackend.send_message = checked_send_message  # type: ignore[method-assign]
    SQSBackend.send_message_batch = checked_send_message_batch  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.sqs.models import SQSBackend

    if installed():
        SQSBackend.send_message = _installed.pop("send_message")  # type: ignore[method-assign]
        SQSBackend.send_message_batch = _installed.pop("send_message_batch")  # type: ignore[method-assign]
