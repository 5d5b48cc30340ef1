"""One-off migration for a table written before the `InboxByStatus` index (docs/DEPLOY.md).

Before it, conversations were in GSI1 (`WS#<ws>#INBOX#<status>` / `<iso last activity>#<cid>`) and,
unless resolved, GSI2 (by assignee), and contacts in GSI1/GSI2 (phone and name prefixes). The code
now writes conversations with `InboxPK`/`InboxSK` (the same key values as their GSI1 entry) and no
GSI1/GSI2 keys, and contacts with none; each item migrates itself at its next full write, but a
conversation with no new activity would stay out of the inbox until then. This walks the table once
(a parallel Scan: an operator's migration, not an access pattern) and, per item:
- a conversation without `InboxPK`: SET `InboxPK`, `InboxSK` from its GSI1 keys, REMOVE the GSI1/GSI2
  keys, conditional on the `version` read (a concurrent write re-reads it; a write that won already
  carries the new keys);
- a contact with GSI1/GSI2 keys: REMOVE them.
Idempotent: a second run finds nothing to do. Run after the index is ACTIVE:

    AWS_DEFAULT_REGION=ap-southeast-3 TABLE_NAME=<table> PYTHONPATH=layers/domain \\
        python -m relasify.data.inbox_backfill [--segments 4]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from relasify.data import conversation_state, table_scan
from relasify.data import models as m
from relasify.data.base import connection
from relasify.settings import get_settings

_LEGACY_KEYS = ("GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
_ATTEMPTS = 5


def _scan(segment: int, segments: int) -> Iterator[dict[str, Any]]:
    """Conversations and contacts still carrying a legacy index key, or a conversation without its
    inbox key (only the attributes the migration needs)."""
    request: dict[str, Any] = {
        "FilterExpression": "(#sk = :conv AND attribute_not_exists(InboxPK)) OR "
        "(begins_with(#sk, :contact) AND (attribute_exists(GSI1PK) OR attribute_exists(GSI2PK)))",
        "ProjectionExpression": "PK, #sk, GSI1PK, GSI1SK, GSI2PK, version",
        "ExpressionAttributeNames": {"#sk": "SK"},
        "ExpressionAttributeValues": {
            ":conv": {"S": m.ConversationModel.SK_VALUE},
            ":contact": {"S": m.ContactModel.SK_PREFIX},
        },
    }
    return table_scan.scan(request, segment, segments)


def _read(key: dict[str, Any]) -> dict[str, Any] | None:
    request = {"TableName": get_settings().table_name, "Key": key, "ConsistentRead": True}
    return connection().dispatch("GetItem", request).get("Item")


def _inbox_keys(item: dict[str, Any]) -> tuple[str, str]:
    """The inbox key of a conversation: its GSI1 key (the same values), else computed as the code does."""
    if "GSI1PK" in item and "GSI1SK" in item:
        return item["GSI1PK"]["S"], item["GSI1SK"]["S"]
    stored = conversation_state.to_record(
        m.ConversationModel.get(item["PK"]["S"], item["SK"]["S"], consistent_read=True)
    )
    return m.inbox_pk(stored.ws, stored.status), conversation_state.activity_sort_key(stored)


def _migrate_conversation(item: dict[str, Any]) -> str:
    key = {"PK": item["PK"], "SK": item["SK"]}
    for _ in range(_ATTEMPTS):
        if "InboxPK" in item:
            return "done-by-a-write"
        pk, sk = _inbox_keys(item)
        version = item.get("version", {"N": "0"})
        request = {
            "TableName": get_settings().table_name,
            "Key": key,
            "UpdateExpression": "SET InboxPK = :pk, InboxSK = :sk REMOVE " + ", ".join(_LEGACY_KEYS),
            "ConditionExpression": "version = :v AND attribute_not_exists(InboxPK)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":sk": {"S": sk}, ":v": version},
        }
        try:
            connection().dispatch("UpdateItem", request)
            return "conversation"
        except ClientError as exc:
            if not table_scan.refused(exc):
                raise
        fresh = _read(key)
        if fresh is None:
            return "gone"
        item = fresh
    return "busy"


def _migrate_contact(item: dict[str, Any]) -> str:
    request = {
        "TableName": get_settings().table_name,
        "Key": {"PK": item["PK"], "SK": item["SK"]},
        "UpdateExpression": "REMOVE " + ", ".join(_LEGACY_KEYS),
        "ConditionExpression": "attribute_exists(PK)",
    }
    try:
        connection().dispatch("UpdateItem", request)
    except ClientError as exc:
        if not table_scan.refused(exc):
            raise
        return "gone"  # deleted meanwhile: nothing to migrate
    return "contact"


def _segment(segment: int, segments: int) -> Counter[str]:
    done: Counter[str] = Counter()
    for item in _scan(segment, segments):
        if item["SK"]["S"] == m.ConversationModel.SK_VALUE:
            done[_migrate_conversation(item)] += 1
        else:
            done[_migrate_contact(item)] += 1
    return done


def backfill(*, segments: int = 4) -> Counter[str]:
    """Migrate every item (parallel Scan segments); counts by outcome (`conversation`, `contact`,
    `done-by-a-write`, `gone`, `busy`: kept changing, run again)."""
    return table_scan.run_segments(_segment, segments)


def main(argv: list[str] | None = None) -> None:
    table_scan.command_line(__doc__, backfill, argv)


if __name__ == "__main__":
    main()
