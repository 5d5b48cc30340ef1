"""The media worker's job: copies an inbound message's media from the Graph API to S3
`media/<ws>/<message id>` with the workspace's token (Meta's download URLs live five minutes).

Its own module, apart from webhook processing (relasify.services.webhook, which only enqueues the
job): the media worker then loads none of the webhook models or the processing services (cold start).
"""

from __future__ import annotations

from typing import Protocol

from relasify.data import messages as message_store
from relasify.data import webhook_inbox
from relasify.data.whatsapp_connections import whatsapp_connection_repository
from relasify.observability import logger
from relasify.whatsapp.errors import UntrustedMediaUrlError


class MediaDownloader(Protocol):
    """Fetches one inbound media object from the Graph API with the workspace's token."""

    def __call__(self, ws: str, media_id: str) -> tuple[bytes, str | None]: ...


def graph_media_download(ws: str, media_id: str) -> tuple[bytes, str | None]:
    """Media id -> (bytes, mime type): resolve the short-lived URL, then download it."""
    from relasify.data.kms_tokens import decrypt_token
    from relasify.whatsapp.graph import get_graph_client

    connection = whatsapp_connection_repository().get_whatsapp_connection(ws)
    if connection is None:
        raise LookupError("workspace has no WhatsApp connection")
    token = decrypt_token(ws, connection.encrypted_access_token)
    client = get_graph_client()
    info = client.get_media_url(media_id, token)
    return client.download_media(info.url, token), info.mime_type


def copy_media(ws: str, message_id: str, media_id: str, download: MediaDownloader | None = None) -> str:
    """The media worker's job: Graph download -> S3 `media/<ws>/<message id>` -> message record.
    Idempotent: a message whose media is already copied is skipped."""
    message = message_store.get_message(ws, message_id, consistent=True)
    if message is None:
        return "missing"
    if message.media_s3_key:
        return "already_copied"
    try:
        content, mime_type = (download or graph_media_download)(ws, media_id)
    except UntrustedMediaUrlError as refused:
        # Meta's answer named a URL the token must not go to: give up for good (a retry gets the same
        # answer). Scheme and host only: the URL's path and query identify the media.
        logger.warning(
            "media URL refused; token not sent",
            extra={"message_id": message_id, "url_scheme": refused.scheme, "url_host": refused.host},
        )
        message_store.set_media_failed(ws, message_id, "untrusted-url")
        return "refused"
    key = webhook_inbox.put_media_object(
        ws, message_id, content, mime_type, webhook_inbox.WebhookInboxConfig.from_environment()
    )
    message_store.set_media_copied(ws, message_id, key)
    return "copied"
