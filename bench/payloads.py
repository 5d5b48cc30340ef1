"""WhatsApp webhook payloads the benches post, shaped like Meta's (/work/shared/fixtures/whatsapp
01 and 09), and the bench's WhatsApp account they come from (its number, app secret, verify token).

Wamids are as long as Meta's: item sizes, and so the counted write units, depend on them.
"""

from __future__ import annotations

from typing import Any

APP_SECRET = "bench-app-secret"
VERIFY_TOKEN = "bench-verify-token"
WABA_ID = "102345678901234"
PHONE_NUMBER_ID = "109876543210987"
DISPLAY_PHONE = "6281234500000"
STATUS_SECONDS = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
BASE_TIMESTAMP = 1767225600  # 2026-01-01T00:00:00Z


def _change(value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_PHONE, "phone_number_id": PHONE_NUMBER_ID},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}],
    }


def status_item(
    wamid: str, status: str, recipient: str, *, callback: str | None = None, at: int | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(at or BASE_TIMESTAMP + STATUS_SECONDS[status]),
        "recipient_id": recipient,
    }
    if callback:
        item["biz_opaque_callback_data"] = callback
    if status == "sent":  # Meta prices a message on its first status
        item["conversation"] = {"id": "conv-" + wamid[-12:], "origin": {"type": "utility"}}
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "utility"}
    return item


def status_payload(items: list[dict[str, Any]]) -> dict[str, Any]:
    return _change({"statuses": items})


def inbound_item(wa_id: str, wamid: str, text: str, *, at: int | None = None) -> dict[str, Any]:
    return {"from": wa_id, "id": wamid, "timestamp": str(at or BASE_TIMESTAMP), "type": "text", "text": {"body": text}}


def inbound_payload(items: list[dict[str, Any]], names: dict[str, str] | None = None) -> dict[str, Any]:
    senders = dict.fromkeys(i["from"] for i in items)
    contacts = [{"profile": {"name": (names or {}).get(w, "Pelanggan")}, "wa_id": w} for w in senders]
    return _change({"contacts": contacts, "messages": items})


def signature(raw: bytes, secret: str = APP_SECRET) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def customer_wa_id(n: int) -> str:
    return f"62812{n:08d}"


def realistic_wamid(label: str) -> str:
    """A wamid as long as Meta's (`wamid.` + ~56 base64 characters; they encode the phone number and
    a message id), unique per label: item sizes, and so write units, depend on it."""
    import base64
    import hashlib

    digest = hashlib.sha256(label.encode()).digest() + hashlib.sha256(b"2" + label.encode()).digest()[:10]
    return "wamid.HBgN" + base64.b64encode(digest).decode().rstrip("=")
