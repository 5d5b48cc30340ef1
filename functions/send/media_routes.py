"""Media routes (SPEC section 5a): a short-lived link to a message's media, and uploads to send."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.common import IdStr
from relasify.schemas.media import MediaLinkOut, MediaUploadCreate, MediaUploadOut, PresignedPost
from relasify.services import media
from relasify.web.auth import current_membership, workspace_route

router = APIGatewayHttpRouter()
TAGS = ["media"]


@workspace_route(
    router,
    "GET",
    "/v1/workspaces/<ws>/messages/<message_id>/media",
    Role.AGENT,
    statuses=(409,),
    tags=TAGS,
    description="A link to our copy of the message's media, valid at most 5 minutes. 409 `media-not-ready` "
    "while an inbound file is still being copied; 404 when the message has none, or it expired or was erased.",
)
def media_link(ws: str, message_id: IdStr) -> MediaLinkOut:
    link = media.media_link(ws, message_id)
    return MediaLinkOut(url=link.url, mime_type=link.mime_type, size=link.size, expires_at=link.expires_at)


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/media",
    Role.AGENT,
    success=201,
    tags=TAGS,
    description="Prepare a file to send (201): POST it as multipart/form-data to `upload.url` with every "
    "`upload.fields` entry and then `file` (exactly `size` bytes, Content-Type `mime_type`, within 15 minutes). "
    'Then send {"type": "<type>", "<type>": {"id": "<id>", "caption"?}} once. WhatsApp\'s limits: image '
    "jpeg/png 5 MB; audio aac/amr/mpeg/mp4/ogg 16 MB; video mp4/3gpp 16 MB; document pdf, Office, text "
    "100 MB; sticker webp 500 KB. Uploads are message content (90 days).",
)
def create_upload(ws: str, body: MediaUploadCreate) -> Response[MediaUploadOut]:
    created = media.create_upload(
        current_membership(router), mime_type=body.mime_type, size=body.size, filename=body.filename
    )
    upload = created.upload
    out = MediaUploadOut(
        id=upload.id,
        type=upload.kind,
        mime_type=upload.mime_type,
        size=upload.size,
        filename=upload.filename,
        upload=PresignedPost(url=created.url, fields=created.fields),
        upload_expires_at=created.expires_at,
    )
    return Response(status_code=201, content_type="application/json", body=out.model_dump(mode="json"))
