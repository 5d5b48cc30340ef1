"""Connecting a WhatsApp number needs Graph's proof of ownership (SPEC section 3), tested from the
attacker's side through the API: a workspace that names someone else's WhatsApp Business Account
(WABA) gets a 422 and nothing is stored, so the victim's account webhooks never reach it."""

from __future__ import annotations

import base64
import time
from typing import Any

import boto3
from relasify.data.identity import identity_repository
from relasify.services.webhook import process_payload
from relasify.settings import get_settings
from relasify_local.sandbox import Sandbox

from tests.support.api import ApiClient

VICTIM = "victim@example.com"
ATTACKER = "attacker@example.com"
VICTIM_WABA = "102345678901234"  # the sandbox's seeded account
VICTIM_NUMBER = "109876543210987"
VICTIM_TOKEN = "EAAG-victim-token"
ATTACKER_WABA = "203456789012345"
ATTACKER_NUMBER = "309876543210987"
ATTACKER_TOKEN = "attacker-own-token-1"


def _connect(api: ApiClient, ws: str, user: str, waba: str, number: str, token: str) -> Any:
    body = {"waba_id": waba, "phone_number_id": number, "display_phone_number": "6281234599999", "access_token": token}
    return api.put(f"/v1/workspaces/{ws}/whatsapp", body, as_user=user)


def _slug(response: Any) -> str:
    return str(response.json["type"]).rsplit("/", 1)[-1]


def _stored_items_of(ws: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().table_name)["Items"]
    return [i for i in items if ws in str(i.get("pk", {})) or ws in str(i.get("ws", {}))]


def _assert_nothing_connected(api: ApiClient, ws: str, *numbers: str) -> None:
    assert api.get(f"/v1/workspaces/{ws}/whatsapp", as_user=ATTACKER).status == 404
    assert identity_repository().get_whatsapp_connection(ws) is None
    for number in numbers:
        route = identity_repository().route_by_phone_number_id(number)
        assert route is None or route.ws != ws
    assert not [i for i in _stored_items_of(ws) if "encrypted_access_token" in i or "waba_id" in i]
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=ATTACKER).json["items"]
    assert not [e for e in audit if e["action"].startswith("whatsapp.")]


def _account_update(waba_id: str) -> dict[str, Any]:
    """`account_update` carries no phone number id: it is routed by the WABA id (entry[].id)."""
    change = {
        "field": "account_update",
        "value": {
            "event": "ACCOUNT_RESTRICTION",
            "restriction_info": [{"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": "1"}],
        },
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "time": int(time.time()), "changes": [change]}],
    }


def test_naming_a_victims_waba_with_own_number_and_token_is_refused_and_stores_nothing(
    api: ApiClient, graph_sandbox: Sandbox
) -> None:
    victim_ws = api.create_workspace(VICTIM, name="Toko Korban")
    assert _connect(api, victim_ws, VICTIM, VICTIM_WABA, VICTIM_NUMBER, VICTIM_TOKEN).status == 200
    # The attacker really owns a number and a token, in their own account.
    graph_sandbox.register_number(
        ATTACKER_NUMBER, waba_id=ATTACKER_WABA, display_phone_number="6281299990000", token=ATTACKER_TOKEN
    )
    attacker_ws = api.create_workspace(ATTACKER, name="Toko Penyerang")
    subscriptions_before = graph_sandbox.subscribed_apps

    refused = _connect(api, attacker_ws, ATTACKER, VICTIM_WABA, ATTACKER_NUMBER, ATTACKER_TOKEN)

    assert refused.status == 422, refused.body
    assert refused.content_type.startswith("application/problem+json")
    assert _slug(refused) == "phone-number-not-in-account"
    assert ATTACKER_TOKEN not in refused.body.decode()
    _assert_nothing_connected(api, attacker_ws, ATTACKER_NUMBER, VICTIM_NUMBER)
    assert graph_sandbox.subscribed_apps == subscriptions_before  # the app was not subscribed for them
    assert [r.ws for r in identity_repository().routes_by_waba_id(VICTIM_WABA)] == [victim_ws]

    # The victim's account-level webhook reaches the victim and nobody else.
    process_payload(_account_update(VICTIM_WABA))
    victim = api.get(f"/v1/workspaces/{victim_ws}/whatsapp", as_user=VICTIM).json
    assert victim["account_status"] == "ACCOUNT_RESTRICTION"
    assert victim["restrictions"][0]["restriction_type"] == "RESTRICTED_ADD_PHONE_NUMBER_ACTION"
    assert identity_repository().get_whatsapp_connection(attacker_ws) is None
    # ... and the attacker cannot touch the victim's templates at Meta.
    assert api.delete(f"/v1/workspaces/{attacker_ws}/templates/promo", as_user=ATTACKER).status in (404, 409)
    assert not [r for r in graph_sandbox.requests if r["method"] == "DELETE"]


