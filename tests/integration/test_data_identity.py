"""Identity repository against moto: users, workspace+owner transaction, the last-owner rule,
invitations, the WhatsApp connection and its routing uniqueness, audit and usage logs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from relasify import clock
from relasify.data import models as m
from relasify.data.identity import DynamoIdentityRepository, get_membership
from relasify.data.memberships import Role
from relasify.data.records import UsageEntry
from relasify.errors import BadCursor, Conflict, NotFound
from relasify.settings import Settings


@pytest.fixture
def repo(ddb_tables: Settings) -> DynamoIdentityRepository:
    return DynamoIdentityRepository()


def test_upsert_user_keeps_created_at_and_finds_by_email(repo: DynamoIdentityRepository) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    clock.set_clock(lambda: t0)
    repo.upsert_user("sub-1", "Ana@Example.com", name="Ana", picture="https://p/1")
    clock.set_clock(lambda: t0 + timedelta(hours=1))
    user = repo.upsert_user("sub-1", "ana@example.com")  # claims without a name keep the stored one

    stored = repo.get_user("sub-1")
    assert stored == user
    assert stored is not None
    assert stored.created_at == t0
    assert stored.updated_at == t0 + timedelta(hours=1)
    assert stored.name == "Ana"
    assert repo.get_user_by_email("ANA@example.com") == stored
    assert repo.get_user_by_email("nobody@example.com") is None

    repo.delete_user("sub-1")
    assert repo.get_user("sub-1") is None


def test_refresh_user_updates_an_existing_user_and_never_creates_one(repo: DynamoIdentityRepository) -> None:
    """Sign-in's one UpdateItem: it tells a missing user (new, or deleted) apart at no extra cost."""
    assert repo.refresh_user("sub-1", "ana@example.com", name="Ana") is None
    assert repo.get_user("sub-1") is None  # nothing written

    repo.upsert_user("sub-1", "ana@example.com", name="Ana")
    refreshed = repo.refresh_user("sub-1", "Ana@Example.com", name="Ana Maria")
    assert refreshed is not None
    assert refreshed == repo.get_user("sub-1")
    assert refreshed.name == "Ana Maria"

    repo.delete_user("sub-1")
    assert repo.refresh_user("sub-1", "ana@example.com") is None
    assert repo.get_user("sub-1") is None


def test_create_workspace_writes_workspace_and_owner_together(repo: DynamoIdentityRepository) -> None:
    workspace, owner = repo.create_workspace("Acme", owner_sub="sub-1", owner_email="a@x.id")

    assert repo.get_workspace(workspace.id) == workspace
    assert workspace.owner_count == 1
    assert owner.role == "owner"
    assert repo.get_membership(workspace.id, "sub-1") == owner
    assert [ms.ws for ms in repo.list_user_memberships("sub-1")] == [workspace.id]
    assert repo.list_user_memberships("sub-1")[0].workspace_name == "Acme"


