"""The retention policy (privacy policy section 7) in one place: data class -> window.

Every item written to the table belongs to one class. Classes with a fixed window get
`expires_at` (TTL, epoch seconds) stamped on write; account data gets it at workspace
closure. Items with a TTL also get `expiry_bucket`, the partition key of the sparse
`ByExpiry` index the daily sweep queries, so the sweep's cost grows with what expired,
never with the size of the table.
"""

from __future__ import annotations

import enum
import zlib
from datetime import UTC, datetime, timedelta

from relasify import clock
from relasify.settings import Settings, get_settings

# Shards per expiry day: spreads a day's expiring writes over several index partitions.
EXPIRY_SHARDS = 8


class DataClass(enum.StrEnum):
    MESSAGE_CONTENT = "message_content"  # messages, media, raw webhook payloads: 90 days
    USAGE = "usage"  # usage logs: 12 months
    SECURITY = "security"  # security log: 24 months
    BILLING = "billing"  # per-message billable events: 7 years
    ACCOUNT = "account"  # workspace, members, contacts: while active + 90 days after closure
    OPERATIONAL = "operational"  # short-lived working state (dedupe markers, cursors): own window


# How long an erasure tombstone (a keyed hash of an erased person's WhatsApp ids, no personal data)
# keeps old webhooks about that person from re-creating them: Meta retries a delivery for up to
# 7 days, and a delivery we received can wait up to 14 days in the webhook DLQ (its
# MessageRetentionPeriod in template.yaml; SQS keeps the original enqueue time) before a redrive.
# 7 + 14 days, plus a day of margin.
ERASURE_TOMBSTONE_WINDOW = timedelta(days=22)

# How long a user-deletion marker (a keyed hash of a deleted user's `sub`, no personal data) is kept.
# It must outlive every token the HTTP API's JWT authorizer can still accept from a sign-in made
# before the deletion. ID and access tokens live 60 minutes (template.yaml, UserPoolClient), but the
# 30-day refresh token keeps minting new ones that carry the ORIGINAL `auth_time` (what the marker is
# compared with): a refresh token obtained just before the deletion yields tokens valid until
# 30 days + 60 minutes after it. Deleting the Cognito user also kills its refresh tokens; the marker
# covers the case where that call failed. 30 days + 1 hour, rounded up to 31 days for clock skew.
USER_DELETION_MARKER_WINDOW = timedelta(days=31)


def window(data_class: DataClass, settings: Settings | None = None) -> timedelta | None:
    """The retention window of a class; `None` means "while the account is active"."""
    s = settings or get_settings()
    match data_class:
        case DataClass.MESSAGE_CONTENT:
            return timedelta(days=s.retention_message_days)
        case DataClass.USAGE:
            return timedelta(days=s.retention_usage_days)
        case DataClass.SECURITY:
            return timedelta(days=s.retention_security_days)
        case DataClass.BILLING:
            return timedelta(days=s.retention_billing_days)
        case DataClass.ACCOUNT:
            return None
        case DataClass.OPERATIONAL:
            # Dedupe markers must outlive Meta's 7-day webhook retry window.
            return timedelta(days=8)
    raise ValueError(data_class)  # pragma: no cover


def expires_at_for(
    data_class: DataClass, *, start: datetime | None = None, settings: Settings | None = None
) -> int | None:
    """TTL (epoch seconds) for an item of `data_class` written at `start` (default: now)."""
    span = window(data_class, settings)
    if span is None:
        return None
    return int(((start or clock.now()) + span).timestamp())


def closure_expires_at(closed_at: datetime, settings: Settings | None = None) -> int:
    s = settings or get_settings()
    return int((closed_at + timedelta(days=s.retention_account_after_closure_days)).timestamp())


def expiry_bucket(expires_at: int, key: str) -> str:
    """Partition key of the ByExpiry index: the expiry day plus a stable shard of the item key."""
    day = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d")
    shard = zlib.crc32(key.encode()) % EXPIRY_SHARDS
    return f"EXP#{day}#{shard}"


def is_expired(expires_at: int | None, at: int | None = None) -> bool:
    """Expired items are never returned, even before DynamoDB's TTL deletes them."""
    return expires_at is not None and expires_at <= (at if at is not None else clock.epoch())


def sweep_grace(settings: Settings | None = None) -> timedelta:
    """How long after expiry the sweep leaves an item to DynamoDB's free TTL deletion: the sweep
    is the hard deadline (an expired item is gone at most this long after its window, plus the
    wait for the next daily run), not the usual way out (reads hide expired items at once)."""
    return timedelta(days=(settings or get_settings()).retention_sweep_grace_days)


def sweep_cutoff(now: int, settings: Settings | None = None) -> int:
    """Epoch seconds: the sweep deletes items that expired at or before this moment."""
    return now - int(sweep_grace(settings).total_seconds())