def test_a_victims_number_with_a_token_that_cannot_read_it_is_refused(api: ApiClient, graph_sandbox: Sandbox) -> None:
    graph_sandbox.register_number(
        ATTACKER_NUMBER, waba_id=ATTACKER_WABA, display_phone_number="6281299990000", token=ATTACKER_TOKEN
    )
    attacker_ws = api.create_workspace(ATTACKER)
    for waba in (VICTIM_WABA, ATTACKER_WABA):
        refused = _connect(api, attacker_ws, ATTACKER, waba, VICTIM_NUMBER, ATTACKER_TOKEN)
        assert refused.status == 422, refused.body
        assert _slug(refused) == "whatsapp-credentials-rejected"
        assert refused.json["meta_error_code"] == 100
    _assert_nothing_connected(api, attacker_ws, VICTIM_NUMBER)
    assert graph_sandbox.subscribed_apps == []


def test_a_token_graph_refuses_is_credentials_rejected(api: ApiClient, graph_sandbox: Sandbox) -> None:
    ws = api.create_workspace(ATTACKER)
    refused = _connect(api, ws, ATTACKER, VICTIM_WABA, VICTIM_NUMBER, "made-up-token-123")
    assert refused.status == 422, refused.body
    assert _slug(refused) == "whatsapp-credentials-rejected"
    assert refused.json["meta_error_code"] == 190
    _assert_nothing_connected(api, ws, VICTIM_NUMBER)
    # Only the read that failed was made: no listing, no subscription.
    assert [(r["method"], r["path"].split("/", 2)[-1]) for r in graph_sandbox.requests] == [("GET", VICTIM_NUMBER)]


def test_a_refused_reconnect_leaves_the_existing_connection_as_it_was(api: ApiClient, graph_sandbox: Sandbox) -> None:
    ws = api.create_workspace(VICTIM)
    assert _connect(api, ws, VICTIM, VICTIM_WABA, VICTIM_NUMBER, VICTIM_TOKEN).status == 200
    before = identity_repository().get_whatsapp_connection(ws)
    assert before is not None

    for token in ("made-up-token-123", ATTACKER_TOKEN):
        refused = _connect(api, ws, VICTIM, VICTIM_WABA, VICTIM_NUMBER, token)
        assert refused.status == 422, refused.body

    after = identity_repository().get_whatsapp_connection(ws)
    assert after is not None
    assert after.encrypted_access_token == before.encrypted_access_token
    assert (after.waba_id, after.phone_number_id, after.updated_at) == (VICTIM_WABA, VICTIM_NUMBER, before.updated_at)
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=VICTIM).json["items"]
    assert len([e for e in audit if e["action"] == "whatsapp.token_changed"]) == 1


