"""Who a send reaches after the contact's number changes, when `unreachable` lifts, and that a
refused send by phone creates no contact: through the API harness against the WhatsApp sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from relasify.data.contacts import contact_repository

from tests.integration.api.test_send_support import (
    AGENT,
    OWNER,
    PHONE_NUMBER_ID,
    SendingEnv,
    drain_broadcast_queue,
    problem_slug,
    sending_environment,
    template_body,
)
from tests.support.api import ApiClient

OLD_PHONE = "+6281234567890"
NEW_PHONE = "+6281298765432"


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _contact_out(env: SendingEnv, contact_id: str) -> dict[str, Any]:
    got = env.api.get(f"/v1/workspaces/{env.ws}/contacts/{contact_id}", as_user=AGENT)
    assert got.status == 200, got.body
    return dict(got.json)


def _change_phone(env: SendingEnv, contact_id: str, phone: str) -> dict[str, Any]:
    patched = env.api.patch(f"/v1/workspaces/{env.ws}/contacts/{contact_id}", {"phone": phone}, as_user=AGENT)
    assert patched.status == 200, patched.body
    return dict(patched.json)


def _template_to(phone: str) -> dict[str, Any]:
    body = template_body("")
    del body["contact_id"]
    return {"to": phone, **body}


def _phones_listed(env: SendingEnv) -> list[str]:
    listed = env.api.get(f"/v1/workspaces/{env.ws}/contacts?limit=100", as_user=AGENT)
    assert listed.status == 200, listed.body
    return [item["phone"] for item in listed.json["items"]]


def test_a_corrected_phone_takes_the_whatsapp_id_with_it(env: SendingEnv) -> None:
    created = env.api.post(f"/v1/workspaces/{env.ws}/contacts", {"phone": OLD_PHONE, "name": "Budi"}, as_user=AGENT)
    assert created.status == 201, created.body
    contact_id = created.json["id"]
    # The customer writes from the old number: the inbound message links its wa_id to the contact.
    _, status = env.sandbox.post_inbound_message(
        PHONE_NUMBER_ID, OLD_PHONE[1:], {"type": "text", "text": {"body": "Hi"}}
    )
    assert status == 200
    assert _contact_out(env, contact_id)["wa_id"] == OLD_PHONE[1:]

    patched = _change_phone(env, contact_id, NEW_PHONE)
    assert patched["phone"] == NEW_PHONE
    assert patched["wa_id"] is None  # the old number's id is gone; Meta links the new one

    env.approved_template()
    sent = env.post_message(template_body(contact_id), "after-correction")
    assert sent.status == 201, sent.body
    assert [s["to"] for s in env.sends()] == [NEW_PHONE[1:]]
    assert _contact_out(env, contact_id)["wa_id"] == NEW_PHONE[1:]  # linked from Meta's answer

    # The old number's markers went with the correction: it can be someone else's contact now, and
    # its messages reach that contact, never the corrected one.
    other = env.api.post(f"/v1/workspaces/{env.ws}/contacts", {"phone": OLD_PHONE}, as_user=AGENT)
    assert other.status == 201, other.body
    _, status = env.sandbox.post_inbound_message(
        PHONE_NUMBER_ID, OLD_PHONE[1:], {"type": "text", "text": {"body": "Yo"}}
    )
    assert status == 200
    assert _contact_out(env, other.json["id"])["wa_id"] == OLD_PHONE[1:]
    by_phone = env.post_message(_template_to(OLD_PHONE), "to-old-number")
    assert by_phone.status == 201, by_phone.body
    assert by_phone.json["contact_id"] == other.json["id"]
    assert [s["to"] for s in env.sends()] == [NEW_PHONE[1:], OLD_PHONE[1:]]
    assert contact_repository().find_by_wa_id(env.ws, OLD_PHONE[1:]).id == other.json["id"]  # type: ignore[union-attr]


def test_a_broadcast_after_a_phone_correction_goes_to_the_new_number(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    contact = env.contact(OLD_PHONE, tags=["vip"], inbound_hours_ago=None)
    assert contact.wa_id == OLD_PHONE[1:]
    _change_phone(env, contact.id, NEW_PHONE)
    body = {"template": "promo", "language": "id", "audience": {"tags": ["vip"]}, "parameters": [{"field": "name"}]}
    created = env.api.post(f"/v1/workspaces/{env.ws}/broadcasts", body, as_user=OWNER)
    assert created.status == 202, created.body
    drain_broadcast_queue()
    assert [s["to"] for s in env.sends()] == [NEW_PHONE[1:]]


def test_a_user_id_only_contact_keeps_its_identity_on_other_changes(env: SendingEnv) -> None:
    created = env.api.post(f"/v1/workspaces/{env.ws}/contacts", {"user_id": "ID.1234567890"}, as_user=AGENT)
    assert created.status == 201, created.body
    patched = env.api.patch(f"/v1/workspaces/{env.ws}/contacts/{created.json['id']}", {"name": "Sari"}, as_user=AGENT)
    assert patched.status == 200, patched.body
    assert patched.json["user_id"] == "ID.1234567890"
    assert patched.json["phone"] is None


def test_clearing_the_phone_drops_its_wa_id_and_needs_a_user_id(env: SendingEnv) -> None:
    phone_only = env.contact(OLD_PHONE)
    refused = env.api.patch(f"/v1/workspaces/{env.ws}/contacts/{phone_only.id}", {"phone": None}, as_user=AGENT)
    assert refused.status == 422, refused.body  # its wa_id would be left naming a number it dropped
    created = env.api.post(
        f"/v1/workspaces/{env.ws}/contacts", {"phone": NEW_PHONE, "user_id": "ID.1234567890"}, as_user=AGENT
    )
    assert created.status == 201, created.body
    _, status = env.sandbox.post_inbound_message(
        PHONE_NUMBER_ID, NEW_PHONE[1:], {"type": "text", "text": {"body": "Hi"}}
    )
    assert status == 200
    assert _contact_out(env, created.json["id"])["wa_id"] == NEW_PHONE[1:]
    cleared = env.api.patch(f"/v1/workspaces/{env.ws}/contacts/{created.json['id']}", {"phone": None}, as_user=AGENT)
    assert cleared.status == 200, cleared.body
    assert (cleared.json["phone"], cleared.json["wa_id"], cleared.json["user_id"]) == (None, None, "ID.1234567890")
    assert contact_repository().find_by_wa_id(env.ws, NEW_PHONE[1:]) is None


def test_unreachable_shows_and_lifts_when_the_contact_writes(env: SendingEnv) -> None:
    contact = env.contact(OLD_PHONE, unreachable=True)
    assert _contact_out(env, contact.id)["unreachable"] is True
    refused = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "x"}}, "while-unreachable")
    assert refused.status == 409
    assert problem_slug(refused) == "recipient-unreachable"

    _, status = env.sandbox.post_inbound_message(
        PHONE_NUMBER_ID, OLD_PHONE[1:], {"type": "text", "text": {"body": "Hi"}}
    )
    assert status == 200
    assert _contact_out(env, contact.id)["unreachable"] is False
    sent = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "x"}}, "after-inbound")
    assert sent.status == 201, sent.body


def test_unreachable_lifts_when_the_phone_changes(env: SendingEnv) -> None:
    contact = env.contact(OLD_PHONE, unreachable=True)
    assert _change_phone(env, contact.id, NEW_PHONE)["unreachable"] is False
    env.approved_template()
    sent = env.post_message(template_body(contact.id), "after-new-phone")
    assert sent.status == 201, sent.body
    assert [s["to"] for s in env.sends()] == [NEW_PHONE[1:]]


def test_a_refused_send_by_phone_creates_no_contact(env: SendingEnv) -> None:
    refused = env.post_message({"to": "0812-9876-5432", "type": "text", "text": {"body": "Halo"}}, "free-text-new")
    assert refused.status == 409
    assert problem_slug(refused) == "outside-service-window"
    unapproved = env.post_message(_template_to(NEW_PHONE), "unapproved-template")
    assert unapproved.status == 409
    assert problem_slug(unapproved) == "template-not-approved"
    assert NEW_PHONE not in _phones_listed(env)
    assert contact_repository().find_by_wa_id(env.ws, NEW_PHONE[1:]) is None
    assert env.sends() == []


def test_an_allowed_send_by_phone_creates_the_contact_once(env: SendingEnv) -> None:
    env.approved_template()
    body = _template_to(NEW_PHONE)
    first = env.post_message(body, "template-new")
    assert first.status == 201, first.body
    repeat = env.post_message(body, "template-new")  # same key: the stored answer, no second contact
    assert repeat.status == 201
    assert repeat.json["id"] == first.json["id"]
    assert _phones_listed(env).count(NEW_PHONE) == 1
    assert _contact_out(env, first.json["contact_id"])["phone"] == NEW_PHONE
    assert len(env.sends()) == 1
