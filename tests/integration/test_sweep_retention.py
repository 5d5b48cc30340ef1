"""The retention sweep against moto: items of every data class seeded just inside their windows,
expired less than the sweep's grace period ago, and expired more than it ago (injected clock); one
sweep deletes exactly the last group and nothing else (the middle one is DynamoDB TTL's to delete
for free, hidden from reads meanwhile); closed workspaces are stamped with closure + 90 days and
gone at most the grace period after it; S3 objects follow; the sweep is resumable (tiny time
budget) and idempotent (a second run deletes nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from relasify import clock, retention
from relasify.data import message_statuses
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data import sweep as sweep_store
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.memberships import Membership, Role
from relasify.data.records import NewContact
from relasify.retention import DataClass
from relasify.services import rights, sweep
from relasify.settings import Settings, get_settings
from relasify.web import usage

T = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
GRACE = retention.sweep_grace(Settings())  # RETENTION_SWEEP_GRACE_DAYS, default 3 days
BUCKET = "relasify-test-media"
WINDOWS = {
    DataClass.MESSAGE_CONTENT: timedelta(days=90),
    DataClass.USAGE: timedelta(days=365),
    DataClass.SECURITY: timedelta(days=730),
    DataClass.BILLING: timedelta(days=7 * 365),
    DataClass.OPERATIONAL: timedelta(days=8),
}
Key = tuple[str, str]


@pytest.fixture
def env(ddb_tables: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("MEDIA_BUCKET", BUCKET)
    get_settings.cache_clear()
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-3"})
    # Usage-log writes an earlier API test left in flight land now, not during our key-set snapshots.
    usage.flush()
    yield get_settings()
    get_settings.cache_clear()


def at(moment: datetime) -> None:
    clock.set_clock(lambda: moment)


def table_keys() -> set[Key]:
    """Every key in the table (a Scan: fine in a test, never in the product)."""
    keys: set[Key] = set()
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().table_name):
        keys |= {(i["PK"]["S"], i["SK"]["S"]) for i in page["Items"]}
    return keys


def bucket_keys() -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {o["Key"] for page in pages for o in page.get("Contents") or []}


def put_object(key: str) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"x")


@dataclass
class Seeded:
    expired: set[Key] = field(default_factory=set)
    live: set[Key] = field(default_factory=set)
    expired_objects: set[str] = field(default_factory=set)
    live_objects: set[str] = field(default_factory=set)
    expired_by_class: dict[str, int] = field(default_factory=dict)
    in_grace: set[Key] = field(default_factory=set)  # expired less than the grace period ago: kept
    in_grace_message: tuple[str, str] = ("", "")  # (ws, message id) of the in-grace message


def _seed_class_items(
    ws: str, contact_id: str, tag: str, written_at: dict[DataClass, datetime]
) -> tuple[set[Key], set[str]]:
    """One item of each non-account class (and a media object), written at `written_at` per class."""
    keys: set[Key] = set()
    objects: set[str] = set()

    def write(cls: DataClass, item: m.TableModel) -> None:
        at(written_at[cls])
        item.save()
        keys.add((item.pk, item.sk))

    at(written_at[DataClass.MESSAGE_CONTENT])
    message = message_store.record_inbound(
        message_store.NewInboundMessage(
            ws=ws,
            contact_id=contact_id,
            wamid=f"wamid.{tag}",
            type="text",
            content={"body": f"hello {tag}"},
            message_at=written_at[DataClass.MESSAGE_CONTENT],
        )
    )
    assert message is not None
    keys.add((m.message_pk(ws, message.id), "MSG"))  # inbound: id derived from the wamid, no pointer item
    media = f"media/{ws}/{message.id}"
    put_object(media)
    objects.add(media)
    write(
        DataClass.MESSAGE_CONTENT,
        m.BroadcastRecipientModel(
            m.broadcast_pk(ws, f"b-{tag}"), f"RCPT#{contact_id}", ws_id=ws, broadcast_id=f"b-{tag}", contact_id="c"
        ),
    )
    stamp = written_at[DataClass.USAGE]
    write(
        DataClass.USAGE,
        m.UsageLogModel(
            m.usage_pk(ws, "d"),
            f"{tag}#r",
            request_id="r",
            route="/x",
            method="GET",
            status_code=200,
            latency_ms=1,
            at=stamp,
        ),
    )
    write(
        DataClass.SECURITY,
        m.AuditLogModel(m.audit_pk(ws, ""), f"{tag}#a", entry_id="a", action="x.y", at=written_at[DataClass.SECURITY]),
    )
    write(
        DataClass.SECURITY,
        m.AuditLogModel(
            m.audit_pk(None, tag), f"{tag}#s", entry_id="s", action="x.y", at=written_at[DataClass.SECURITY]
        ),
    )
    write(
        DataClass.BILLING,
        m.BillingRecordModel(
            m.billing_pk(ws, "2026-01"), m.billing_sk(f"wamid.bill.{tag}"), ws_id=ws, at=written_at[DataClass.BILLING]
        ),
    )
    write(DataClass.OPERATIONAL, m.WebhookDedupeModel(m.dedupe_pk(tag), "DEDUPE", key=tag))
    write(
        DataClass.OPERATIONAL,
        m.PendingStatusModel(m.wamid_pk(f"wamid.pending.{tag}"), "PENDING#sent", wamid="w", status="sent"),
    )
    return keys, objects


def _seed_workspace(owner: str, name: str) -> str:
    repo = identity_repository()
    workspace, _ = repo.create_workspace(name, owner_sub=owner, owner_email=f"{owner}@example.com")
    ws = workspace.id
    repo.add_member(ws, f"{owner}-agent", "agent", email=f"{owner}-agent@example.com")
    repo.put_invitation(ws, f"{owner}-invitee@example.com", "agent")
    repo.put_whatsapp_connection(ws, waba_id=f"waba-{ws}", phone_number_id=f"pn-{ws}", encrypted_access_token="Y3Q=")
    contact_repository().create(
        ws, NewContact(phone=f"+62812{abs(hash(ws)) % 10**7:07d}", wa_id=f"62{ws}", name="Siti", tags=["vip", "b2b"])
    )
    m.TemplateModel(m.ws_pk(ws), "TEMPLATE#promo#id", ws_id=ws, name="promo", language="id").save()
    m.BroadcastModel(
        m.broadcast_pk(ws, "b1"),
        "META",
        ws_id=ws,
        broadcast_id="b1",
        template_name="promo",
        language="id",
        gsi1pk=f"WS#{ws}#BCASTS",
        gsi1sk="2026#b1",
    ).save()
    m.BroadcastCounterShardModel(m.broadcast_pk(ws, "b1"), "COUNT#0", ws_id=ws, broadcast_id="b1", shard=0).save()
    put_object(f"media/{ws}/old-message")
    put_object(f"imports/{ws}/contacts.csv")
    return ws


def _workspace_account_keys(ws: str, everything: set[Key]) -> set[Key]:
    """Account items of a workspace, from a full key set: its partitions minus logs/billing/messages."""
    own = {k for k in everything if k[0] == f"WS#{ws}" or k[0].startswith(f"WS#{ws}#")}
    return {k for k in own if sweep_store.classify(*k) is DataClass.ACCOUNT}


def _close(ws: str, owner: str, closed_at: datetime) -> None:
    at(closed_at)
    rights.close_workspace(Membership(ws=ws, sub=owner, role=Role.OWNER))


def seed_everything() -> tuple[Seeded, dict[str, str]]:
    """Live workspace with items of every class just inside their windows, expired a second ago
    less than the grace period and a second more than it; one workspace closed just over 90 days
    ago and one closed just under 90 days ago."""
    seeded = Seeded()
    at(T - timedelta(days=3000))
    live_ws = _seed_workspace("owner-live", "Live")
    out_ws = _seed_workspace("owner-out", "Closed long ago")
    in_ws = _seed_workspace("owner-in", "Closed recently")
    contact = contact_repository().iter_contacts(live_ws).__next__()

    outside = {cls: T - window - GRACE - SECOND for cls, window in WINDOWS.items()}
    in_grace = {cls: T - window - GRACE + SECOND for cls, window in WINDOWS.items()}
    inside = {cls: T - window + SECOND for cls, window in WINDOWS.items()}
    expired, expired_objects = _seed_class_items(live_ws, contact.id, "out", outside)
    seeded.in_grace, in_grace_objects = _seed_class_items(live_ws, contact.id, "grace", in_grace)
    seeded.in_grace_message = (live_ws, message_store.inbound_message_id("wamid.grace"))
    _, live_objects = _seed_class_items(live_ws, contact.id, "in", inside)

    _close(out_ws, "owner-out", T - timedelta(days=90) - SECOND)
    _close(in_ws, "owner-in", T - timedelta(days=90) + SECOND)
    at(T)
    # The daily sweep last ran three days ago (a first run would look back 60 days: slower in moto).
    sweep_store.set_checkpoint((T - GRACE).date() - timedelta(days=3))
    everything = table_keys()
    out_account = _workspace_account_keys(out_ws, everything)
    assert len(out_account) >= 12  # workspace, 2 members, invitation, connection, contact, 2 markers, 2 tags...
    seeded.expired = expired | out_account
    seeded.live = everything - seeded.expired
    seeded.expired_objects = expired_objects | {f"media/{out_ws}/old-message", f"imports/{out_ws}/contacts.csv"}
    seeded.live_objects = (
        live_objects | in_grace_objects | {f"media/{in_ws}/old-message", f"imports/{in_ws}/contacts.csv"}
    )
    counts: dict[str, int] = {}
    for key in seeded.expired:
        cls = sweep_store.classify(*key).value
        counts[cls] = counts.get(cls, 0) + 1
    seeded.expired_by_class = counts
    return seeded, {"live": live_ws, "out": out_ws, "in": in_ws}


def _sweep_state_keys(keys: set[Key]) -> set[Key]:
    return {k for k in keys if k[0].startswith("SWEEP#") or k[0].startswith("SECURITY#")}


def test_one_sweep_deletes_exactly_the_expired_items(env: Settings) -> None:
    seeded, workspaces = seed_everything()
    before = table_keys()
    assert seeded.expired <= before

    report = sweep.run()

    after = table_keys()
    assert before - after == seeded.expired | {
        ("SWEEP#CLOSURES", workspaces["out"]),
        ("SWEEP#CLOSURES", workspaces["in"]),
    }
    created = after - before
    assert len(created) == 1  # the sweep's report in the security log
    assert next(iter(created))[0].startswith("SECURITY#")
    assert report.complete
    assert report.as_dict()["deleted"] == {cls.value: seeded.expired_by_class.get(cls.value, 0) for cls in DataClass}
    assert report.closures_completed == 2
    assert report.stamped >= 12  # the recently closed workspace's account items

    objects = bucket_keys()
    assert objects.isdisjoint(seeded.expired_objects)
    assert seeded.live_objects <= objects

    # The report is in the security log, ids and counts only.
    entries = identity_repository().list_security_log(T.strftime("%Y-%m-%d")).items
    sweep_entries = [e for e in entries if e.action == "retention.sweep"]
    assert len(sweep_entries) == 1
    assert sweep_entries[0].details["deleted"]["message_content"] == seeded.expired_by_class["message_content"]
    assert "duration_ms" in sweep_entries[0].details


def test_second_sweep_deletes_nothing(env: Settings) -> None:
    seed_everything()
    sweep.run()
    before = table_keys()
    report = sweep.run()
    after = table_keys()
    assert report.as_dict()["deleted_total"] == 0
    assert report.stamped == 0
    assert before - after == set()
    assert {k[0].split("#")[0] for k in after - before} == {"SECURITY"}  # only the second report


def test_closed_workspace_is_stamped_then_gone_after_the_window(env: Settings) -> None:
    _, workspaces = seed_everything()
    sweep.run()
    in_ws = workspaces["in"]
    closing_keys = _workspace_account_keys(in_ws, table_keys())
    assert closing_keys
    expected_ttl = int((T - timedelta(days=90) + SECOND + timedelta(days=90)).timestamp())
    for pk, sk in closing_keys:
        item = m.WorkspaceModel._get_connection().get_item(pk, sk, consistent_read=True)["Item"]
        assert int(item["expires_at"]["N"]) == expected_ttl, (pk, sk)
        assert item["expiry_bucket"]["S"].startswith(f"EXP#{T.date().isoformat()}#")

    at(T + 2 * SECOND)  # one second past closure + 90 days: unreadable, left to DynamoDB's TTL
    report = sweep.run()
    assert closing_keys <= table_keys()
    assert report.deleted[DataClass.ACCOUNT.value] == 0
    assert identity_repository().get_workspace(in_ws) is None

    at(T + GRACE + 2 * SECOND)  # one second past the grace period: the sweep's deadline
    report = sweep.run()
    remaining = table_keys()
    assert remaining.isdisjoint(closing_keys)
    assert any(k[0] == f"WS#{workspaces['live']}" for k in remaining)  # the active workspace is untouched
    assert not any(k.startswith(f"media/{in_ws}/") or k.startswith(f"imports/{in_ws}/") for k in bucket_keys())
    assert report.deleted[DataClass.ACCOUNT.value] == len(closing_keys)


def test_sweep_is_resumable_with_a_tiny_time_budget(env: Settings) -> None:
    seeded, _ = seed_everything()
    # Spread more expired items over several past expiry days, so the walk spans days.
    sweep_store.set_checkpoint(T.date() - timedelta(days=14))
    for days_ago in range(1, 6):
        at(T - GRACE - timedelta(days=8 + days_ago))
        for n in range(7):
            m.WebhookDedupeModel(m.dedupe_pk(f"old-{days_ago}-{n}"), "DEDUPE", key="k").save()
            seeded.expired.add((m.dedupe_pk(f"old-{days_ago}-{n}"), "DEDUPE"))
    at(T)
    before = table_keys()

    runs = 0
    while True:
        runs += 1
        budget = iter([10**9] * 12)  # a dozen budget checks per run, then the deadline is "near"
        report = sweep.run(lambda budget=budget: next(budget, 0), reserve_ms=1000)
        if report.complete:
            break
        assert runs < 200, "the sweep makes no progress"
    assert runs > 2  # it really was interrupted, several times

    after = table_keys()
    assert before - after == seeded.expired | {k for k in before if k[0] == "SWEEP#CLOSURES"}
    assert all(k[0].startswith("SECURITY#") for k in after - before)  # reports only
    assert sweep_store.get_checkpoint() == sweep_store.Checkpoint((T - GRACE).date(), 0)
    assert sweep.run().as_dict()["deleted_total"] == 0


def test_items_expired_less_than_the_grace_period_ago_are_kept_unreadable_then_deleted(env: Settings) -> None:
    """Within the grace period an expired item is DynamoDB TTL's to delete (free): the sweep leaves
    it, and no read returns it. One second past the grace period the sweep deletes it."""
    seeded, _ = seed_everything()
    report = sweep.run()

    assert seeded.in_grace <= table_keys()
    assert seeded.in_grace.isdisjoint({k for k in seeded.expired})
    ws, message_id = seeded.in_grace_message
    assert message_store.get_message(ws, message_id, consistent=True) is None
    assert message_store.get_inbound(ws, "wamid.grace") is None
    assert m.WebhookDedupeModel.get_live(m.dedupe_pk("grace"), "DEDUPE", consistent_read=True) is None
    assert message_statuses.pending_statuses("wamid.pending.grace") == []
    assert m.UsageLogModel.get_live(m.usage_pk(ws, "d"), "grace#r", consistent_read=True) is None
    assert f"media/{ws}/{message_id}" in bucket_keys()
    # ...while the items a second further in the past were deleted by the same run.
    assert report.as_dict()["deleted_total"] == len(seeded.expired)

    at(T + 2 * SECOND)  # the in-grace items are now one second past the grace period
    later = sweep.run()
    assert table_keys().isdisjoint(seeded.in_grace)
    assert f"media/{ws}/{message_id}" not in bucket_keys()
    assert later.as_dict()["deleted_total"] == len(seeded.in_grace)


def test_a_rewritten_item_is_not_deleted_on_a_stale_index_entry(env: Settings) -> None:
    """The index is eventually consistent: the sweep re-reads each item before deleting it."""
    at(T - timedelta(days=9))
    m.WebhookDedupeModel(m.dedupe_pk("k"), "DEDUPE", key="k").save()
    at(T)
    stale = (m.dedupe_pk("k"), "DEDUPE")
    # Rewrite the item live, as a late writer would, then offer the old index entry to the deleter.
    m.WebhookDedupeModel(m.dedupe_pk("k"), "DEDUPE", key="k").save()
    assert sweep_store.still_expired([stale], clock.epoch()) == []
    assert stale in table_keys()
