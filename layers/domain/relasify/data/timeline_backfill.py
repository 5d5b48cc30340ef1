"""One-off migration for a table written before the `Timeline` index (docs/DEPLOY.md).

Before it, thread items (messages and notes) were in GSI1 (`WS#<ws>#CONV#<cid>` / `<iso ts>#<mid>`),
whose ALL projection made every status update rewrite the entry. The code now writes them with
`TimelinePK`/`TimelineSK` (the same key values) and no GSI1 keys, and reads the thread through the
new index; a message is put once and never rewritten whole, so an item written before stays out of
the thread (and keeps costing its GSI1 entry on every status) until this runs. It walks the table
once (a parallel Scan: an operator's migration, not an access pattern) and, per message item still
carrying GSI1 keys, SETs `TimelinePK`, `TimelineSK` from them and REMOVEs them, conditional on the
GSI1 keys read (an item erased meanwhile is left alone). Nothing else changes (not `updated_at`).
Idempotent: a second run finds nothing to do. Run after the index is ACTIVE:

    AWS_DEFAULT_REGION=ap-southeast-3 TABLE_NAME=<table> PYTHONPATH=layers/domain \\
        python -m relasify.data.timeline_backfill [--segments 4]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from relasify.data import models as m
from relasify.data import table_scan
from relasify.data.base import connection
from relasify.settings import get_settings


def _scan(segment: int, segments: int) -> Iterator[dict[str, Any]]:
    """Message items still in GSI1 (only the attributes the migration needs)."""
    request: dict[str, Any] = {
        "FilterExpression": "#sk = :msg AND attribute_exists(GSI1PK)",
        "ProjectionExpression": "PK, #sk, GSI1PK, GSI1SK",
        "ExpressionAttributeNames": {"#sk": "SK"},
        "ExpressionAttributeValues": {":msg": {"S": m.MessageModel.SK_VALUE}},
    }
    return table_scan.scan(request, segment, segments)


def _migrate(item: dict[str, Any]) -> str:
    request = {
        "TableName": get_settings().table_name,
        "Key": {"PK": item["PK"], "SK": item["SK"]},
        "UpdateExpression": "SET TimelinePK = :pk, TimelineSK = :sk REMOVE GSI1PK, GSI1SK",
        "ConditionExpression": "GSI1PK = :pk AND GSI1SK = :sk",
        "ExpressionAttributeValues": {":pk": item["GSI1PK"], ":sk": item["GSI1SK"]},
    }
    try:
        connection().dispatch("UpdateItem", request)
    except ClientError as exc:
        if not table_scan.refused(exc):
            raise
        return "gone"  # erased (or migrated by another run) meanwhile
    return "message"


def _segment(segment: int, segments: int) -> Counter[str]:
    return Counter(_migrate(item) for item in _scan(segment, segments) if "GSI1SK" in item)


def backfill(*, segments: int = 4) -> Counter[str]:
    """Migrate every message item (parallel Scan segments); counts by outcome (`message`, `gone`)."""
    return table_scan.run_segments(_segment, segments)


def main(argv: list[str] | None = None) -> None:
    table_scan.command_line(__doc__, backfill, argv)


if __name__ == "__main__":
    main()
