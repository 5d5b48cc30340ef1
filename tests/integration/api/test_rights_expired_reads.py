"""Expired items are never returned through the API, even before DynamoDB's TTL (or the sweep)
deletes them: for each data class with a read route, items written just outside their window are
invisible and items just inside it are visible (injected clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from relasify import clock
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.data.records import Contact, NewContact

from tests.support.api import ApiClient, reset_warm_state

OWNER = "owner@example.com"
ADMIN = "admin@example.com"
AGENT = "agent@example.com"
T = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture
def at_t() -> Iterator[None]:
    clock.set_clock(lambda: T)
    yield
    clock.set_clock(None)


def at(moment: datetime) -> None:
    clock.set_clock(lambda: moment)


def _workspace(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    api.add_member(ws, OWNER, AGENT, "agent")
    return ws


def _contact(ws: str, phone: str, name: str) -> Contact:
    return contact_repository().create(ws, NewContact(phone=phone, name=name))


def _expire(pk: str, sk: str, expires_at: int) -> None:
    """Give an account item a TTL, as the sweep does at workspace closure."""
    item = m.WorkspaceModel(pk, sk)
    item.update(actions=[m.WorkspaceModel.expires_at.set(expires_at)])


def _ids(response_json: dict) -> set[str]:
    return {item["id"] for item in response_json["items"]}


def test_message_content_outside_90_days_is_never_returned(api: ApiClient, at_t: None) -> None:
    ws = _workspace(api)
    contact = _contact(ws, "+6281200000001", "Ani")
    at(T - timedelta(days=90) - SECOND)
    old = message_store.record_inbound(
        message_store.NewInboundMessage(
            ws=ws,
            contact_id=contact.id,
            wamid="wamid.old",
            type="text",
            content={"body": "old"},
            message_at=clock.now(),
        )
    )
    at(T - timedelta(days=90) + SECOND)
    recent = message_store.record_inbound(
        message_store.NewInboundMessage(
            ws=ws,
            contact_id=contact.id,
            wamid="wamid.new",
            type="text",
            content={"body": "new"},
            message_at=clock.now(),
        )
    )
    at(T)
    assert old is not None
    assert recent is not None

    exported = api.get(f"/v1/workspaces/{ws}/contacts/{contact.id}/export", as_user=ADMIN).json
    assert [msg["id"] for msg in exported["messages"]] == [recent.id]
    conversation = api.get(f"/v1/workspaces/{ws}/contacts/{contact.id}/messages", as_user=AGENT)
    assert conversation.status == 200, conversation.body
    assert _ids(conversation.json) == {recent.id}
    assert api.get(f"/v1/workspaces/{ws}/messages/{old.id}", as_user=AGENT).status == 404
    assert api.get(f"/v1/workspaces/{ws}/messages/{recent.id}", as_user=AGENT).status == 200
    assert message_store.locate_wamid("wamid.old") is None  # the pointer expired with it


def test_security_log_outside_24_months_is_never_returned(api: ApiClient, at_t: None) -> None:
    ws = _workspace(api)
    at(T - timedelta(days=730) - SECOND)
    old = identity_repository().append_audit(ws, "test.old", actor_id="x")
    at(T - timedelta(days=730) + SECOND)
    recent = identity_repository().append_audit(ws, "test.recent", actor_id="x")
    at(T)
    ids = _ids(api.get(f"/v1/workspaces/{ws}/audit?limit=100", as_user=ADMIN).json)
    assert recent.id in ids
    assert old.id not in ids


def test_expired_account_items_are_never_returned(api: ApiClient, at_t: None) -> None:
    ws = _workspace(api)
    kept = _contact(ws, "+6281200000002", "Budi")
    gone = _contact(ws, "+6281200000003", "Citra")
    identity_repository().put_whatsapp_connection(
        ws, waba_id="waba-1", phone_number_id="pn-1", encrypted_access_token="Y2lwaGVy"
    )
    agent_sub = api.get("/v1/me", as_user=AGENT).json["id"]
    now = clock.epoch()
    _expire(m.ws_pk(ws), f"CONTACT#{gone.id}", now - 1)
    _expire(m.ws_pk(ws), f"CONTACT#{kept.id}", now + 1)
    _expire(m.ws_pk(ws), f"MEMBER#{agent_sub}", now - 1)
    _expire(m.ws_pk(ws), "WHATSAPP", now)  # expires_at <= now counts as expired
    reset_warm_state()

    assert api.get(f"/v1/workspaces/{ws}/contacts/{gone.id}", as_user=ADMIN).status == 404
    assert api.get(f"/v1/workspaces/{ws}/contacts/{kept.id}", as_user=ADMIN).status == 200
    assert api.get(f"/v1/workspaces/{ws}/contacts/{gone.id}/export", as_user=ADMIN).status == 404
    listed = api.get(f"/v1/workspaces/{ws}/contacts", as_user=ADMIN)
    assert listed.status == 200, listed.body
    assert _ids(listed.json) == {kept.id}
    members = {mb.get("user_id") for mb in api.get(f"/v1/workspaces/{ws}/members", as_user=ADMIN).json["items"]}
    assert agent_sub not in members
    # The expired membership grants nothing: the agent is a stranger now.
    assert api.get(f"/v1/workspaces/{ws}", as_user=AGENT).status == 404
    assert api.get(f"/v1/workspaces/{ws}/whatsapp", as_user=ADMIN).status == 404


def test_an_expired_workspace_is_not_found_for_anyone(api: ApiClient, at_t: None) -> None:
    ws = _workspace(api)
    _expire(m.ws_pk(ws), "META", clock.epoch() - 1)
    reset_warm_state()
    for user in (OWNER, ADMIN, AGENT):
        response = api.get(f"/v1/workspaces/{ws}", as_user=user)
        assert response.status == 404
        assert response.json["detail"] == "Workspace not found"
    assert api.get("/v1/workspaces", as_user=OWNER).json["items"] == []
