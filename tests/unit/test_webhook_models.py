"""Webhook payload models and flattening: every fixture, every documented field, unknown keys kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from relasify.whatsapp.webhook_events import (
    AccountUpdateEvent,
    InboundMessageEvent,
    MessagesErrorEvent,
    PhoneQualityEvent,
    StatusEvent,
    TemplateCategoryEvent,
    TemplateComponentsEvent,
    TemplateQualityEvent,
    TemplateStatusEvent,
    UnknownFieldEvent,
    UserPreferenceEvent,
    flatten_payload,
    parse_payload,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = next(p for p in (REPO / "tests/fixtures/whatsapp", REPO.parent / "shared/fixtures/whatsapp") if p.is_dir())
WABA = "102345678901234"
PHONE_ID = "109876543210987"


def events_of(name: str) -> list[Any]:
    return flatten_payload(parse_payload((FIXTURES / name).read_bytes()))


def envelope(field: str, value: dict[str, Any], *, time: int | None = 1767226300) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": WABA, "changes": [{"field": field, "value": value}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


def messages_value(**parts: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281234500000", "phone_number_id": PHONE_ID},
        **parts,
    }


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_every_fixture_parses_and_routes(path: Path) -> None:
    events = flatten_payload(parse_payload(path.read_bytes()))
    assert events
    for event in events:
        assert event.routing.waba_id == WABA
        if event.field == "messages":
            assert event.routing.phone_number_id == PHONE_ID
            assert event.routing.display_phone_number == "6281234500000"


@pytest.mark.parametrize(
    ("name", "msg_type", "expected"),
    [
        ("01_inbound_text.json", "text", {"body": "Halo, apakah stok masih ada? Terima kasih \U0001f64f"}),
        ("02_inbound_image.json", "image", {"caption": "Bukti transfer", "mime_type": "image/jpeg"}),
        ("03_inbound_document.json", "document", {"filename": "faktur-2026-01.pdf", "id": "2345678901234567"}),
        ("04_inbound_audio_voice.json", "audio", {"voice": True}),
        ("05_inbound_location.json", "location", {"latitude": -6.2087634, "name": "Monas"}),
        ("06_inbound_interactive_button_reply.json", "interactive", {"type": "button_reply"}),
        ("07_inbound_template_quick_reply_button.json", "button", {"payload": "STOP_PROMO"}),
        ("08_inbound_reaction.json", "reaction", {"emoji": "\U0001f44d"}),
    ],
)
def test_inbound_fixtures(name: str, msg_type: str, expected: dict[str, Any]) -> None:
    (event,) = events_of(name)
    assert isinstance(event, InboundMessageEvent)
    assert event.message.type == msg_type
    assert event.message.from_ == "6281234567890"
    assert event.message.id.startswith("wamid.")
    assert event.message.sent_at is not None
    assert event.contact is not None
    assert event.contact.wa_id == "6281234567890"
    assert event.contact.profile is not None
    assert event.contact.profile.name == "Budi Santoso"
    payload = event.message.type_payload()
    assert payload is not None
    assert expected.items() <= payload.items()


def test_media_and_context_accessors() -> None:
    (image,) = events_of("02_inbound_image.json")
    assert image.message.media is not None
    assert image.message.media.id == "1234567890123456"
    (text,) = events_of("01_inbound_text.json")
    assert text.message.media is None
    (reply,) = events_of("06_inbound_interactive_button_reply.json")
    assert reply.message.context.id.endswith("OQA=")
    assert reply.message.text_for_keywords() == "Konfirmasi"
    (button,) = events_of("07_inbound_template_quick_reply_button.json")
    assert button.message.text_for_keywords() == "Berhenti promosi"


def test_status_fixtures() -> None:
    (sent,) = events_of("09_status_sent_utility_template.json")
    assert isinstance(sent, StatusEvent)
    assert sent.status.status == "sent"
    assert sent.status.biz_opaque_callback_data == "crm:tenant-42:msg-8f1c2a"
    assert sent.status.pricing.billable is True
    assert sent.status.pricing.category == "utility"
    assert sent.status.conversation.origin.type == "utility"
    read, delivered = events_of("10_status_batch_read_and_delivered.json")
    assert (read.status.status, delivered.status.status) == ("read", "delivered")
    assert delivered.status.pricing.billable is False
    (failed,) = events_of("11_status_failed_131047.json")
    error = failed.status.errors[0]
    assert (error.code, error.title) == (131047, "Re-engagement message")
    assert error.error_data.details.startswith("Message failed")


def test_template_status_fixture() -> None:
    (event,) = events_of("12_message_template_status_update_approved.json")
    assert isinstance(event, TemplateStatusEvent)
    assert event.entry_time == 1767226300
    assert event.routing.phone_number_id is None
    assert event.update.event == "APPROVED"
    assert event.update.message_template_name == "konfirmasi_pesanan"
    assert event.update.message_template_language == "id"
    assert event.update.message_template_id == 1689556908129832


INBOUND_SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("video", {"video": {"id": "m1", "mime_type": "video/mp4", "sha256": "x", "caption": "c"}}),
    ("sticker", {"sticker": {"id": "m2", "mime_type": "image/webp", "sha256": "x", "animated": False}}),
    (
        "contacts",
        {
            "contacts": [
                {"name": {"formatted_name": "A B", "first_name": "A"}, "phones": [{"phone": "+62", "type": "CELL"}]}
            ]
        },
    ),
    (
        "interactive",
        {"interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "T", "description": "D"}}},
    ),
    (
        "interactive",
        {"interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{}"}}},
    ),
    ("unsupported", {"errors": [{"code": 131051, "title": "Message type unknown"}], "unsupported": {"type": "edit"}}),
    ("system", {"system": {"body": "changed", "type": "user_changed_number", "new_wa_id": "628999"}}),
    ("request_welcome", {}),
    ("order", {"order": {"catalog_id": "c", "product_items": [{"product_retailer_id": "p", "quantity": 2}]}}),
    ("brand_new_type", {"brand_new_type": {"anything": [1, 2]}}),
]


@pytest.mark.parametrize(
    ("msg_type", "part"), INBOUND_SAMPLES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(INBOUND_SAMPLES)]
)
def test_every_inbound_type_parses(msg_type: str, part: dict[str, Any]) -> None:
    message = {"from": "6281234567890", "id": "wamid.X", "timestamp": "1767225600", "type": msg_type, **part}
    value = messages_value(contacts=[{"wa_id": "6281234567890", "profile": {"name": "N"}}], messages=[message])
    (event,) = flatten_payload(parse_payload(envelope("messages", value)))
    assert isinstance(event, InboundMessageEvent)
    assert event.message.type == msg_type
    if msg_type == "brand_new_type":
        assert event.message.type_payload() == {"anything": [1, 2]}
    if msg_type == "unsupported":
        assert event.message.errors[0].code == 131051


def test_unknown_keys_are_kept_everywhere() -> None:
    message = {"from": "628", "id": "wamid.Y", "type": "text", "text": {"body": "hi", "new_key": 1}, "shiny": True}
    value = messages_value(messages=[message], future_list=[1])
    payload = envelope("messages", value)
    payload["entry"][0]["extra_entry_key"] = "x"
    payload["brand_new"] = {"a": 1}
    parsed = parse_payload(json.dumps(payload))
    assert parsed.model_extra == {"brand_new": {"a": 1}}
    (event,) = flatten_payload(parsed)
    assert event.message.model_extra == {"shiny": True}
    assert event.message.type_payload() == {"body": "hi", "new_key": 1}


def test_user_id_only_contact_matches() -> None:
    message = {"from_user_id": "US.123", "id": "wamid.Z", "type": "text", "text": {"body": "hi"}}
    contacts = [{"user_id": "US.999"}, {"user_id": "US.123", "wa_id": ""}]
    (event,) = flatten_payload(
        parse_payload(envelope("messages", messages_value(contacts=contacts, messages=[message])))
    )
    assert event.contact.user_id == "US.123"


def test_batch_of_many_entries_changes_messages_and_statuses() -> None:
    statuses = [
        {"id": f"wamid.{i}", "status": "delivered", "timestamp": "1767226150", "recipient_id": "628"} for i in range(3)
    ]
    messages = [{"from": "628", "id": f"wamid.in{i}", "type": "text", "text": {"body": "x"}} for i in range(2)]
    change = {"field": "messages", "value": messages_value(statuses=statuses, messages=messages)}
    payload = {"entry": [{"id": WABA, "changes": [change, change]}, {"id": "other", "changes": [change]}]}
    events = flatten_payload(parse_payload(payload))
    assert len(events) == 15
    assert {e.routing.waba_id for e in events} == {WABA, "other"}


def test_messages_level_errors() -> None:
    value = messages_value(errors=[{"code": 131000, "title": "Something went wrong"}])
    (event,) = flatten_payload(parse_payload(envelope("messages", value)))
    assert isinstance(event, MessagesErrorEvent)
    assert event.error.code == 131000


@pytest.mark.parametrize(
    ("field", "value", "event_type"),
    [
        (
            "message_template_quality_update",
            {
                "previous_quality_score": "GREEN",
                "new_quality_score": "YELLOW",
                "message_template_id": 1,
                "message_template_name": "n",
                "message_template_language": "id",
            },
            TemplateQualityEvent,
        ),
        (
            "template_category_update",
            {
                "message_template_id": 1,
                "message_template_name": "n",
                "message_template_language": "id",
                "previous_category": "UTILITY",
                "new_category": "MARKETING",
            },
            TemplateCategoryEvent,
        ),
        (
            "message_template_components_update",
            {
                "message_template_id": 1,
                "message_template_name": "n",
                "message_template_language": "id",
                "message_template_element": "body",
                "message_template_buttons": [{"message_template_button_type": "URL"}],
            },
            TemplateComponentsEvent,
        ),
        (
            "phone_number_quality_update",
            {
                "display_phone_number": "6281234500000",
                "event": "DOWNGRADE",
                "current_limit": "TIER_250",
                "max_daily_conversations_per_business": "TIER_250",
            },
            PhoneQualityEvent,
        ),
        (
            "account_update",
            {
                "phone_number": "6281234500000",
                "event": "ACCOUNT_RESTRICTION",
                "restriction_info": [
                    {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767312500}
                ],
            },
            AccountUpdateEvent,
        ),
        ("security", {"display_phone_number": "628", "event": "PIN_CHANGED"}, UnknownFieldEvent),
    ],
)
def test_account_level_fields(field: str, value: dict[str, Any], event_type: type) -> None:
    (event,) = flatten_payload(parse_payload(envelope(field, value)))
    assert isinstance(event, event_type)
    assert event.field == field
    assert event.routing.waba_id == WABA
    assert event.entry_time == 1767226300
    if field == "phone_number_quality_update":
        assert event.routing.display_phone_number == "6281234500000"
        assert event.update.event == "DOWNGRADE"
    if field == "account_update":
        assert event.update.restriction_info[0].restriction_type == "RESTRICTED_BIZ_INITIATED_MESSAGING"
    if event_type is UnknownFieldEvent:
        assert event.value == value


def test_user_preferences() -> None:
    prefs = [
        {
            "wa_id": "628",
            "detail": "User requested to stop marketing messages",
            "category": "marketing_messages",
            "value": "stop",
            "timestamp": 1767226300,
        },
        {"wa_id": "629", "category": "marketing_messages", "value": "resume", "timestamp": 1767226301},
    ]
    value = messages_value(contacts=[{"wa_id": "628"}], user_preferences=prefs)
    events = flatten_payload(parse_payload(envelope("user_preferences", value)))
    assert all(isinstance(e, UserPreferenceEvent) for e in events)
    assert [e.preference.value for e in events] == ["stop", "resume"]
    assert events[0].routing.phone_number_id == PHONE_ID
    assert events[0].preference.occurred_at is not None


def test_empty_and_odd_payloads_do_not_fail() -> None:
    assert flatten_payload(parse_payload(b"{}")) == []
    assert flatten_payload(parse_payload({"entry": [{"id": WABA}]})) == []
    assert flatten_payload(parse_payload(envelope("messages", {}))) == []


def test_numeric_ids_are_accepted_as_strings() -> None:
    payload = envelope("messages", messages_value(statuses=[{"id": "wamid.N", "status": "sent"}]))
    payload["entry"][0]["id"] = int(WABA)
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = int(PHONE_ID)
    (event,) = flatten_payload(parse_payload(payload))
    assert (event.routing.waba_id, event.routing.phone_number_id) == (WABA, PHONE_ID)


def test_a_status_is_parsed_without_building_the_inbound_message_models() -> None:
    """What is NOT done: a container that only sees statuses never builds the inbound message models'
    validators (cold start); the same payload with a message builds them."""
    import subprocess
    import sys

    status = envelope(
        "messages",
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
            "statuses": [{"id": "wamid.A", "status": "delivered", "timestamp": "1767226300", "recipient_id": "628"}],
        },
    )
    probe = f"""
from relasify.whatsapp import webhook_events as events_module, webhook_models as models
events = events_module.flatten_payload(events_module.parse_payload({json.dumps(status)!r}))
assert [type(e).__name__ for e in events] == ["StatusEvent"], events
print(models.InboundMessage.__pydantic_complete__, models.MessagesValue.__pydantic_complete__)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]
