"""pynamodb models of every item type in the single table (docs/DATA_MODEL.md).

Key builders live next to each model (`key(...)` classmethods / module functions) so the
key layout is written down once. Only repositories in `relasify.data` import this module;
services receive records (`relasify.data.records`), never these classes.
Field names are a contract with the other repositories: change them additively only.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from relasify.data.base import TableModel
from relasify.retention import DataClass

# ---------------------------------------------------------------------------------------------
# key prefixes


def ws_pk(ws: str) -> str:
    return f"WS#{ws}"


def user_pk(sub: str) -> str:
    return f"USER#{sub}"


def contact_unique_pk(ws: str, kind: str, value: str) -> str:
    return f"WS#{ws}#UNIQ#{kind}#{value}"


def contact_tag_pk(ws: str, tag: str) -> str:
    return f"WS#{ws}#TAG#{tag}"


def message_pk(ws: str, mid: str) -> str:
    return f"WS#{ws}#MSG#{mid}"


def conversation_pk(ws: str, cid: str) -> str:
    return f"WS#{ws}#CONV#{cid}"


def inbox_pk(ws: str, status: str) -> str:
    """The `InboxByStatus` partition of a workspace's conversations in one status."""
    return f"WS#{ws}#INBOX#{status}"


def wamid_pk(wamid: str) -> str:
    return f"WAMID#{wamid}"


def dedupe_pk(key: str) -> str:
    return f"DEDUPE#{key}"


def phone_route_pk(phone_number_id: str) -> str:
    return f"PHONEID#{phone_number_id}"


def broadcast_pk(ws: str, broadcast_id: str) -> str:
    return f"WS#{ws}#BCAST#{broadcast_id}"


def import_pk(ws: str, import_id: str) -> str:
    return f"WS#{ws}#IMPORT#{import_id}"


def export_pk(ws: str, export_id: str) -> str:
    return f"WS#{ws}#EXPORT#{export_id}"


def imports_index_pk(ws: str) -> str:
    """GSI1 partition listing a workspace's import jobs (the closure stamp walks it)."""
    return f"WS#{ws}#IMPORTS"


def broadcasts_index_pk(ws: str) -> str:
    """GSI1 partition listing a workspace's broadcasts."""
    return f"WS#{ws}#BCASTS"


def erasure_tombstone_pk(ws: str, digest: str) -> str:
    return f"WS#{ws}#ERASED#{digest}"


def deleted_user_pk(digest: str) -> str:
    return f"DELETED_USER#{digest}"


def audit_pk(ws: str | None, day: str) -> str:
    """Workspace audit partition, or the day's security partition when there is no workspace."""
    return f"WS#{ws}#AUDIT" if ws else f"SECURITY#{day}"


def usage_pk(ws: str | None, day: str) -> str:
    return f"USAGE#{ws or '-'}#{day}"


def billing_pk(ws: str, month: str) -> str:
    return f"WS#{ws}#BILLING#{month}"


def billing_sk(wamid: str) -> str:
    """A billing record's key: the SHA-256 of the wamid, never the wamid itself (a wamid encodes the
    recipient's phone number, and billing records outlive an erasure by 7 years). One record per
    wamid as before; the wamid's random part makes the digest impossible to reverse from a phone."""
    return "WAMID_SHA256#" + hashlib.sha256(wamid.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# identity and tenancy


class UserModel(TableModel):
    """PK `USER#<sub>`, SK `PROFILE`; GSI1 `EMAIL#<email>` / `USER`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "PROFILE"

    sub = UnicodeAttribute()
    email = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    picture = UnicodeAttribute(null=True)


class WorkspaceModel(TableModel):
    """PK `WS#<ws>`, SK `META`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "META"

    ws_id = UnicodeAttribute()
    name = UnicodeAttribute()
    status = UnicodeAttribute(default="active")  # active | closed
    closed_at = UTCDateTimeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)
    # Maintained in the same transactions that add/demote/remove owners, so the
    # "last owner cannot be removed or demoted" rule holds under concurrent requests.
    owner_count = NumberAttribute(default=0)


