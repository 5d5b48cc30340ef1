"""S3 access for contact imports and exports: uploads, streamed reads, presigned URLs.

Keys: `imports/<ws>/<import id>.csv` and `exports/<ws>/<export id>.<ext>` (the bucket's lifecycle
expires imports after 7 days and exports after 1). Objects are written with the bucket's default
encryption (SSE-KMS with the customer-managed key, set on the bucket).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import IO, Any

from relasify.data import aws_clients
from relasify.settings import get_settings

UPLOAD_URL_SECONDS = 15 * 60
DOWNLOAD_URL_SECONDS = 5 * 60


@lru_cache(maxsize=4)
def _client(bucket: str) -> Any:  # bucket in the key: a settings reset gets a fresh client
    from botocore.config import Config  # lazy: the API's cold start does not pay for S3 unless a route needs it

    # Virtual-host style fails on a local endpoint (moto server); path style works everywhere.
    return aws_clients.session().client("s3", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


def _bucket() -> str:
    return get_settings().media_bucket


def import_key(ws: str, import_id: str) -> str:
    return f"imports/{ws}/{import_id}.csv"


def export_key(ws: str, export_id: str, extension: str) -> str:
    return f"exports/{ws}/{export_id}.{extension}"


def put_bytes(key: str, data: bytes, content_type: str) -> None:
    _client(_bucket()).put_object(Bucket=_bucket(), Key=key, Body=data, ContentType=content_type)


def upload_file(key: str, fileobj: IO[bytes], content_type: str) -> None:
    """Upload from a file object (multipart for large ones, so memory stays bounded)."""
    _client(_bucket()).upload_fileobj(fileobj, _bucket(), key, ExtraArgs={"ContentType": content_type})


def object_size(key: str) -> int | None:
    """Size in bytes, or None when the object does not exist."""
    client = _client(_bucket())
    try:
        head = client.head_object(Bucket=_bucket(), Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return int(head["ContentLength"])


@contextmanager
def open_text(key: str) -> Iterator[IO[str]]:
    """The object as a text stream read from S3 as it is consumed (memory does not grow with size).
    A byte-order mark is dropped; undecodable bytes become U+FFFD (the row then fails validation)."""
    body = _client(_bucket()).get_object(Bucket=_bucket(), Key=key)["Body"]
    text = io.TextIOWrapper(
        io.BufferedReader(body, buffer_size=64 * 1024), encoding="utf-8-sig", errors="replace", newline=""
    )
    try:
        yield text
    finally:
        text.close()


def presigned_put(key: str, content_type: str = "text/csv", seconds: int = UPLOAD_URL_SECONDS) -> str:
    return str(
        _client(_bucket()).generate_presigned_url(
            "put_object",
            Params={"Bucket": _bucket(), "Key": key, "ContentType": content_type},
            ExpiresIn=seconds,
        )
    )


def presigned_get(key: str, filename: str, seconds: int = DOWNLOAD_URL_SECONDS) -> str:
    return str(
        _client(_bucket()).generate_presigned_url(
            "get_object",
            Params={
                "Bucket": _bucket(),
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=seconds,
        )
    )