def test_an_owned_number_connects_subscribes_the_app_and_shows_metas_quality_and_limit(
    api: ApiClient, graph_sandbox: Sandbox
) -> None:
    graph_sandbox.register_number(
        ATTACKER_NUMBER,
        waba_id=ATTACKER_WABA,
        display_phone_number="6281299990000",
        token=ATTACKER_TOKEN,
        quality_rating="YELLOW",
        messaging_limit="TIER_10K",
    )
    ws = api.create_workspace(VICTIM)
    connected = _connect(api, ws, VICTIM, ATTACKER_WABA, ATTACKER_NUMBER, ATTACKER_TOKEN)
    assert connected.status == 200, connected.body
    assert graph_sandbox.subscribed_apps == [ATTACKER_WABA]
    shown = api.get(f"/v1/workspaces/{ws}/whatsapp", as_user=VICTIM).json
    assert (shown["quality_rating"], shown["messaging_limit"]) == ("YELLOW", "TIER_10K")
    assert shown["display_phone_number"] == "6281299990000"  # Meta's, not the request's
    calls = [(r["method"], r["path"].split("/", 2)[-1]) for r in graph_sandbox.requests]
    assert calls == [
        ("GET", ATTACKER_NUMBER),
        ("GET", f"{ATTACKER_WABA}/phone_numbers"),
        ("POST", f"{ATTACKER_WABA}/subscribed_apps"),
    ]
    # Stored encrypted, never in clear.
    items = boto3.client("dynamodb").scan(TableName=get_settings().table_name)["Items"]
    assert ATTACKER_TOKEN not in str(items)
    assert ATTACKER_TOKEN.encode() not in b"".join(
        base64.b64decode(i["encrypted_access_token"]["S"]) for i in items if "encrypted_access_token" in i
    )


def test_graph_failing_during_the_proof_is_503_and_stores_nothing(api: ApiClient, graph_sandbox: Sandbox) -> None:
    ws = api.create_workspace(VICTIM)
    graph_sandbox.inject_fault("500", count=10)
    failed = _connect(api, ws, VICTIM, VICTIM_WABA, VICTIM_NUMBER, VICTIM_TOKEN)
    assert failed.status == 503, failed.body
    assert failed.content_type.startswith("application/problem+json")
    assert _slug(failed) == "whatsapp-unavailable"
    assert identity_repository().get_whatsapp_connection(ws) is None
    assert identity_repository().route_by_phone_number_id(VICTIM_NUMBER) is None
    assert graph_sandbox.subscribed_apps == []


def test_one_number_belongs_to_one_workspace_and_only_its_owner_learns_it_is_taken(
    api: ApiClient, graph_sandbox: Sandbox
) -> None:
    first = api.create_workspace(VICTIM)
    assert _connect(api, first, VICTIM, VICTIM_WABA, VICTIM_NUMBER, VICTIM_TOKEN).status == 200
    second = api.create_workspace(ATTACKER)
    # Someone who cannot prove ownership gets the same 422 as for any number: no hint it is connected.
    stranger = _connect(api, second, ATTACKER, VICTIM_WABA, VICTIM_NUMBER, "made-up-token-123")
    assert (stranger.status, _slug(stranger)) == (422, "whatsapp-credentials-rejected")
    # The number's real owner, from a second workspace, is told it is connected elsewhere.
    subscriptions = graph_sandbox.subscribed_apps
    clash = _connect(api, second, ATTACKER, VICTIM_WABA, VICTIM_NUMBER, "EAAG-same-business-other-token")
    assert clash.status == 409, clash.body
    assert graph_sandbox.subscribed_apps == subscriptions
    assert identity_repository().get_whatsapp_connection(second) is None
    assert identity_repository().route_by_phone_number_id(VICTIM_NUMBER).ws == first  # type: ignore[union-attr]


def test_a_token_that_cannot_be_a_header_is_422_without_calling_graph(api: ApiClient, graph_sandbox: Sandbox) -> None:
    ws = api.create_workspace(VICTIM)
    for token in ("EAAG with spaces in it", "EAAG-tökén-ünicode", "EAAG-token\r\nX-Injected: 1"):
        refused = _connect(api, ws, VICTIM, VICTIM_WABA, VICTIM_NUMBER, token)
        assert refused.status == 422, refused.body
        assert _slug(refused) == "validation-error"
        assert token not in refused.body.decode()
    assert graph_sandbox.requests == []
    assert identity_repository().get_whatsapp_connection(ws) is None