class MembershipModel(TableModel):
    """PK `WS#<ws>`, SK `MEMBER#<sub>`; GSI1 `USER#<sub>` / `WS#<ws>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_PREFIX: ClassVar[str] = "MEMBER#"

    ws_id = UnicodeAttribute()
    sub = UnicodeAttribute()
    role = UnicodeAttribute()  # owner | admin | agent
    email = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    # Denormalised so "list my workspaces" is one GSI1 Query.
    workspace_name = UnicodeAttribute(null=True)
    added_by = UnicodeAttribute(null=True)


class InvitationModel(TableModel):
    """PK `WS#<ws>`, SK `INVITE#<email>`; GSI1 `INVITE#<email>` / `WS#<ws>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_PREFIX: ClassVar[str] = "INVITE#"

    ws_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    invited_by = UnicodeAttribute(null=True)
    workspace_name = UnicodeAttribute(null=True)


class WhatsAppConnectionModel(TableModel):
    """PK `WS#<ws>`, SK `WHATSAPP`. The access token is stored only as KMS ciphertext (base64)."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "WHATSAPP"

    ws_id = UnicodeAttribute()
    waba_id = UnicodeAttribute()
    phone_number_id = UnicodeAttribute()
    display_phone_number = UnicodeAttribute(null=True)
    encrypted_access_token = UnicodeAttribute()  # base64 KMS ciphertext, never the plaintext
    token_status = UnicodeAttribute(default="valid")  # valid | invalid | expired
    quality_rating = UnicodeAttribute(null=True)  # GREEN | YELLOW | RED | UNKNOWN
    messaging_limit = UnicodeAttribute(null=True)  # e.g. TIER_1K
    restrictions = ListAttribute(null=True)  # account_update restriction_info, as Meta sends it
    account_status = UnicodeAttribute(null=True)  # last account_update event (e.g. ACCOUNT_RESTRICTION)
    throughput_per_second = NumberAttribute(null=True)
    connected_by = UnicodeAttribute(null=True)


class PhoneRouteModel(TableModel):
    """PK `PHONEID#<phone_number_id>`, SK `ROUTE`; GSI1 `WABA#<waba_id>` / `PHONEID#<id>`.

    Conditional on `attribute_not_exists(PK) OR ws = :ws`: a number belongs to one workspace.
    """

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "ROUTE"

    ws = UnicodeAttribute()
    phone_number_id = UnicodeAttribute()
    waba_id = UnicodeAttribute()
    display_phone_number = UnicodeAttribute(null=True)


# ---------------------------------------------------------------------------------------------
# contacts


class ConsentEventMap(MapAttribute):
    status = UnicodeAttribute()  # opted_in | opted_out | unknown
    source = UnicodeAttribute(null=True)  # api | webhook_keyword | user_preferences | send_error_131050 | import ...
    at = UTCDateTimeAttribute()
    actor_id = UnicodeAttribute(null=True)
    note = UnicodeAttribute(null=True)


class ConsentMap(MapAttribute):
    status = UnicodeAttribute(default="unknown")
    source = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute(null=True)
    history = ListAttribute(of=ConsentEventMap, default=list)  # append-only


class ContactModel(TableModel):
    """PK `WS#<ws>`, SK `CONTACT#<cid>`. In no index: a change of `last_inbound_at` (every inbound
    message) rewrites the item alone. Lookups go through the uniqueness markers, the tag items and
    the search words."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_PREFIX: ClassVar[str] = "CONTACT#"

    ws_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    phone = UnicodeAttribute(null=True)  # E.164
    wa_id = UnicodeAttribute(null=True)
    user_id = UnicodeAttribute(null=True)  # Meta business-scoped user id
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    custom_attributes = MapAttribute(default=dict, attr_name="attributes")  # str | number | bool values
    consent = ConsentMap(default=ConsentMap)
    restricted = BooleanAttribute(default=False)
    last_inbound_at = UTCDateTimeAttribute(null=True)
    unreachable = BooleanAttribute(default=False)


class ContactUniqueModel(TableModel):
    """PK `WS#<ws>#UNIQ#<kind>#<value>`, SK `UNIQ`: one contact per phone / wa_id / user_id."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "UNIQ"

    ws_id = UnicodeAttribute()
    kind = UnicodeAttribute()  # phone | wa_id | user_id
    value = UnicodeAttribute()
    contact_id = UnicodeAttribute()


