"""Media over HTTP (SPEC section 5a): the link to our copy of an inbound file (409 while copying, 404
once expired or erased), uploads bound to a type and exact size within WhatsApp's limits, and sends
of an upload (the backend uploads the file to Graph, the sandbox receives the bytes)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from relasify import clock
from relasify.data.contacts import contact_repository
from relasify.services import media_copy
from relasify.settings import get_settings

from tests.integration.api.test_send_support import (
    AGENT,
    OWNER,
    PHONE_NUMBER_ID,
    SendingEnv,
    problem_slug,
    sending_environment,
)
from tests.support.api import ApiClient

JPEG = b"\xff\xd8\xff\xe0 a photo of the parcel"
PDF = b"%PDF-1.7 invoice INV-1001"


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _copy_queued_media() -> int:
    sqs = boto3.client("sqs")
    url = get_settings().media_queue_url
    copied = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []:
        for message in messages:
            job = json.loads(message["Body"])
            assert media_copy.copy_media(job["ws"], job["message_id"], job["media_id"]) == "copied"
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            copied += 1
    return copied


def _inbound_image(env: SendingEnv, wa_id: str = "6281288887777") -> tuple[str, str]:
    """(contact id, message id) of an inbound image whose copy is queued, not yet done."""
    media_id = env.sandbox.add_media(JPEG, "image/jpeg")
    env.sandbox.post_inbound_message(
        PHONE_NUMBER_ID, wa_id, {"type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}
    )
    assert env.sandbox.wait_until_idle()
    contact = contact_repository().find_by_wa_id(env.ws, wa_id)
    assert contact is not None
    thread = env.api.get(f"/v1/workspaces/{env.ws}/contacts/{contact.id}/messages", as_user=AGENT).json["items"]
    return contact.id, next(m["id"] for m in thread if m["type"] == "image")


def _link(env: SendingEnv, message_id: str, user: str = AGENT) -> Any:
    return env.api.get(f"/v1/workspaces/{env.ws}/messages/{message_id}/media", as_user=user)


def _key_of(url: str) -> str:
    bucket = get_settings().media_bucket
    return urlsplit(url).path.split(f"/{bucket}/", 1)[1]


def test_inbound_image_link_is_409_while_copying_then_a_five_minute_link_to_the_same_bytes(env: SendingEnv) -> None:
    _, message_id = _inbound_image(env)
    pending = _link(env, message_id)
    assert pending.status == 409, pending.body
    assert problem_slug(pending) == "media-not-ready"

    assert _copy_queued_media() == 1
    link = _link(env, message_id)
    assert link.status == 200, link.body
    assert (link.json["mime_type"], link.json["size"]) == ("image/jpeg", len(JPEG))
    query = parse_qs(urlsplit(link.json["url"]).query)
    assert int(query["X-Amz-Expires"][0]) == 300
    expires_at = datetime.fromisoformat(link.json["expires_at"])
    assert timedelta(seconds=295) <= expires_at - clock.now() <= timedelta(seconds=300)
    key = _key_of(link.json["url"])
    assert key == f"media/{env.ws}/{message_id}"
    assert boto3.client("s3").get_object(Bucket=get_settings().media_bucket, Key=key)["Body"].read() == JPEG


def test_link_is_404_without_media_once_erased_and_once_expired(env: SendingEnv) -> None:
    contact_id, message_id = _inbound_image(env)
    _copy_queued_media()
    assert _link(env, message_id).status == 200
    env.sandbox.post_inbound_message(PHONE_NUMBER_ID, "6281288887777", {"type": "text", "text": {"body": "Halo"}})
    env.sandbox.wait_until_idle()
    thread = env.api.get(f"/v1/workspaces/{env.ws}/contacts/{contact_id}/messages", as_user=AGENT).json["items"]
    text_id = next(m["id"] for m in thread if m["type"] == "text")
    assert _link(env, text_id).status == 404
    assert _link(env, "01NOSUCHMESSAGE000000000000").status == 404

    # Past the message's retention window the message (and with it the link) is gone.
    later = clock.now() + timedelta(days=get_settings().retention_message_days, seconds=1)
    clock.set_clock(lambda: later)
    try:
        assert _link(env, message_id).status == 404
    finally:
        clock.set_clock(None)

    assert env.api.post(f"/v1/workspaces/{env.ws}/contacts/{contact_id}/erase", as_user=OWNER).status == 200
    gone = _link(env, message_id)
    assert gone.status == 404
    assert "url" not in gone.json


def test_link_never_outlives_the_message(env: SendingEnv) -> None:
    _, message_id = _inbound_image(env)
    _copy_queued_media()
    message = env.api.get(f"/v1/workspaces/{env.ws}/messages/{message_id}", as_user=AGENT).json
    assert message["type"] == "image"
    window = timedelta(days=get_settings().retention_message_days)
    created = datetime.fromisoformat(message["created_at"])
    clock.set_clock(lambda: created + window - timedelta(seconds=60))
    try:
        link = _link(env, message_id)
        assert link.status == 200, link.body
        assert int(parse_qs(urlsplit(link.json["url"]).query)["X-Amz-Expires"][0]) <= 60
    finally:
        clock.set_clock(None)


# --- uploads ------------------------------------------------------------------------------------------


def _upload(env: SendingEnv, mime_type: str, size: int, filename: str | None = None, user: str = AGENT) -> Any:
    body: dict[str, Any] = {"mime_type": mime_type, "size": size}
    if filename is not None:
        body["filename"] = filename
    return env.api.post(f"/v1/workspaces/{env.ws}/media", body, as_user=user)


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


def _put_upload(created: dict[str, Any], content: bytes, content_type: str) -> None:
    """What the browser's form POST does (moto in-process serves no URLs): the object at the bound key."""
    boto3.client("s3").put_object(
        Bucket=get_settings().media_bucket,
        Key=created["upload"]["fields"]["key"],
        Body=content,
        ContentType=content_type,
    )