def test_workspace_creation_is_all_or_nothing(repo: DynamoIdentityRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    # Force an id collision on the workspace item: the owner membership must not be written either.
    existing, _ = repo.create_workspace("First", owner_sub="sub-1")
    monkeypatch.setattr("relasify.data.identity.new_id", lambda prefix="": existing.id)
    with pytest.raises(Conflict):
        repo.create_workspace("Second", owner_sub="sub-2")
    assert repo.get_membership(existing.id, "sub-2") is None
    workspace = repo.get_workspace(existing.id)
    assert workspace is not None
    assert workspace.name == "First"


def test_access_adapter_returns_role(repo: DynamoIdentityRepository) -> None:
    workspace, _ = repo.create_workspace("Acme", owner_sub="sub-1")
    repo.add_member(workspace.id, "sub-2", "agent")
    membership = get_membership(workspace.id, "sub-2")
    assert membership is not None
    assert membership.role is Role.AGENT
    assert get_membership(workspace.id, "stranger") is None


def test_last_owner_cannot_be_demoted_or_removed(repo: DynamoIdentityRepository) -> None:
    workspace, _ = repo.create_workspace("Acme", owner_sub="owner-1")
    repo.add_member(workspace.id, "admin-1", "admin")

    with pytest.raises(Conflict, match="at least one owner"):
        repo.change_role(workspace.id, "owner-1", "admin")
    with pytest.raises(Conflict, match="at least one owner"):
        repo.remove_member(workspace.id, "owner-1")
    owner = repo.get_membership(workspace.id, "owner-1")
    assert owner is not None
    assert owner.role == "owner"

    # With a second owner, the first may step down; then the second is the last one.
    repo.change_role(workspace.id, "admin-1", "owner")
    assert repo.change_role(workspace.id, "owner-1", "agent").role == "agent"
    with pytest.raises(Conflict):
        repo.remove_member(workspace.id, "admin-1")
    ws = repo.get_workspace(workspace.id)
    assert ws is not None
    assert ws.owner_count == 1
    repo.remove_member(workspace.id, "owner-1")
    assert repo.get_membership(workspace.id, "owner-1") is None
    assert [x.sub for x in repo.list_members(workspace.id)] == ["admin-1"]


def test_two_owners_demoting_each_other_concurrently_leave_one_owner(repo: DynamoIdentityRepository) -> None:
    workspace, _ = repo.create_workspace("Acme", owner_sub="o1")
    repo.add_member(workspace.id, "o2", "owner")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(sub: str) -> None:
        barrier.wait()
        try:
            repo.change_role(workspace.id, sub, "admin")
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=demote, args=(s,)) for s in ("o1", "o2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owners = [x for x in repo.list_members(workspace.id) if x.role == "owner"]
    assert len(owners) == 1
    assert sorted(outcomes) == ["conflict", "ok"]


def test_member_errors(repo: DynamoIdentityRepository) -> None:
    workspace, _ = repo.create_workspace("Acme", owner_sub="o1")
    with pytest.raises(Conflict):
        repo.add_member(workspace.id, "o1", "agent")
    with pytest.raises(NotFound):
        repo.change_role(workspace.id, "ghost", "admin")
    with pytest.raises(NotFound):
        repo.remove_member(workspace.id, "ghost")
    with pytest.raises(NotFound):
        repo.add_member("ws_missing", "x", "agent")


def test_close_workspace(repo: DynamoIdentityRepository) -> None:
    workspace, _ = repo.create_workspace("Acme", owner_sub="o1")
    at = datetime(2026, 5, 1, tzinfo=UTC)
    closed = repo.close_workspace(workspace.id, closed_at=at)
    assert closed.status == "closed"
    assert closed.closed_at == at
    assert repo.close_workspace(workspace.id).closed_at == at  # idempotent
    with pytest.raises(NotFound):
        repo.close_workspace("ws_missing")

    other, _ = repo.create_workspace("Later", owner_sub="o1")
    repo.close_workspace(other.id, closed_at=at + timedelta(days=30))
    repo.create_workspace("Active", owner_sub="o1")
    assert [w.id for w in repo.list_closed_workspaces(closed_before=at + timedelta(days=1))] == [workspace.id]
    assert [w.id for w in repo.list_closed_workspaces(closed_before=at + timedelta(days=31))] == [
        workspace.id,
        other.id,
    ]


def test_invitations(repo: DynamoIdentityRepository) -> None:
    workspace, _ = repo.create_workspace("Acme", owner_sub="o1")
    repo.put_invitation(workspace.id, "New@X.id", "agent", invited_by="o1")
    assert [i.email for i in repo.list_invitations(workspace.id)] == ["new@x.id"]
    pending = repo.invitations_for_email("new@x.id")
    assert [(i.ws, i.role, i.workspace_name) for i in pending] == [(workspace.id, "agent", "Acme")]
    repo.delete_invitation(workspace.id, "new@x.id")
    assert repo.invitations_for_email("new@x.id") == []


def _connect(repo: DynamoIdentityRepository, ws: str, phone_number_id: str = "PN1", waba: str = "WABA1") -> None:
    repo.put_whatsapp_connection(
        ws,
        waba_id=waba,
        phone_number_id=phone_number_id,
        encrypted_access_token="Y2lwaGVydGV4dA==",
        display_phone_number="+62 811 0000 000",
    )


def test_connection_and_routing(repo: DynamoIdentityRepository) -> None:
    _connect(repo, "ws1")
    connection = repo.get_whatsapp_connection("ws1")
    assert connection is not None
    assert connection.phone_number_id == "PN1"
    assert "Y2lwaGVydGV4dA" not in repr(connection)  # ciphertext kept out of reprs/logs
    route = repo.route_by_phone_number_id("PN1")
    assert route is not None
    assert route.ws == "ws1"
    assert [r.phone_number_id for r in repo.routes_by_waba_id("WABA1")] == ["PN1"]

    updated = repo.update_whatsapp_health(
        "ws1", quality_rating="YELLOW", messaging_limit="TIER_10K", restrictions=[{"restriction_type": "RESTRICTED"}]
    )
    assert updated is not None
    assert (updated.quality_rating, updated.messaging_limit) == ("YELLOW", "TIER_10K")
    assert repo.update_whatsapp_health("ws-none", quality_rating="RED") is None

    assert repo.update_whatsapp_health("ws1", throughput_per_second=250) is not None

    # Reconnecting the same number keeps Meta's last report and the send cap; switching numbers
    # moves the route and starts from the default cap (None).
    _connect(repo, "ws1")
    kept = repo.get_whatsapp_connection("ws1")
    assert kept is not None
    assert kept.quality_rating == "YELLOW"
    assert kept.throughput_per_second == 250
    _connect(repo, "ws1", phone_number_id="PN2")
    switched = repo.get_whatsapp_connection("ws1")
    assert switched is not None
    assert switched.throughput_per_second is None
    assert repo.route_by_phone_number_id("PN1") is None
    route2 = repo.route_by_phone_number_id("PN2")
    assert route2 is not None
    assert route2.ws == "ws1"

    repo.delete_whatsapp_connection("ws1")
    assert repo.get_whatsapp_connection("ws1") is None
    assert repo.route_by_phone_number_id("PN2") is None


def test_a_number_belongs_to_one_workspace(repo: DynamoIdentityRepository) -> None:
    _connect(repo, "ws1")
    with pytest.raises(Conflict):
        _connect(repo, "ws2")
    assert repo.get_whatsapp_connection("ws2") is None  # nothing half-written
    route = repo.route_by_phone_number_id("PN1")
    assert route is not None
    assert route.ws == "ws1"


def test_racing_workspaces_for_one_number_exactly_one_wins(repo: DynamoIdentityRepository) -> None:
    contenders = [f"ws{i}" for i in range(6)]
    barrier = threading.Barrier(len(contenders))
    winners: list[str] = []
    losers: list[str] = []

    def connect(ws: str) -> None:
        barrier.wait()
        try:
            _connect(repo, ws, phone_number_id="PN-RACE")
            winners.append(ws)
        except Conflict:
            losers.append(ws)

    threads = [threading.Thread(target=connect, args=(ws,)) for ws in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(winners) == 1
    assert len(losers) == len(contenders) - 1
    route = repo.route_by_phone_number_id("PN-RACE")
    assert route is not None
    assert route.ws == winners[0]
    connected = [ws for ws in contenders if repo.get_whatsapp_connection(ws) is not None]
    assert connected == winners


def test_audit_log_newest_first_with_cursor(repo: DynamoIdentityRepository) -> None:
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    for i in range(5):
        clock.set_clock(lambda i=i: t0 + timedelta(minutes=i))
        repo.append_audit("ws1", f"action.{i}", actor_id="o1", target_ids=[f"c{i}"], details={"n": i})
    repo.append_audit("ws2", "other.ws", actor_id="o9")

    first = repo.list_audit("ws1", limit=2)
    assert [e.action for e in first.items] == ["action.4", "action.3"]
    assert first.next_cursor
    second = repo.list_audit("ws1", limit=2, cursor=first.next_cursor)
    assert [e.action for e in second.items] == ["action.2", "action.1"]
    third = repo.list_audit("ws1", limit=2, cursor=second.next_cursor)
    assert [e.action for e in third.items] == ["action.0"]
    assert third.items[0].details == {"n": 0}
    assert third.next_cursor is None
    with pytest.raises(BadCursor):
        repo.list_audit("ws2", limit=2, cursor=first.next_cursor)

    # Security entries without a workspace go to the day's partition; 24-month retention.
    entry = repo.append_audit(None, "webhook.signature_rejected")
    day = entry.at.strftime("%Y-%m-%d")
    assert [e.action for e in repo.list_security_log(day).items] == ["webhook.signature_rejected"]


def test_audit_entries_expire_after_the_security_window(repo: DynamoIdentityRepository) -> None:
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    clock.set_clock(lambda: t0)
    repo.append_audit("ws1", "old")
    clock.set_clock(lambda: t0 + timedelta(days=731))
    assert repo.list_audit("ws1").items == []


def test_usage_log_batch(repo: DynamoIdentityRepository) -> None:
    at = datetime(2026, 2, 1, 8, tzinfo=UTC)
    entries = [
        UsageEntry(
            request_id=f"r{i}",
            ws="ws1",
            route="/v1/workspaces/{ws}/contacts",
            method="GET",
            status_code=200,
            latency_ms=12.5,
            actor_id="o1",
            at=at + timedelta(seconds=i),
        )
        for i in range(30)
    ]
    repo.append_usage_batch(entries)
    stored = list(m.UsageLogModel.query("USAGE#ws1#2026-02-01"))
    assert len(stored) == 30
    assert all(s.expires_at is not None for s in stored)
    assert stored[0].route == "/v1/workspaces/{ws}/contacts"