class ContactTagModel(TableModel):
    """PK `WS#<ws>#TAG#<tag>`, SK `CONTACT#<cid>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT

    ws_id = UnicodeAttribute()
    tag = UnicodeAttribute()
    contact_id = UnicodeAttribute()


# ---------------------------------------------------------------------------------------------
# messages and webhook state


class ReactionMap(MapAttribute):
    emoji = UnicodeAttribute(null=True)  # empty/None: reaction removed
    from_wa_id = UnicodeAttribute(null=True)
    wamid = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute(null=True)


class MessageModel(TableModel):
    """PK `WS#<ws>#MSG#<mid>`, SK `MSG`; thread items (not reactions) in the Timeline index,
    `TimelinePK` `WS#<ws>#CONV#<cid>` / `TimelineSK` `<iso ts>#<mid>` (relasify.data.timeline)."""

    data_class: ClassVar[DataClass] = DataClass.MESSAGE_CONTENT
    SK_VALUE: ClassVar[str] = "MSG"

    ws_id = UnicodeAttribute()
    message_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    direction = UnicodeAttribute()  # in | out
    message_type = UnicodeAttribute(attr_name="type")  # text | template | image | ... (Cloud API type)
    content = MapAttribute(default=dict)  # the Cloud API object of that type, e.g. {"body": "..."}
    wamid = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="accepted")  # accepted | sent | delivered | read | failed | received
    status_rank = NumberAttribute(default=0)  # statuses only move forward: conditional on rank
    error_code = NumberAttribute(null=True)
    error_title = UnicodeAttribute(null=True)
    error_details = UnicodeAttribute(null=True)
    message_at = UTCDateTimeAttribute(null=True)  # Meta's timestamp (inbound) or our accept time (outbound)
    accepted_at = UTCDateTimeAttribute(null=True)
    sent_at = UTCDateTimeAttribute(null=True)
    delivered_at = UTCDateTimeAttribute(null=True)
    read_at = UTCDateTimeAttribute(null=True)
    failed_at = UTCDateTimeAttribute(null=True)
    received_at = UTCDateTimeAttribute(null=True)
    biz_opaque_callback_data = UnicodeAttribute(null=True)
    media_s3_key = UnicodeAttribute(null=True)
    media_id = UnicodeAttribute(null=True)  # Meta media id (inbound) until copied to S3
    media_error = UnicodeAttribute(null=True)  # why the media copy was given up (e.g. untrusted-url)
    context_wamid = UnicodeAttribute(null=True)  # reply-to
    flags = ListAttribute(of=UnicodeAttribute, default=list)  # e.g. stale_backlog
    reactions = ListAttribute(of=ReactionMap, default=list)
    pricing = MapAttribute(null=True)  # last pricing block of a status webhook
    broadcast_id = UnicodeAttribute(null=True)
    request_hash = UnicodeAttribute(null=True)  # API sends: the body they were sent for (data/outbox.py)
    sent_by = UnicodeAttribute(null=True)  # actor sub (outbound)
    # Epoch seconds until which one attempt may be calling Meta for this outbox message (see outbox).
    send_lease_until = NumberAttribute(null=True)
    # The status path (relasify.data.status_writes): the seq of the change-feed event of the current
    # status, and billing claimed (epoch seconds of the billable status; older items: `billed` in flags).
    event_seq = UnicodeAttribute(null=True)
    billed_at = NumberAttribute(null=True)


class LastMessageMap(MapAttribute):
    """The conversation's newest message, as much as a list row shows (never the whole content)."""

    id = UnicodeAttribute()
    key = UnicodeAttribute()  # its thread sort key `<iso ts>#<mid>`: newer wins, whatever the arrival order
    direction = UnicodeAttribute()  # in | out
    type = UnicodeAttribute()
    preview = UnicodeAttribute(null=True)  # <= 100 characters
    status = UnicodeAttribute(null=True)
    status_rank = NumberAttribute(default=0)
    at = UTCDateTimeAttribute()


