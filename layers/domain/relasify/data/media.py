"""Media uploads and our S3 copies of message media (SPEC section 5a).

Upload item: PK `WS#<ws>#MEDIA#<id>`, SK `UPLOAD`: the declared type, size and file name, the S3 key
`media/<ws>/uploads/<id>`, and once sent the message that used it and Meta's media id. Message
content (90-day TTL; the object sits under `media/`, whose lifecycle rule has the same window, and
a workspace's closure deletes `media/<ws>/`). An upload is sent once: the message then carries its
S3 key (`media_s3_key`), so the contact's erasure deletes the object with the message, and the
upload item with it.

Presigned URLs act with this function's role: a POST bound to one key, content type and exact size,
and GETs of `media/` objects for at most five minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DeleteError, UpdateError

from relasify import clock
from relasify.data import aws_clients
from relasify.data.base import TableModel
from relasify.data.tx import is_condition_failure
from relasify.retention import DataClass
from relasify.settings import get_settings

UPLOAD_SK = "UPLOAD"
UPLOAD_URL_SECONDS = 15 * 60
LINK_MAX_SECONDS = 5 * 60


class MediaUploadModel(TableModel):
    """PK `WS#<ws>#MEDIA#<id>`, SK `UPLOAD`."""

    data_class: ClassVar[DataClass] = DataClass.MESSAGE_CONTENT

    ws_id = UnicodeAttribute()
    upload_id = UnicodeAttribute()
    kind = UnicodeAttribute()  # image | audio | video | document | sticker (the message type it can be sent as)
    mime_type = UnicodeAttribute()
    size = NumberAttribute()
    filename = UnicodeAttribute(null=True)
    s3_key = UnicodeAttribute()
    created_by = UnicodeAttribute(null=True)
    sent_message_id = UnicodeAttribute(null=True)  # the one message that sends it
    graph_media_id = UnicodeAttribute(null=True)  # Meta's id once uploaded to Graph (lives 30 days there)
    graph_phone_number_id = UnicodeAttribute(null=True)
    graph_uploaded_at = UTCDateTimeAttribute(null=True)


@dataclass(frozen=True, slots=True)
class MediaUpload:
    id: str
    ws: str
    kind: str
    mime_type: str
    size: int
    filename: str | None
    s3_key: str
    sent_message_id: str | None
    graph_media_id: str | None
    graph_phone_number_id: str | None
    expires_at: int | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredObject:
    size: int
    content_type: str | None


def upload_pk(ws: str, upload_id: str) -> str:
    return f"WS#{ws}#MEDIA#{upload_id}"


def upload_object_key(ws: str, upload_id: str) -> str:
    return f"media/{ws}/uploads/{upload_id}"


def _record(item: MediaUploadModel) -> MediaUpload:
    return MediaUpload(
        id=item.upload_id,
        ws=item.ws_id,
        kind=item.kind,
        mime_type=item.mime_type,
        size=int(item.size),
        filename=item.filename,
        s3_key=item.s3_key,
        sent_message_id=item.sent_message_id,
        graph_media_id=item.graph_media_id,
        graph_phone_number_id=item.graph_phone_number_id,
        expires_at=int(item.expires_at) if item.expires_at is not None else None,
        created_at=item.created_at,
    )


# --- upload items ----------------------------------------------------------------------------------


def create_upload(
    ws: str, upload_id: str, *, kind: str, mime_type: str, size: int, filename: str | None, actor: str | None
) -> MediaUpload:
    item = MediaUploadModel(
        upload_pk(ws, upload_id),
        UPLOAD_SK,
        ws_id=ws,
        upload_id=upload_id,
        kind=kind,
        mime_type=mime_type,
        size=size,
        filename=filename,
        s3_key=upload_object_key(ws, upload_id),
        created_by=actor,
    )
    item.save(condition=MediaUploadModel.pk.does_not_exist())
    return _record(item)


def get_upload(ws: str, upload_id: str, *, consistent: bool = False) -> MediaUpload | None:
    item = MediaUploadModel.get_live(upload_pk(ws, upload_id), UPLOAD_SK, consistent_read=consistent)
    return _record(item) if item else None


def claim_for_message(ws: str, upload_id: str, message_id: str) -> bool:
    """Bind the upload to the one message that sends it (a retry of that message may claim again).
    False when another message has it, or it is gone."""
    model = MediaUploadModel
    try:
        model(upload_pk(ws, upload_id), UPLOAD_SK).update(
            actions=[model.sent_message_id.set(message_id), model.touch()],
            condition=model.pk.exists()
            & model.live_condition()
            & (model.sent_message_id.does_not_exist() | (model.sent_message_id == message_id)),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def record_graph_media(ws: str, upload_id: str, *, phone_number_id: str, graph_media_id: str) -> None:
    """Remember Meta's media id, so a retried send does not upload the file again."""
    model = MediaUploadModel
    try:
        model(upload_pk(ws, upload_id), UPLOAD_SK).update(
            actions=[
                model.graph_media_id.set(graph_media_id),
                model.graph_phone_number_id.set(phone_number_id),
                model.graph_uploaded_at.set(clock.now()),
                model.touch(),
            ],
            condition=model.pk.exists(),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def delete_upload(ws: str, upload_id: str) -> None:
    try:
        MediaUploadModel(upload_pk(ws, upload_id), UPLOAD_SK).delete()
    except DeleteError as exc:
        if not is_condition_failure(exc):
            raise


def upload_id_of_key(ws: str, s3_key: str) -> str | None:
    """The upload id when `s3_key` is an upload object of `ws` (erasure deletes its item too)."""
    prefix = upload_object_key(ws, "")
    return s3_key[len(prefix) :] or None if s3_key.startswith(prefix) else None


# --- S3 ------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _s3(bucket: str) -> Any:  # bucket in the key: a settings reset gets a fresh client
    from botocore.config import Config  # lazy: only the media routes and sends with uploads pay for S3

    # Path style: virtual-host style fails on a local endpoint (moto server).
    return aws_clients.session().client("s3", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


def _bucket() -> str:
    return get_settings().media_bucket


def presigned_post(key: str, *, mime_type: str, size: int, seconds: int = UPLOAD_URL_SECONDS) -> dict[str, Any]:
    """A browser form upload to exactly `key`, with exactly this Content-Type and exactly `size` bytes."""
    post = _s3(_bucket()).generate_presigned_post(
        Bucket=_bucket(),
        Key=key,
        Fields={"Content-Type": mime_type},
        Conditions=[{"Content-Type": mime_type}, ["content-length-range", size, size]],
        ExpiresIn=seconds,
    )
    return {"url": str(post["url"]), "fields": dict(post["fields"])}


def stored_object(key: str) -> StoredObject | None:
    """Size and type of an object, or None when it does not exist (never uploaded, expired, erased)."""
    client = _s3(_bucket())
    try:
        head = client.head_object(Bucket=_bucket(), Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return StoredObject(size=int(head["ContentLength"]), content_type=head.get("ContentType"))


def read_object(key: str) -> bytes:
    return bytes(_s3(_bucket()).get_object(Bucket=_bucket(), Key=key)["Body"].read())


def presigned_get(key: str, *, seconds: int) -> str:
    return str(
        _s3(_bucket()).generate_presigned_url(
            "get_object", Params={"Bucket": _bucket(), "Key": key}, ExpiresIn=max(1, min(seconds, LINK_MAX_SECONDS))
        )
    )


def reset_clients() -> None:
    _s3.cache_clear()
