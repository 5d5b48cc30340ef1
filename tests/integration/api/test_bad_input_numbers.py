"""Numbers DynamoDB cannot store (NaN, Infinity, 1e400 -> inf, more than 38 significant digits, magnitudes
outside 1E-130..9.99E+125) are a 422 naming the field on every route, never a failed write (500); numbers it
can store still round-trip. Free-form fields (contact attributes, template components, interactive header
and action) are the ones typed validation cannot see into."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.test_send_support import AGENT, OWNER, SendingEnv, sending_environment
from tests.support.api import ApiClient, ApiResponse

PLACEHOLDER = "__number__"
# Raw JSON literals: Python's json module (and so the resolver, unguarded) parses every one of them.
UNSTORABLE = {
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "overflow-to-inf": "1e400",
    "minus-overflow": "-1e400",
    "above-9.99e125": "1.5e126",
    "below-1e-130": "1e-200",
    "39-digit-int": "1" * 39,
    "5000-digit-int": "7" * 5000,  # past Python's int parsing limit, too
}


def raw_body(template: dict[str, Any], literal: str) -> bytes:
    return json.dumps(template).replace(json.dumps(PLACEHOLDER), literal).encode()


def assert_unstorable_422(response: ApiResponse, location: str) -> None:
    assert response.status == 422, (response.status, response.body[:300])
    assert response.content_type.startswith("application/problem+json")
    problem = response.json
    assert problem["type"].endswith("/validation-error")
    [error] = problem["errors"]
    assert error["location"] == location, problem
    assert error["type"] == "number_unstorable"
    assert "38 significant digits" in error["message"]


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def send(env: SendingEnv, method: str, path: str, body: bytes, **headers: str) -> ApiResponse:
    headers = {"content-type": "application/json", **headers}
    return env.api.request(method, f"/v1/workspaces/{env.ws}{path}", body=body, headers=headers, as_user=OWNER)


@pytest.mark.parametrize("literal", list(UNSTORABLE.values()), ids=list(UNSTORABLE))
def test_contact_attributes_refuse_unstorable_numbers(env: SendingEnv, literal: str) -> None:
    body = {"phone": "+6281234567890", "attributes": {"city": "Bandung", "score": PLACEHOLDER}}
    assert_unstorable_422(send(env, "POST", "/contacts", raw_body(body, literal)), "body/attributes/score")

    contact = env.contact(phone="+6281234567891", inbound_hours_ago=None)
    patch = {"attributes": {"score": PLACEHOLDER}}
    response = send(env, "PATCH", f"/contacts/{contact.id}", raw_body(patch, literal))
    assert_unstorable_422(response, "body/attributes/score")

    listed = env.api.get(f"/v1/workspaces/{env.ws}/contacts", as_user=OWNER).json["items"]
    assert [(c["id"], c["attributes"]) for c in listed] == [(contact.id, {})]


def test_storable_numbers_round_trip_in_attributes(env: SendingEnv) -> None:
    edge = {
        "digits_38": int("9" * 38),
        "trailing_zeros": 10**40,  # one significant digit: DynamoDB trims trailing zeros
        "largest": 9.99e125,
        "smallest": 1e-130,
        "negative": -1e-130,
        "zero": 0,
        "fraction": 0.1,
        "flag": True,
    }
    created = env.api.post(
        f"/v1/workspaces/{env.ws}/contacts", {"phone": "+6281234567892", "attributes": edge}, as_user=OWNER
    )
    assert created.status == 201, created.body
    got = env.api.get(f"/v1/workspaces/{env.ws}/contacts/{created.json['id']}", as_user=OWNER)
    assert got.json["attributes"] == edge


@pytest.mark.parametrize("literal", ["NaN", "1e400", "1" * 39], ids=["nan", "overflow", "39-digits"])
def test_template_components_refuse_unstorable_numbers(env: SendingEnv, literal: str) -> None:
    definition = {
        "name": "promo_angka",
        "language": "id",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Diskon {{1}}", "example": {"body_text": [[PLACEHOLDER]]}}],
    }
    response = send(env, "POST", "/templates", raw_body(definition, literal))
    assert_unstorable_422(response, "body/components/0/example/body_text/0/0")
    listed = env.api.get(f"/v1/workspaces/{env.ws}/templates", as_user=OWNER)
    assert "promo_angka" not in [t["name"] for t in listed.json["items"]]


@pytest.mark.parametrize("literal", ["NaN", "-Infinity", "1e400", "1" * 39], ids=["nan", "-inf", "overflow", "39"])
def test_template_message_components_refuse_unstorable_numbers(env: SendingEnv, literal: str) -> None:
    contact = env.contact(inbound_hours_ago=None)
    env.approved_template()
    parameter = {"type": "currency", "currency": {"fallback_value": "Rp", "code": "IDR", "amount_1000": PLACEHOLDER}}
    body = {
        "contact_id": contact.id,
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "id"},
            "components": [{"type": "body", "parameters": [parameter]}],
        },
    }
    response = send(env, "POST", "/messages", raw_body(body, literal), **{"idempotency-key": f"num-{literal[:8]}"})
    assert_unstorable_422(response, "body/template/components/0/parameters/0/currency/amount_1000")
    assert env.sends() == []


@pytest.mark.parametrize("where", ["header", "action"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"], ids=["nan", "inf", "overflow"])
def test_interactive_header_and_action_refuse_unstorable_numbers(env: SendingEnv, where: str, literal: str) -> None:
    contact = env.contact()  # inside the service window
    interactive: dict[str, Any] = {
        "type": "button",
        "header": {"type": "text", "text": "Pesanan"},
        "body": {"text": "Konfirmasi?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Ya"}}]},
    }
    interactive[where]["rank"] = PLACEHOLDER
    body = {"contact_id": contact.id, "type": "interactive", "interactive": interactive}
    response = send(env, "POST", "/messages", raw_body(body, literal), **{"idempotency-key": f"i-{where}-{literal}"})
    assert_unstorable_422(response, f"body/interactive/{where}/rank")
    assert env.sends() == []


def test_a_non_member_learns_nothing_from_an_unstorable_number(env: SendingEnv) -> None:
    body = raw_body({"phone": "+6281234567893", "attributes": {"x": PLACEHOLDER}}, "NaN")
    response = env.api.request(
        "POST",
        f"/v1/workspaces/{env.ws}/contacts",
        body=body,
        headers={"content-type": "application/json"},
        as_user="stranger@example.com",
    )
    assert response.status == 404, response.body


def test_agent_gets_the_same_422(env: SendingEnv) -> None:
    body = raw_body({"phone": "+6281234567894", "attributes": {"x": PLACEHOLDER}}, "Infinity")
    response = env.api.request(
        "POST",
        f"/v1/workspaces/{env.ws}/contacts",
        body=body,
        headers={"content-type": "application/json"},
        as_user=AGENT,
    )
    assert_unstorable_422(response, "body/attributes/x")