class ConversationModel(TableModel):
    """PK `WS#<ws>#CONV#<cid>`, SK `CONV`: one per (workspace, contact), id = contact id.
    InboxByStatus `WS#<ws>#INBOX#<status>` / `<last activity iso>#<cid>` (no GSI1/GSI2 entry).
    Every write is conditional on `version` (relasify.data.conversations). Holds a preview: message
    content, TTL = last content written + 90 days, rounded down to a day boundary."""

    data_class: ClassVar[DataClass] = DataClass.MESSAGE_CONTENT
    SK_VALUE: ClassVar[str] = "CONV"

    ws_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    status = UnicodeAttribute(default="open")  # open | pending | snoozed | resolved
    status_at = UTCDateTimeAttribute(null=True)
    assignee_sub = UnicodeAttribute(null=True)
    snoozed_until = UTCDateTimeAttribute(null=True)
    last_activity_at = UTCDateTimeAttribute()
    last_message = LastMessageMap(null=True)
    last_inbound_at = UTCDateTimeAttribute(null=True)
    last_inbound_key = UnicodeAttribute(null=True)  # thread sort key of the newest inbound message
    unread_count = NumberAttribute(default=0)
    read_up_to = UnicodeAttribute(null=True)  # thread sort key: inbound messages after it are unread
    version = NumberAttribute(default=0)


class WamidPointerModel(TableModel):
    """PK `WAMID#<wamid>`, SK `WAMID`: status webhooks find the message by Meta's id."""

    data_class: ClassVar[DataClass] = DataClass.MESSAGE_CONTENT
    SK_VALUE: ClassVar[str] = "WAMID"

    wamid = UnicodeAttribute()
    ws_id = UnicodeAttribute()
    message_id = UnicodeAttribute()
    # The status route when no callback data comes back (relasify.data.status_routes; API sends
    # after issue 19): contact id, broadcast id ("-" for none) and yyyy-mm of the message.
    route_contact_id = UnicodeAttribute(null=True)
    route_broadcast_id = UnicodeAttribute(null=True)
    route_month = UnicodeAttribute(null=True)


class PendingStatusModel(TableModel):
    """PK `WAMID#<wamid>`, SK `PENDING#<status>`: a status that arrived before its message's wamid.
    SK `PENDING` (the marker): some status of this wamid was kept, so a send that records the wamid
    checks one key, not one per status."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_PREFIX: ClassVar[str] = "PENDING#"
    MARKER_SK: ClassVar[str] = "PENDING"

    wamid = UnicodeAttribute()
    ws_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    status_rank = NumberAttribute(default=0)
    payload = MapAttribute(default=dict)  # the status object as Meta sent it
    received_at = UTCDateTimeAttribute(null=True)


class WebhookDedupeModel(TableModel):
    """PK `DEDUPE#<key>`, SK `DEDUPE`: a webhook event already processed (exactly one effect)."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_VALUE: ClassVar[str] = "DEDUPE"

    key = UnicodeAttribute()
    kind = UnicodeAttribute(null=True)  # message | status | field name


class ErasureTombstoneModel(TableModel):
    """PK `WS#<ws>#ERASED#<hmac>`, SK `ERASED`: a sender id (wa_id / user_id) of an erased contact,
    as an HMAC-SHA256 under a secret key only, with the erasure time. The webhook processor drops
    events about that sender that happened before the erasure (Meta redelivers for days), so an old
    webhook never re-creates the person. No personal data; TTL `retention.ERASURE_TOMBSTONE_WINDOW`."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_VALUE: ClassVar[str] = "ERASED"

    erased_at = NumberAttribute()  # epoch seconds


class DeletedUserModel(TableModel):
    """PK `DELETED_USER#<hmac>`, SK `DELETED`: a user who deleted their account (`DELETE /v1/me`),
    as an HMAC-SHA256 of their `sub` under the secret erasure key, with the deletion time. Tokens
    from a sign-in at or before it are refused instead of re-creating the user. No personal data;
    TTL `retention.USER_DELETION_MARKER_WINDOW`."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_VALUE: ClassVar[str] = "DELETED"

    deleted_at = NumberAttribute()  # epoch seconds


# ---------------------------------------------------------------------------------------------
# templates and broadcasts


