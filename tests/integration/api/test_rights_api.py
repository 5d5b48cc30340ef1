"""Data-subject rights through the API (SPEC section 8): contact export, restriction, erasure (with a
whole-table and whole-bucket search for any trace afterwards), the caller's own export and deletion,
and workspace close (unreadable at once, gone after the window)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
from relasify import clock, retention
from relasify.data import message_statuses, status_changes
from relasify.data import messages as message_store
from relasify.data import models as m
from relasify.data import sweep as sweep_store
from relasify.data.contacts import contact_repository
from relasify.data.records import ConsentEvent, Contact, NewContact
from relasify.services import sweep
from relasify.settings import get_settings

from tests.support.api import ApiClient, reset_warm_state, run_import_worker

OWNER = "owner@example.com"
ADMIN = "admin@example.com"
AGENT = "agent@example.com"

PHONE = "+6281299887766"
WA_ID = "6281299887766"
NAME = "Dewi Lestari Kusuma"
EMAIL = "dewi.kusuma@example.net"
TEXTS = ("Halo kak, pesanan saya nomor 4471 belum sampai", "Terima kasih banyak atas bantuannya")


def _workspace(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    api.add_member(ws, OWNER, AGENT, "agent")
    return ws


def _contact(ws: str, *, phone: str = PHONE, wa_id: str = WA_ID, name: str = NAME, email: str = EMAIL) -> Contact:
    return contact_repository().create(
        ws,
        NewContact(
            phone=phone,
            wa_id=wa_id,
            name=name,
            email=email,
            tags=["vip", "jakarta"],
            attributes={"city": "Bandung"},
            consent=ConsentEvent(status="opted_in", source="api", at=clock.now(), actor_id="u1"),
        ),
    )


def _inbound(ws: str, contact_id: str, wamid: str, text: str) -> message_store.Message:
    message = message_store.record_inbound(
        message_store.NewInboundMessage(
            ws=ws, contact_id=contact_id, wamid=wamid, type="text", content={"body": text}, message_at=clock.now()
        )
    )
    assert message is not None
    return message


def _table_items() -> list[dict]:
    items: list[dict] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=get_settings().table_name):
        items += page["Items"]
    return items


def _bucket_objects() -> dict[str, bytes]:
    s3 = boto3.client("s3")
    bucket = get_settings().media_bucket
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents") or []:
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


# --- export, restriction -------------------------------------------------------------------------------


def test_contact_export_has_contact_consent_history_and_messages(api: ApiClient) -> None:
    ws = _workspace(api)
    contact = _contact(ws)
    _inbound(ws, contact.id, "wamid.A", TEXTS[0])
    _inbound(ws, contact.id, "wamid.B", TEXTS[1])

    response = api.get(f"/v1/workspaces/{ws}/contacts/{contact.id}/export", as_user=ADMIN)
    assert response.status == 200, response.body
    body = response.json
    assert body["contact"]["id"] == contact.id
    assert body["contact"]["phone"] == PHONE
    assert body["contact"]["email"] == EMAIL
    assert [e["status"] for e in body["consent_history"]] == ["opted_in"]
    assert sorted(msg["content"]["body"] for msg in body["messages"]) == sorted(TEXTS)
    assert body["messages_truncated"] is False

    # Every export is in the security log, without personal data.
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN).json["items"]
    exported = [e for e in audit if e["action"] == "contact.exported"]
    assert len(exported) == 1
    assert exported[0]["target_ids"] == [contact.id]
    assert PHONE not in json.dumps(exported)
    assert NAME not in json.dumps(exported)


def test_export_erase_and_restrict_need_admin(api: ApiClient) -> None:
    ws = _workspace(api)
    contact = _contact(ws)
    base = f"/v1/workspaces/{ws}/contacts/{contact.id}"
    assert api.get(f"{base}/export", as_user=AGENT).status == 403
    assert api.post(f"{base}/erase", as_user=AGENT).status == 403
    assert api.post(f"{base}/restrict", as_user=AGENT).status == 403
    assert contact_repository().get(ws, contact.id).restricted is False  # type: ignore[union-attr]
    assert api.post(f"{base}/restrict", as_user=ADMIN).status == 200
    assert contact_repository().get(ws, contact.id).restricted is True  # type: ignore[union-attr]
    assert api.post(f"{base}/unrestrict", as_user=AGENT).status == 403
    assert contact_repository().get(ws, contact.id).restricted is True  # type: ignore[union-attr]
    assert api.post(f"{base}/unrestrict", as_user=ADMIN).json["restricted"] is False
    assert contact_repository().get(ws, contact.id).restricted is False  # type: ignore[union-attr]
    actions = [e["action"] for e in api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN).json["items"]]
    assert "contact.restricted" in actions
    assert "contact.unrestricted" in actions


def test_unknown_contact_is_404_not_workspace_404(api: ApiClient) -> None:
    ws = _workspace(api)
    response = api.get(f"/v1/workspaces/{ws}/contacts/nope/export", as_user=ADMIN)
    assert response.status == 404
    assert response.json["detail"] == "Contact not found"
    assert api.post(f"/v1/workspaces/{ws}/contacts/nope/erase", as_user=ADMIN).status == 404


def test_a_contact_of_another_workspace_is_not_found(api: ApiClient) -> None:
    ws = _workspace(api)
    other = api.create_workspace("other@example.com", name="Other")
    foreign = _contact(other)
    assert api.get(f"/v1/workspaces/{ws}/contacts/{foreign.id}/export", as_user=OWNER).status == 404
    assert api.post(f"/v1/workspaces/{ws}/contacts/{foreign.id}/erase", as_user=OWNER).status == 404
    assert contact_repository().get(other, foreign.id) is not None


# --- erasure -------------------------------------------------------------------------------------------------


def test_erase_leaves_no_trace_outside_billing_records(api: ApiClient) -> None:
    ws = _workspace(api)
    contact = _contact(ws)
    bystander = _contact(ws, phone="+6281311112222", wa_id="6281311112222", name="Rudi", email="rudi@example.org")
    messages = [_inbound(ws, contact.id, f"wamid.E{i}", text) for i, text in enumerate(TEXTS)]
    kept = _inbound(ws, bystander.id, "wamid.keep", "pesan orang lain")
    # The contact reacts to one of the messages: a reaction item of its own, and a copy on the target.
    reaction = message_store.record_inbound(
        message_store.NewInboundMessage(
            ws=ws,
            contact_id=contact.id,
            wamid="wamid.R",
            type="reaction",
            content={"message_id": "wamid.E1", "emoji": "\U0001f44d"},
            message_at=clock.now(),
            in_conversation=False,
        )
    )
    assert reaction is not None
    assert message_store.attach_reaction(
        ws,
        messages[1].id,
        message_store.Reaction(emoji="\U0001f44d", from_wa_id=WA_ID, wamid="wamid.R", at=clock.now()),
    )
    s3 = boto3.client("s3")
    bucket = get_settings().media_bucket
    for msg in messages:
        s3.put_object(Bucket=bucket, Key=f"media/{ws}/{msg.id}", Body=f"photo of {NAME}".encode())
    s3.put_object(Bucket=bucket, Key=f"media/{ws}/{kept.id}", Body=b"other photo")
    # A delivered outbound status with pricing writes a billing record; an early status is pending.
    message_statuses.apply_status(
        ws,
        messages[0].id,
        status_changes.StatusChange(
            wamid="wamid.E0",
            status="delivered",
            at=clock.now(),
            pricing={"category": "service", "pricing_model": "PMP", "type": "free_customer_service"},
            billable=True,
        ),
    )
    message_statuses.put_pending_status(
        ws, status_changes.StatusChange(wamid="wamid.E1", status="read", at=clock.now())
    )
    m.BroadcastRecipientModel(
        m.broadcast_pk(ws, "b1"), f"RCPT#{contact.id}", ws_id=ws, broadcast_id="b1", contact_id=contact.id
    ).save()
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

    # Bulk copies: a finished export and a finished import hold the person; an import still to run does not
    # (a bystander's row) and must survive, or the erasure would break it.
    export = api.export_contacts(ws, "json", as_user=ADMIN)
    assert export["status"] == "completed"
    imported = api.request(
        "POST",
        f"/v1/workspaces/{ws}/contacts/imports",
        body=f"phone,name\n{PHONE},{NAME}\n".encode(),
        headers={"content-type": "text/csv"},
        as_user=ADMIN,
    )
    assert imported.status == 202, imported.body
    run_import_worker()
    pending = api.post(f"/v1/workspaces/{ws}/contacts/imports", {"filename": "later.csv"}, as_user=ADMIN)
    assert pending.status == 202, pending.body
    pending_key = f"imports/{ws}/{pending.json['id']}.csv"
    s3.put_object(Bucket=bucket, Key=pending_key, Body=b"phone,name\n+6281311112222,Rudi\n")

    response = api.post(f"/v1/workspaces/{ws}/contacts/{contact.id}/erase", as_user=ADMIN)
    assert response.status == 200, response.body
    assert response.json == {
        "id": contact.id,
        "erased": True,
        "messages": 2,
        "media_objects": 2,
        "broadcast_recipients": 1,
        "bulk_files": 2,
    }
    gone = api.get(f"/v1/workspaces/{ws}/contacts/exports/{export['id']}", as_user=ADMIN).json
    assert gone["status"] == "failed"
    assert gone["url"] is None

    # A wamid encodes the phone: not even the kept billing record may hold one.
    needles = [PHONE, WA_ID, NAME, NAME.lower(), EMAIL, *TEXTS, "wamid.E0", "wamid.E1", "wamid.R"]
    billing = []
    for item in _table_items():
        if item["PK"]["S"].startswith(f"WS#{ws}#BILLING#"):
            billing.append(item)
            # Billing records hold ids, category and pricing only.
            assert set(item) <= {
                "PK", "SK", "ws_id", "message_id", "category", "pricing_model", "type", "billable", "at",
                "created_at", "updated_at", "expires_at", "expiry_bucket",
            }, set(item)  # fmt: skip
        text = json.dumps(item)
        for needle in needles:
            assert needle not in text, (needle, item["PK"], item["SK"])
        assert contact.id not in text or item["PK"]["S"].startswith((f"WS#{ws}#AUDIT", f"WS#{ws}#BILLING#")), item
    assert len(billing) == 1  # kept, as the law requires
    objects = _bucket_objects()
    for key, body in objects.items():
        assert all(n.encode() not in body for n in needles), key
    assert set(objects) == {f"media/{ws}/{kept.id}", pending_key}
    keys = {(i["PK"]["S"], i["SK"]["S"]) for i in _table_items()}
    assert (m.message_pk(ws, reaction.id), "MSG") not in keys
    assert not any(pk.startswith(("WAMID#wamid.E", "WAMID#wamid.R")) for pk, _ in keys)

    # The bystander and their conversation are untouched.
    assert contact_repository().get(ws, bystander.id) is not None
    assert message_store.get_message(ws, kept.id) is not None
    assert api.get(f"/v1/workspaces/{ws}/contacts/{contact.id}/export", as_user=ADMIN).status == 404
    # The phone is free again: a new contact may use it.
    assert _contact(ws).id != contact.id

    erased = [
        e for e in api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN).json["items"] if e["action"] == "contact.erased"
    ]
    assert len(erased) == 1
    assert erased[0]["target_ids"] == [contact.id]


def test_deleting_a_contact_removes_its_conversation_too(api: ApiClient) -> None:
    """An admin's DELETE takes the contact's messages and media with it (erasure's path): left behind
    they would be served by id for up to 90 days, out of reach of export and of erasure."""
    ws = _workspace(api)
    contact = _contact(ws)
    bystander = _contact(ws, phone="+6281311112222", wa_id="6281311112222", name="Rudi", email="rudi@example.org")
    messages = [_inbound(ws, contact.id, f"wamid.D{i}", text) for i, text in enumerate(TEXTS)]
    kept = _inbound(ws, bystander.id, "wamid.keepD", "pesan orang lain")
    s3 = boto3.client("s3")
    bucket = get_settings().media_bucket
    s3.put_object(Bucket=bucket, Key=f"media/{ws}/{messages[0].id}", Body=b"photo")
    assert api.get(f"/v1/workspaces/{ws}/messages/{messages[0].id}", as_user=AGENT).status == 200

    assert api.delete(f"/v1/workspaces/{ws}/contacts/{contact.id}", as_user=ADMIN).status == 204

    for message in messages:
        assert api.get(f"/v1/workspaces/{ws}/messages/{message.id}", as_user=AGENT).status == 404
        assert message_store.get_message(ws, message.id) is None
    assert f"media/{ws}/{messages[0].id}" not in _bucket_objects()
    table = json.dumps(_table_items())
    assert all(text not in table for text in TEXTS)
    assert NAME not in table
    assert PHONE not in table
    assert message_store.get_message(ws, kept.id) is not None  # the bystander's conversation stays
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=ADMIN).json["items"]
    deleted = [e for e in audit if e["action"] == "contact.deleted"]
    assert [e["target_ids"] for e in deleted] == [[contact.id]]
    assert api.delete(f"/v1/workspaces/{ws}/contacts/{contact.id}", as_user=ADMIN).status == 404


# --- the caller's own account ---------------------------------------------------------------------------------


def test_me_export_has_profile_and_memberships(api: ApiClient) -> None:
    ws = _workspace(api)
    response = api.get("/v1/me/export", as_user=ADMIN)
    assert response.status == 200
    body = response.json
    assert body["profile"]["email"] == ADMIN
    assert [(ms["workspace_id"], ms["role"]) for ms in body["memberships"]] == [(ws, "admin")]


def test_delete_me_refused_for_the_last_owner_of_an_active_workspace(api: ApiClient) -> None:
    ws = _workspace(api)
    refused = api.delete("/v1/me", as_user=OWNER)
    assert refused.status == 409
    assert refused.content_type == "application/problem+json"
    assert refused.json["workspace_id"] == ws
    assert api.get(f"/v1/workspaces/{ws}", as_user=OWNER).status == 200  # nothing was removed


def test_delete_me_removes_user_and_memberships(api: ApiClient) -> None:
    ws = _workspace(api)
    admin_id = api.get("/v1/me", as_user=ADMIN).json["id"]
    token = api.token(ADMIN)
    assert api.delete("/v1/me", token=token).status == 204
    assert m.UserModel.get_live(m.user_pk(admin_id), "PROFILE") is None
    # Only log entries (ids, no personal data) still name the user.
    leftovers = [
        (i["PK"]["S"], i["SK"]["S"]) for i in _table_items() if admin_id in json.dumps(i) or ADMIN in json.dumps(i)
    ]
    assert all(pk.startswith(("SECURITY#", f"WS#{ws}#AUDIT", "USAGE#")) for pk, _ in leftovers), leftovers
    members = api.get(f"/v1/workspaces/{ws}/members", as_user=OWNER).json["items"]
    assert ADMIN not in [mb["email"] for mb in members]
    # The token is still valid for the authorizer, but the account is gone (test_delete_me_lasts.py).
    assert api.get(f"/v1/workspaces/{ws}", token=token).status == 401


def test_an_owner_with_a_co_owner_may_delete_themselves(api: ApiClient) -> None:
    ws = _workspace(api)
    admin_id = api.get("/v1/me", as_user=ADMIN).json["id"]
    assert api.patch(f"/v1/workspaces/{ws}/members/{admin_id}", {"role": "owner"}, as_user=OWNER).status == 200
    assert api.delete("/v1/me", as_user=OWNER).status == 204
    assert [w["role"] for w in api.get("/v1/workspaces", as_user=ADMIN).json["items"]] == ["owner"]


# --- workspace close -------------------------------------------------------------------------------------------


def test_close_is_owner_only_and_makes_the_workspace_unreadable_at_once(api: ApiClient) -> None:
    ws = _workspace(api)
    contact = _contact(ws)
    assert api.post(f"/v1/workspaces/{ws}/close", as_user=ADMIN).status == 403
    closed = api.post(f"/v1/workspaces/{ws}/close", as_user=OWNER)
    assert closed.status == 200, closed.body
    assert closed.json["status"] == "closed"
    deleted_after = datetime.fromisoformat(closed.json["data_deleted_after"])
    closed_at = datetime.fromisoformat(closed.json["closed_at"])
    assert timedelta(days=90) - timedelta(seconds=1) < deleted_after - closed_at <= timedelta(days=90)  # epoch seconds

    for user in (OWNER, ADMIN, AGENT):
        for path in ("", "/members", "/audit", f"/contacts/{contact.id}/export"):
            response = api.get(f"/v1/workspaces/{ws}{path}", as_user=user)
            assert response.status == 404, (user, path, response.status)
            assert response.json["detail"] == "Workspace not found"
        assert api.get("/v1/workspaces", as_user=user).json["items"] == []
    # A second close is indistinguishable from a foreign workspace.
    assert api.post(f"/v1/workspaces/{ws}/close", as_user=OWNER).status == 404
    assert contact_repository().get(ws, contact.id) is not None  # kept for the window, unreadable


def test_closed_workspace_data_is_gone_after_the_window(api: ApiClient) -> None:
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    clock.set_clock(lambda: start)
    try:
        ws = _workspace(api)
        contact = _contact(ws)
        boto3.client("s3").put_object(Bucket=get_settings().media_bucket, Key=f"imports/{ws}/list.csv", Body=b"x")
        assert api.post(f"/v1/workspaces/{ws}/close", as_user=OWNER).status == 200
        sweep_store.set_checkpoint(start.date())  # the daily sweep has been running
        sweep.run()  # it stamps closure + 90 days
        assert contact_repository().get(ws, contact.id) is not None

        # Closure + 90 days, plus the sweep's grace period (DynamoDB's free TTL deletes come first).
        clock.set_clock(lambda: start + timedelta(days=90, seconds=1) + retention.sweep_grace())
        reset_warm_state()
        sweep_store.set_checkpoint(start.date() + timedelta(days=89))  # ...every day in between
        report = sweep.run()
        assert report.deleted["account"] >= 8
        remaining = [i for i in _table_items() if i["PK"]["S"].startswith(f"WS#{ws}")]
        # Only the workspace's security log stays (24-month window), never its account data.
        assert {i["PK"]["S"] for i in remaining} <= {f"WS#{ws}#AUDIT"}
        assert not any(k.startswith(f"imports/{ws}/") for k in _bucket_objects())
        assert api.get(f"/v1/workspaces/{ws}", as_user=OWNER).status == 404
    finally:
        clock.set_clock(None)
