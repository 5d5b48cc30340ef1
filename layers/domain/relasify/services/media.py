"""Media (SPEC section 5a): links to our S3 copies of message media, uploads for sending, and the
Graph upload at send time.

- `media_link`: a presigned GET of the message's object, valid at most five minutes (and never past
  the message's own expiry); 409 `media-not-ready` while the media worker is still copying it, 404
  when the message has no media, or its object is gone (expired or erased).
- `create_upload`: an upload item and a presigned POST bound to its key, its content type and its
  exact size, within WhatsApp's limits per type (reference/inbox.md section 3).
- `prepare_send` / `graph_content`: a send naming an upload id checks and claims the upload before
  the outbox write; the Graph upload (`POST /{phone_number_id}/media`) happens with the send and its
  media id is remembered, so a retried send does not upload again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from relasify import clock
from relasify.data import media as store
from relasify.data import messages as message_store
from relasify.data.ids import new_id
from relasify.data.memberships import Membership
from relasify.errors import NotFound, SendRefused, ValidationFailed

MB = 1000 * 1000  # the smaller reading of Meta's "MB": never accept what Meta may refuse
KB = 1000
# MIME type -> (message type, largest size in bytes). whatsapp.md section 5, reference/inbox.md section 3.
MEDIA_TYPES: dict[str, tuple[str, int]] = {
    "image/jpeg": ("image", 5 * MB),
    "image/png": ("image", 5 * MB),
    "audio/aac": ("audio", 16 * MB),
    "audio/amr": ("audio", 16 * MB),
    "audio/mpeg": ("audio", 16 * MB),
    "audio/mp4": ("audio", 16 * MB),
    "audio/ogg": ("audio", 16 * MB),  # Opus codec only (Meta)
    "video/mp4": ("video", 16 * MB),
    "video/3gpp": ("video", 16 * MB),
    "text/plain": ("document", 100 * MB),
    "application/pdf": ("document", 100 * MB),
    "application/msword": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("document", 100 * MB),
    "application/vnd.ms-excel": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", 100 * MB),
    "application/vnd.ms-powerpoint": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ("document", 100 * MB),
    # Animated stickers may have 500 KB, static ones 100 KB: which one a file is, only Meta checks.
    "image/webp": ("sticker", 500 * KB),
}
SENDABLE_TYPES = ("image", "document", "audio", "video", "sticker")


def _problem(slug: str, detail: str, status: int, **extra: Any) -> SendRefused:
    return SendRefused(slug, detail, status=status, **extra)


def _human(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // KB} KB"


# --- links ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaLink:
    url: str
    mime_type: str
    size: int
    expires_at: datetime


def media_link(ws: str, message_id: str) -> MediaLink:
    message = message_store.get_message(ws, message_id)
    if message is None:
        raise NotFound("Message not found.")
    if message.media_s3_key is None:
        if message.direction == "in" and message.media_id and message.type in SENDABLE_TYPES:
            raise _problem("media-not-ready", "The media is still being copied; retry in a few seconds.", 409)
        raise NotFound("This message has no media.")
    stored = store.stored_object(message.media_s3_key)
    if stored is None:
        raise NotFound("The media has expired or was erased.")
    now = clock.epoch()
    seconds = store.LINK_MAX_SECONDS
    if message.expires_at is not None:
        seconds = min(seconds, int(message.expires_at) - now)
    if seconds <= 0:
        raise NotFound("The media has expired or was erased.")
    content = message.content or {}
    mime_type = stored.content_type or str(content.get("mime_type") or "application/octet-stream")
    return MediaLink(
        url=store.presigned_get(message.media_s3_key, seconds=seconds),
        mime_type=mime_type,
        size=stored.size,
        expires_at=datetime.fromtimestamp(now, UTC) + timedelta(seconds=seconds),
    )


# --- uploads ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreatedUpload:
    upload: store.MediaUpload
    url: str
    fields: dict[str, str]
    expires_at: datetime


def limits_for(mime_type: str) -> tuple[str, int]:
    """(message type, largest size) of a MIME type, or 422 naming the types accepted."""
    found = MEDIA_TYPES.get(mime_type.strip().lower())
    if found is None:
        raise ValidationFailed(
            f"WhatsApp does not accept {mime_type!r} media.",
            errors=[
                {
                    "location": "body/mime_type",
                    "in": "body",
                    "message": "one of " + ", ".join(sorted(MEDIA_TYPES)),
                    "type": "value_error",
                }
            ],
        )
    return found


def create_upload(caller: Membership, *, mime_type: str, size: int, filename: str | None) -> CreatedUpload:
    mime_type = mime_type.strip().lower()
    kind, limit = limits_for(mime_type)
    if size > limit:
        raise ValidationFailed(
            f"{kind} files ({mime_type}) are at most {_human(limit)} ({limit} bytes) on WhatsApp.",
            errors=[
                {
                    "location": "body/size",
                    "in": "body",
                    "message": f"at most {limit} bytes for {mime_type}",
                    "type": "less_than_equal",
                }
            ],
            limit=limit,
        )
    upload = store.create_upload(
        caller.ws, new_id(), kind=kind, mime_type=mime_type, size=size, filename=filename, actor=caller.sub
    )
    post = store.presigned_post(upload.s3_key, mime_type=mime_type, size=size)
    expires_at = clock.now() + timedelta(seconds=store.UPLOAD_URL_SECONDS)
    return CreatedUpload(upload=upload, url=post["url"], fields=post["fields"], expires_at=expires_at)


# --- sending an upload --------------------------------------------------------------------------------


def prepare_send(ws: str, message_type: str, content: dict[str, Any], message_id: str) -> store.MediaUpload:
    """Check the upload a send names (this workspace's, of this type, its bytes in place with the declared
    size and type) and bind it to the message. Runs before the outbox write: a refusal stores nothing."""
    upload_id = str(content["id"])
    upload = store.get_upload(ws, upload_id, consistent=True)
    if upload is None:
        raise _problem(
            "media-not-found", f"No media upload {upload_id} in this workspace (expired or never made).", 422
        )
    if upload.kind != message_type:
        raise _problem("media-type-mismatch", f"The upload is {upload.mime_type}: send it as type {upload.kind}.", 422)
    if upload.sent_message_id not in (None, message_id):
        raise _problem("media-already-sent", "This upload was sent already; upload the file again.", 409)
    stored = store.stored_object(upload.s3_key)
    if stored is None:
        raise _problem("media-not-uploaded", "The file was not uploaded yet: POST it to the upload URL first.", 409)
    if stored.size != upload.size or (stored.content_type or "").lower() != upload.mime_type:
        # The presigned POST binds both; this holds even where the policy was not enforced.
        raise _problem("media-not-uploaded", "The uploaded file does not match the declared type and size.", 409)
    if not store.claim_for_message(ws, upload_id, message_id):
        raise _problem("media-already-sent", "This upload was sent already; upload the file again.", 409)
    return upload


def graph_content(
    ws: str, message_id: str, content: dict[str, Any], *, phone_number_id: str, token: str, client: Any
) -> dict[str, Any]:
    """The Cloud API object for a send of an upload: Meta's media id in place of ours. Uploads the
    file to Graph once per number (the id is remembered); the message keeps the object's key, so the
    media link shows it and erasure deletes it."""
    upload = store.get_upload(ws, str(content["id"]), consistent=True)
    if upload is None or upload.sent_message_id != message_id:
        raise _problem("media-not-found", "The upload of this message is gone (expired or erased).", 422)
    graph_id = upload.graph_media_id if upload.graph_phone_number_id == phone_number_id else None
    if graph_id is None:
        data = store.read_object(upload.s3_key)
        graph_id = client.upload_media(phone_number_id, token, data, upload.mime_type, upload.filename or "file")
        store.record_graph_media(ws, upload.id, phone_number_id=phone_number_id, graph_media_id=graph_id)
    message_store.set_media_copied(ws, message_id, upload.s3_key)
    out = {k: v for k, v in content.items() if k != "id"}
    if upload.kind == "document" and upload.filename and "filename" not in out:
        out["filename"] = upload.filename
    return {"id": graph_id, **out}