class TemplateModel(TableModel):
    """PK `WS#<ws>`, SK `TEMPLATE#<name>#<lang>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_PREFIX: ClassVar[str] = "TEMPLATE#"

    ws_id = UnicodeAttribute()
    name = UnicodeAttribute()
    language = UnicodeAttribute()
    category = UnicodeAttribute(null=True)
    components = ListAttribute(default=list)  # Meta's component objects
    status = UnicodeAttribute(default="PENDING")  # PENDING | APPROVED | REJECTED | PAUSED | DISABLED ...
    meta_template_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    quality_score = UnicodeAttribute(null=True)


class BroadcastModel(TableModel):
    """PK `WS#<ws>#BCAST#<id>`, SK `META`; GSI1 `WS#<ws>#BCASTS` / `<iso ts>#<id>`."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "META"

    ws_id = UnicodeAttribute()
    broadcast_id = UnicodeAttribute()
    template_name = UnicodeAttribute()
    language = UnicodeAttribute()
    audience = MapAttribute(default=dict)  # {"tags": [...]} or {"contact_ids": [...]}
    parameters = ListAttribute(default=list)  # parameter mapping from contact attributes
    header = MapAttribute(null=True)  # the header's parameter: a contact field/attribute/text, or media
    scheduled_at = UTCDateTimeAttribute(null=True)
    status = UnicodeAttribute(default="queued")  # queued | scheduled | running | completed | cancelled | failed
    total = NumberAttribute(default=0)
    counter_shards = NumberAttribute(default=1)
    cursor = UnicodeAttribute(null=True)  # resume point of audience expansion
    created_by = UnicodeAttribute(null=True)
    cancelled_at = UTCDateTimeAttribute(null=True)
    completed_at = UTCDateTimeAttribute(null=True)


class BroadcastRecipientModel(TableModel):
    """PK `WS#<ws>#BCAST#<id>`, SK `RCPT#<cid>`: one send per contact per broadcast."""

    data_class: ClassVar[DataClass] = DataClass.MESSAGE_CONTENT
    SK_PREFIX: ClassVar[str] = "RCPT#"

    ws_id = UnicodeAttribute()
    broadcast_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    status = UnicodeAttribute(default="queued")  # queued | sent | delivered | read | failed | skipped
    message_id = UnicodeAttribute(null=True)
    skip_reason = UnicodeAttribute(null=True)
    # The audience page that claimed it: a later claim from the same page is that page's redelivery
    # (its sends may not be queued yet), from another page a contact in two tags (queued already).
    claimed_by = UnicodeAttribute(null=True)


