"""Against the running local stack: connecting a WhatsApp number needs the sandbox (Graph) to confirm
ownership; naming someone else's WhatsApp Business Account is refused and nothing is connected."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SEEDED_WABA = "102345678901234"


def _random_id() -> str:
    return str(100000000000000 + uuid.uuid4().int % 10**14)


def test_a_victims_waba_cannot_be_claimed_with_another_number_and_token(local_stack: Any) -> None:
    victim_number = _random_id()
    local_stack.register_whatsapp_account(SEEDED_WABA, victim_number, "EAAG-e2e-victim-token")
    attacker_waba, attacker_number = _random_id(), _random_id()
    local_stack.register_whatsapp_account(attacker_waba, attacker_number, "e2e-attacker-own-token")

    with local_stack.client(headers=local_stack.auth_headers("victim-e2e@example.com")) as victim:
        victim_ws = victim.post("/v1/workspaces", json={"name": "Toko Korban"}).json()["id"]
        connect = {
            "waba_id": SEEDED_WABA,
            "phone_number_id": victim_number,
            "display_phone_number": "6281234500000",
            "access_token": "EAAG-e2e-victim-token",
        }
        connected = victim.put(f"/v1/workspaces/{victim_ws}/whatsapp", json=connect)
        assert connected.status_code == 200, connected.text
        assert connected.json()["quality_rating"] == "GREEN"  # read from Meta (the sandbox) while connecting

    with local_stack.client(headers=local_stack.auth_headers("attacker-e2e@example.com")) as attacker:
        attacker_ws = attacker.post("/v1/workspaces", json={"name": "Toko Penyerang"}).json()["id"]
        claims = [
            (
                {"phone_number_id": attacker_number, "access_token": "e2e-attacker-own-token"},
                "phone-number-not-in-account",
            ),
            (
                {"phone_number_id": victim_number, "access_token": "e2e-attacker-own-token"},
                "whatsapp-credentials-rejected",
            ),
            ({"phone_number_id": victim_number, "access_token": "not-a-meta-token"}, "whatsapp-credentials-rejected"),
        ]
        for claim, problem in claims:
            body = {"waba_id": SEEDED_WABA, "display_phone_number": "6281234500000", **claim}
            refused = attacker.put(f"/v1/workspaces/{attacker_ws}/whatsapp", json=body)
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["type"].endswith(f"/{problem}")
        assert attacker.get(f"/v1/workspaces/{attacker_ws}/whatsapp").status_code == 404