def test_upload_is_a_presigned_post_bound_to_its_key_type_and_exact_size(env: SendingEnv) -> None:
    created = _upload(env, "application/pdf", len(PDF), "invoice.pdf")
    assert created.status == 201, created.body
    body = created.json
    assert (body["type"], body["mime_type"], body["size"], body["filename"]) == (
        "document",
        "application/pdf",
        len(PDF),
        "invoice.pdf",
    )
    fields = body["upload"]["fields"]
    assert fields["key"] == f"media/{env.ws}/uploads/{body['id']}"
    assert fields["Content-Type"] == "application/pdf"
    conditions = _policy(fields)["conditions"]
    assert ["content-length-range", len(PDF), len(PDF)] in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert {"key": fields["key"]} in conditions
    assert {"bucket": get_settings().media_bucket} in conditions
    expires = datetime.fromisoformat(_policy(fields)["expiration"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) <= timedelta(minutes=15, seconds=5)
    assert body["upload"]["url"].endswith(f"/{get_settings().media_bucket}")


@pytest.mark.parametrize(
    ("mime_type", "size", "limit"),
    [
        ("image/jpeg", 5_000_001, 5_000_000),
        ("image/png", 5_000_001, 5_000_000),
        ("audio/ogg", 16_000_001, 16_000_000),
        ("video/mp4", 16_000_001, 16_000_000),
        ("image/webp", 500_001, 500_000),
    ],
)
def test_upload_over_whatsapp_limit_is_422_naming_it(env: SendingEnv, mime_type: str, size: int, limit: int) -> None:
    refused = _upload(env, mime_type, size)
    assert refused.status == 422, refused.body
    assert str(limit) in refused.json["detail"]
    assert refused.json["limit"] == limit
    accepted = _upload(env, mime_type, limit)
    assert accepted.status == 201, accepted.body


@pytest.mark.parametrize(
    "body",
    [
        {"mime_type": "application/x-msdownload", "size": 10},
        {"mime_type": "image/gif", "size": 10},
        {"mime_type": "application/pdf", "size": 0},
        {"mime_type": "application/pdf", "size": 100_000_001},
        {"mime_type": "application/pdf", "size": 10, "filename": "../../etc/passwd"},
        {"mime_type": "application/pdf"},
        {"mime_type": "not a type", "size": 10},
    ],
)
def test_bad_upload_requests_are_422(env: SendingEnv, body: dict[str, Any]) -> None:
    refused = env.api.post(f"/v1/workspaces/{env.ws}/media", body, as_user=AGENT)
    assert refused.status == 422, refused.body


def _send_upload(env: SendingEnv, contact_id: str, kind: str, upload_id: str, key: str, **extra: Any) -> Any:
    return env.post_message({"contact_id": contact_id, "type": kind, kind: {"id": upload_id, **extra}}, key)


def test_send_of_an_upload_uploads_it_to_graph_and_sends_meta_s_media_id(env: SendingEnv) -> None:
    contact = env.contact("+6281234567001")
    created = _upload(env, "application/pdf", len(PDF), "invoice.pdf").json
    not_yet = _send_upload(env, contact.id, "document", created["id"], "doc-0")
    assert not_yet.status == 409
    assert problem_slug(not_yet) == "media-not-uploaded"
    assert env.sandbox.uploaded_media == []
    _put_upload(created, PDF, "application/pdf")

    sent = _send_upload(env, contact.id, "document", created["id"], "doc-1", caption="Invoice")
    assert sent.status == 201, sent.body
    uploads = env.sandbox.uploaded_media
    assert len(uploads) == 1
    assert uploads[0]["content"] == PDF
    assert (uploads[0]["mime_type"], uploads[0]["filename"], uploads[0]["phone_number_id"]) == (
        "application/pdf",
        "invoice.pdf",
        PHONE_NUMBER_ID,
    )
    payload = env.sends()[-1]
    assert payload["type"] == "document"
    assert payload["document"] == {"id": uploads[0]["id"], "caption": "Invoice", "filename": "invoice.pdf"}
    # Our record names our upload, not Meta's id; its media link serves the same object.
    assert sent.json["content"] == {"id": created["id"], "caption": "Invoice"}
    link = _link(env, sent.json["id"])
    assert link.status == 200, link.body
    assert (link.json["mime_type"], link.json["size"]) == ("application/pdf", len(PDF))
    assert _key_of(link.json["url"]) == created["upload"]["fields"]["key"]

    # The same key replays the first answer; nothing is uploaded or sent again.
    replay = _send_upload(env, contact.id, "document", created["id"], "doc-1", caption="Invoice")
    assert replay.json["id"] == sent.json["id"]
    # Another send of the same upload is refused: an upload goes to one message.
    again = _send_upload(env, contact.id, "document", created["id"], "doc-2")
    assert again.status == 409
    assert problem_slug(again) == "media-already-sent"
    assert len(env.sandbox.uploaded_media) == 1
    assert len([s for s in env.sends() if s["type"] == "document"]) == 1


def test_send_refuses_unknown_foreign_mismatched_and_tampered_uploads(api: ApiClient, env: SendingEnv) -> None:
    contact = env.contact("+6281234567002")
    missing = _send_upload(env, contact.id, "image", "01NOSUCHUPLOAD000000000000", "img-0")
    assert missing.status == 422
    assert problem_slug(missing) == "media-not-found"

    image = _upload(env, "image/jpeg", len(JPEG)).json
    _put_upload(image, JPEG, "image/jpeg")
    as_document = _send_upload(env, contact.id, "document", image["id"], "img-1")
    assert as_document.status == 422
    assert problem_slug(as_document) == "media-type-mismatch"

    # An upload of another workspace does not exist here.
    other_ws = api.create_workspace("other-owner@example.com", name="Toko Lain")
    other = api.post(
        f"/v1/workspaces/{other_ws}/media", {"mime_type": "image/jpeg", "size": 4}, as_user="other-owner@example.com"
    ).json
    _put_upload(other, b"\xff\xd8xx", "image/jpeg")
    foreign = _send_upload(env, contact.id, "image", other["id"], "img-2")
    assert foreign.status == 422
    assert problem_slug(foreign) == "media-not-found"

    # Bytes that do not match the declaration (where the POST policy was not enforced) are refused.
    tampered = _upload(env, "image/png", 10).json
    _put_upload(tampered, b"x" * 11, "image/png")
    wrong = _send_upload(env, contact.id, "image", tampered["id"], "img-3")
    assert wrong.status == 409
    assert problem_slug(wrong) == "media-not-uploaded"

    assert env.sandbox.uploaded_media == []
    assert [s for s in env.sends() if s["type"] in ("image", "document")] == []

    # The right type sends, as an image with Meta's id.
    ok = _send_upload(env, contact.id, "image", image["id"], "img-4")
    assert ok.status == 201, ok.body
    assert env.sends()[-1]["image"] == {"id": env.sandbox.uploaded_media[0]["id"]}


def test_meta_media_ids_still_pass_through(env: SendingEnv) -> None:
    contact = env.contact("+6281234567003")
    sent = env.post_message({"contact_id": contact.id, "type": "image", "image": {"id": "1234567890"}}, "meta-id")
    assert sent.status == 201, sent.body
    assert env.sends()[-1]["image"] == {"id": "1234567890"}
    assert env.sandbox.uploaded_media == []


def test_erasing_the_contact_deletes_the_sent_upload_and_its_item(env: SendingEnv) -> None:
    contact = env.contact("+6281234567004")
    created = _upload(env, "image/jpeg", len(JPEG), "parcel.jpg").json
    _put_upload(created, JPEG, "image/jpeg")
    sent = _send_upload(env, contact.id, "image", created["id"], "erase-1")
    assert sent.status == 201, sent.body
    key = created["upload"]["fields"]["key"]
    table = boto3.resource("dynamodb").Table(get_settings().table_name)
    item_key = {"PK": f"WS#{env.ws}#MEDIA#{created['id']}", "SK": "UPLOAD"}
    upload_item = table.get_item(Key=item_key)["Item"]
    assert upload_item["sent_message_id"] == sent.json["id"]
    assert int(upload_item["expires_at"]) > clock.epoch()  # message content: it expires by itself

    assert env.api.post(f"/v1/workspaces/{env.ws}/contacts/{contact.id}/erase", as_user=OWNER).status == 200
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=get_settings().media_bucket, Prefix=key).get("KeyCount") == 0
    assert "Item" not in table.get_item(Key=item_key)