class BroadcastCounterShardModel(TableModel):
    """PK `WS#<ws>#BCAST#<id>`, SK `COUNT#<n>`: counters spread over shards (hot-key relief)."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_PREFIX: ClassVar[str] = "COUNT#"

    ws_id = UnicodeAttribute()
    broadcast_id = UnicodeAttribute()
    shard = NumberAttribute()
    queued = NumberAttribute(default=0)
    sent = NumberAttribute(default=0)
    delivered = NumberAttribute(default=0)
    read = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    skipped = NumberAttribute(default=0)
    skipped_reasons = MapAttribute(default=dict)  # reason -> count


# ---------------------------------------------------------------------------------------------
# imports, logs, billing


class ImportJobModel(TableModel):
    """PK `WS#<ws>#IMPORT#<id>`, SK `META`; GSI1 `WS#<ws>#IMPORTS` / `<iso ts>#<id>`. Row errors
    live on the job item itself (bounded list), never as items of their own."""

    data_class: ClassVar[DataClass] = DataClass.ACCOUNT
    SK_VALUE: ClassVar[str] = "META"
    MAX_ERRORS: ClassVar[int] = 1000  # row errors kept (bounded item size)

    ws_id = UnicodeAttribute()
    import_id = UnicodeAttribute()
    status = UnicodeAttribute(default="queued")  # queued | running | completed | failed
    total = NumberAttribute(default=0)
    processed = NumberAttribute(default=0)
    created = NumberAttribute(default=0)
    updated = NumberAttribute(default=0)
    skipped = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    errors = ListAttribute(default=list)  # [{"row": n, "field": "...", "error": "..."}], bounded
    s3_key = UnicodeAttribute(null=True)
    resume_offset = NumberAttribute(default=0)  # byte offset / row to resume from
    created_by = UnicodeAttribute(null=True)
    finished_at = UTCDateTimeAttribute(null=True)


class ExportJobModel(TableModel):
    """PK `WS#<ws>#EXPORT#<id>`, SK `META`: an asynchronous contacts export. Holds no personal data
    (format, counts, the S3 key); lives as long as its file (the bucket's `exports/` lifecycle, 1 day)."""

    data_class: ClassVar[DataClass] = DataClass.OPERATIONAL
    SK_VALUE: ClassVar[str] = "META"
    LIFETIME_SECONDS: ClassVar[int] = 24 * 3600

    ws_id = UnicodeAttribute()
    export_id = UnicodeAttribute()
    format = UnicodeAttribute()  # csv | json
    status = UnicodeAttribute(default="queued")  # queued | running | completed | failed
    count = NumberAttribute(default=0)
    s3_key = UnicodeAttribute()
    created_by = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    finished_at = UTCDateTimeAttribute(null=True)
    failure_reason = UnicodeAttribute(null=True)


class AuditLogModel(TableModel):
    """PK `WS#<ws>#AUDIT` (or `SECURITY#<yyyy-mm-dd>`), SK `<iso ts>#<id>`. No personal data."""

    data_class: ClassVar[DataClass] = DataClass.SECURITY

    entry_id = UnicodeAttribute()
    ws_id = UnicodeAttribute(null=True)
    action = UnicodeAttribute()  # e.g. contact.erase, member.role_change, whatsapp.token_change
    actor_id = UnicodeAttribute(null=True)  # user sub or "system"
    target_ids = ListAttribute(of=UnicodeAttribute, default=list)  # ids only, never phones/names
    request_id = UnicodeAttribute(null=True)
    details = MapAttribute(default=dict)  # non-personal facts (counts, roles, outcome)
    at = UTCDateTimeAttribute()
    # An event that can come in floods (rejected webhook signatures) is one entry per minute and kind,
    # counted here; absent on ordinary entries (one each).
    occurrences = NumberAttribute(null=True)


class UsageLogModel(TableModel):
    """PK `USAGE#<ws or ->#<yyyy-mm-dd>`, SK `<iso ts>#<request id>`."""

    data_class: ClassVar[DataClass] = DataClass.USAGE

    request_id = UnicodeAttribute()
    ws_id = UnicodeAttribute(null=True)
    route = UnicodeAttribute()  # route template, never the raw path (ids could be personal)
    method = UnicodeAttribute()
    status_code = NumberAttribute()
    latency_ms = NumberAttribute()
    actor_id = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()


class BillingRecordModel(TableModel):
    """PK `WS#<ws>#BILLING#<yyyy-mm>`, SK `billing_sk(<wamid>)`: kept 7 years, never holds content,
    nor the wamid (which encodes the phone): what stays after an erasure names nobody."""

    data_class: ClassVar[DataClass] = DataClass.BILLING

    ws_id = UnicodeAttribute()
    message_id = UnicodeAttribute(null=True)
    category = UnicodeAttribute(null=True)  # marketing | utility | authentication | service ...
    pricing_model = UnicodeAttribute(null=True)  # CBP | PMP
    pricing_type = UnicodeAttribute(null=True, attr_name="type")  # regular | free_customer_service ...
    billable = BooleanAttribute(default=False)
    at = UTCDateTimeAttribute()


ALL_MODELS: tuple[type[TableModel], ...] = (
    UserModel,
    WorkspaceModel,
    MembershipModel,
    InvitationModel,
    WhatsAppConnectionModel,
    PhoneRouteModel,
    ContactModel,
    ContactUniqueModel,
    ContactTagModel,
    MessageModel,
    ConversationModel,
    WamidPointerModel,
    PendingStatusModel,
    WebhookDedupeModel,
    ErasureTombstoneModel,
    DeletedUserModel,
    TemplateModel,
    BroadcastModel,
    BroadcastRecipientModel,
    BroadcastCounterShardModel,
    ImportJobModel,
    AuditLogModel,
    UsageLogModel,
    BillingRecordModel,
)
