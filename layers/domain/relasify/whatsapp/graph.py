"""WhatsApp Cloud API (Graph API) client on httpx.

One `httpx.Client` (one connection pool) per container, created lazily and reused across warm
Lambda invocations (`get_graph_client`). The access token is passed in on every call because each
workspace has its own; it only ever travels in the Authorization header and is never logged.

Transient failures (Meta's transient codes, HTTP 429/5xx, timeouts, connection resets) are retried
with exponential backoff and full jitter, honouring Retry-After, within a bounded number of attempts
and a bounded total time. Everything else raises GraphError at once. Note that Meta's send endpoint
has no idempotency key: a retried send that had in fact been accepted can deliver twice; callers
carry their own message id in `biz_opaque_callback_data` so the status webhooks reconcile it.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from relasify.observability import logger
from relasify.settings import Settings, get_settings
from relasify.whatsapp.errors import ErrorSpec, GraphError, MediaTooLargeError, UntrustedMediaUrlError, classify

# Graph object ids are numeric; anything that could change the URL path is refused before a call.
_GRAPH_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
PHONE_NUMBER_FIELDS = (
    "id,display_phone_number,verified_name,quality_rating,code_verification_status,throughput,"
    "whatsapp_business_manager_messaging_limit"
)
DEFAULT_MEDIA_LIMIT_BYTES = 100 * 1024 * 1024  # Meta's largest media type (documents)
# Where Meta serves media downloads (reference/whatsapp.md sections 4-5). The bearer token goes to
# these hosts over HTTPS only, or to the configured Graph base URL (the local sandbox): never to a
# URL an answer merely names.
META_MEDIA_HOSTS = frozenset({"graph.facebook.com", "lookaside.fbsbx.com"})
MAX_PHONE_NUMBER_PAGES = 20  # a WABA holds at most a few dozen numbers
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
_RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0
    # Bounded so a synchronous API call stays inside API Gateway's 29-second limit.
    max_total_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class SendResult:
    wamid: str
    message_status: str
    wa_id: str | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class TemplateSubmission:
    id: str
    status: str
    category: str | None


@dataclass(frozen=True, slots=True)
class TemplatePage:
    items: list[dict[str, Any]]
    next_after: str | None  # cursor for the next page; None on the last page


@dataclass(frozen=True, slots=True)
class MediaInfo:
    id: str
    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


@dataclass(slots=True)
class _Failure:
    error: GraphError
    retry_after: float | None = None
    min_delay: float = 0.0


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_version: str | None = None,
        timeout_seconds: float | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        settings: Settings | None = None,
    ) -> None:
        config = settings or get_settings()
        self.base_url = (base_url or config.graph_api_base_url).rstrip("/")
        self.api_version = (api_version or config.graph_api_version).strip("/")
        timeout = timeout_seconds if timeout_seconds is not None else config.graph_timeout_seconds
        self._http = http_client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20, keepalive_expiry=60.0),
            transport=transport,
            follow_redirects=False,
        )
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._monotonic = monotonic

    def close(self) -> None:
        self._http.close()

    # -- messages -------------------------------------------------------------------------------

    def send_message(self, phone_number_id: str, token: str, payload: Mapping[str, Any]) -> SendResult:
        """POST /{phone_number_id}/messages. A 200 means accepted, not delivered."""
        body = {"messaging_product": "whatsapp", **payload}
        data = self._call("send_message", "POST", self._url(phone_number_id, "messages"), token, json=body)
        messages = data.get("messages") if isinstance(data, dict) else None
        if not messages or not isinstance(messages[0], dict) or not messages[0].get("id"):
            raise _malformed("send_message")
        contacts = data.get("contacts") or [{}]
        wa_id = contacts[0].get("wa_id") if isinstance(contacts[0], dict) else None
        return SendResult(
            wamid=str(messages[0]["id"]),
            message_status=str(messages[0].get("message_status") or "accepted"),
            wa_id=str(wa_id) if wa_id else None,
            raw=data,
        )

    def mark_read(self, phone_number_id: str, token: str, message_id: str, *, typing: bool = False) -> bool:
        """POST /{phone_number_id}/messages `status: read` (blue ticks; Meta marks earlier messages read
        too); `typing` also shows the typing indicator (it ends on our reply or after 25 s)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        data = self._call("mark_read", "POST", self._url(phone_number_id, "messages"), token, json=body)
        return bool(isinstance(data, dict) and data.get("success"))

    # -- phone numbers --------------------------------------------------------------------------

    def get_phone_number(self, phone_number_id: str, token: str) -> dict[str, Any]:
        """The number as Meta reports it: display number, verified name, quality rating, limits."""
        data = self._call(
            "get_phone_number",
            "GET",
            self._url(phone_number_id),
            token,
            params={"fields": PHONE_NUMBER_FIELDS},
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise _malformed("get_phone_number")
        return data

    def list_phone_numbers(self, waba_id: str, token: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """GET /{waba_id}/phone_numbers, every page: the numbers Meta lists under the account."""
        numbers: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"limit": limit, "fields": "id,display_phone_number"}
        for _ in range(MAX_PHONE_NUMBER_PAGES):
            data = self._call("list_phone_numbers", "GET", self._url(waba_id, "phone_numbers"), token, params=params)
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise _malformed("list_phone_numbers")
            numbers.extend(item for item in items if isinstance(item, dict))
            paging = data.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not paging.get("next") or not after:
                break
            params = {**params, "after": str(after)}
        return numbers

    def subscribe_app(self, waba_id: str, token: str) -> bool:
        """POST /{waba_id}/subscribed_apps: this app receives the account's webhooks."""
        data = self._call("subscribe_app", "POST", self._url(waba_id, "subscribed_apps"), token)
        if not isinstance(data, dict) or data.get("success") is not True:
            raise _malformed("subscribe_app")
        return True

    # -- templates ------------------------------------------------------------------------------

    def create_template(self, waba_id: str, token: str, definition: Mapping[str, Any]) -> TemplateSubmission:
        data = self._call(
            "create_template", "POST", self._url(waba_id, "message_templates"), token, json=dict(definition)
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise _malformed("create_template")
        return TemplateSubmission(
            id=str(data["id"]), status=str(data.get("status") or "PENDING"), category=data.get("category")
        )

    def list_templates(
        self, waba_id: str, token: str, *, after: str | None = None, limit: int = 100, fields: str | None = None
    ) -> TemplatePage:
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        if fields:
            params["fields"] = fields
        data = self._call("list_templates", "GET", self._url(waba_id, "message_templates"), token, params=params)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _malformed("list_templates")
        paging = data.get("paging") or {}
        cursors = paging.get("cursors") or {}
        next_after = cursors.get("after") if paging.get("next") else None
        return TemplatePage(items=items, next_after=next_after)

    def delete_template(self, waba_id: str, token: str, name: str) -> bool:
        data = self._call(
            "delete_template", "DELETE", self._url(waba_id, "message_templates"), token, params={"name": name}
        )
        return bool(data.get("success", True)) if isinstance(data, dict) else True

    # -- media ----------------------------------------------------------------------------------

    def get_media_url(self, media_id: str, token: str) -> MediaInfo:
        """The download URL of a media object; Meta keeps it valid for only 5 minutes."""
        data = self._call("get_media_url", "GET", self._url(media_id), token)
        if not isinstance(data, dict) or not data.get("url"):
            raise _malformed("get_media_url")
        size = data.get("file_size")
        return MediaInfo(
            id=str(data.get("id") or media_id),
            url=str(data["url"]),
            mime_type=data.get("mime_type"),
            sha256=data.get("sha256"),
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )

    def upload_media(
        self, phone_number_id: str, token: str, content: bytes, mime_type: str, filename: str = "file"
    ) -> str:
        """POST /{phone_number_id}/media (multipart: `file`, `type`, `messaging_product`) -> Meta's media id,
        valid 30 days, to send as `{"<type>": {"id": ...}}`."""
        url = self._url(phone_number_id, "media")

        def attempt() -> Any:
            response = self._http.post(
                url,
                data={"messaging_product": "whatsapp", "type": mime_type},
                files={"file": (filename, content, mime_type)},
                headers=_auth(token),
            )
            if response.is_success:
                try:
                    return response.json()
                except ValueError:
                    raise _malformed("upload_media") from None
            return _failure_from_response(response)

        data = self._with_retries("upload_media", attempt)
        if not isinstance(data, dict) or not data.get("id"):
            raise _malformed("upload_media")
        return str(data["id"])

    def download_media(self, url: str, token: str, *, max_bytes: int = DEFAULT_MEDIA_LIMIT_BYTES) -> bytes:
        """Stream the media at `url` (from get_media_url) and stop reading as soon as it exceeds max_bytes.

        The URL comes from Meta's answer, so it is checked before the token goes anywhere: HTTPS to one
        of Meta's media hosts, or the configured Graph base URL itself (UntrustedMediaUrlError if not)."""
        if not self.is_trusted_media_url(url):
            raise UntrustedMediaUrlError(url)

        def attempt() -> bytes | _Failure:
            with self._http.stream("GET", url, headers=_auth(token)) as response:
                if not response.is_success:
                    response.read()
                    return _failure_from_response(response)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLargeError(max_bytes)
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise MediaTooLargeError(max_bytes)
                    chunks.append(chunk)
                return b"".join(chunks)

        return self._with_retries("download_media", attempt)

    def is_trusted_media_url(self, url: str) -> bool:
        try:
            target = urlsplit(url)
            configured = urlsplit(self.base_url)
            target_port, configured_port = target.port, configured.port
        except ValueError:
            return False
        if target.username is not None or target.password is not None:
            return False
        host = (target.hostname or "").lower()
        if target.scheme == "https" and host in META_MEDIA_HOSTS and target_port in (None, 443):
            return True
        # The Graph base URL receives the token on every call already (the sandbox serves media there).
        return (
            target.scheme == configured.scheme
            and host == (configured.hostname or "").lower()
            and target_port == configured_port
            and bool(host)
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _url(self, *segments: str) -> str:
        object_id = segments[0]
        if not isinstance(object_id, str) or not _GRAPH_ID.fullmatch(object_id):
            raise ValueError("invalid Graph object id")
        return "/".join((self.base_url, self.api_version, *segments))

    def _call(
        self,
        operation: str,
        method: str,
        url: str,
        token: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        def attempt() -> Any:
            response = self._http.request(method, url, json=json, params=params, headers=_auth(token))
            if response.is_success:
                try:
                    return response.json()
                except ValueError:
                    raise _malformed(operation) from None
            return _failure_from_response(response)

        return self._with_retries(operation, attempt)

    def _with_retries(self, operation: str, attempt: Callable[[], Any]) -> Any:
        policy = self.retry
        deadline = self._monotonic() + policy.max_total_seconds
        for attempt_number in range(1, policy.max_attempts + 1):
            try:
                outcome = attempt()
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                outcome = _Failure(_transport_error(exc))
            except httpx.HTTPError as exc:  # misconfiguration (bad URL, protocol): retrying cannot help
                error = GraphError.from_spec(
                    classify(None), code=None, title=f"Graph API request failed ({type(exc).__name__})"
                )
                _log_failure(operation, error, attempt_number, retrying=False)
                raise error from None
            if not isinstance(outcome, _Failure):
                return outcome
            error = outcome.error
            if not error.retryable or attempt_number == policy.max_attempts:
                _log_failure(operation, error, attempt_number, retrying=False)
                raise error
            delay = self._backoff(attempt_number, outcome)
            if self._monotonic() + delay > deadline:
                _log_failure(operation, error, attempt_number, retrying=False)
                raise error
            _log_failure(operation, error, attempt_number, retrying=True, delay=delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt_number: int, failure: _Failure) -> float:
        """Full jitter (AWS Architecture Blog): uniform in [0, min(cap, base * 2^n)], never below
        what the server asked for (Retry-After) or the error code's documented minimum spacing."""
        policy = self.retry
        ceiling = min(policy.max_delay_seconds, policy.base_delay_seconds * 2 ** (attempt_number - 1))
        jittered = self._rand() * ceiling
        return max(jittered, failure.retry_after or 0.0, failure.min_delay)


def _auth(token: str) -> dict[str, str]:
    # Checked here so httpx never builds an error message that quotes the header (and the token).
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ValueError("an access token of printable ASCII characters is required")
    return {"Authorization": f"Bearer {token}"}


def _failure_from_response(response: httpx.Response) -> _Failure:
    retry_after = _retry_after_seconds(response.headers.get("retry-after"))
    try:
        body = response.json()
    except ValueError:
        body = None
    error = GraphError.from_error_body(body, http_status=response.status_code, retry_after_seconds=retry_after)
    spec: ErrorSpec = classify(error.code, http_status=response.status_code)
    return _Failure(error, retry_after=retry_after, min_delay=spec.min_retry_delay_seconds)


def _transport_error(exc: Exception) -> GraphError:
    spec = classify(None, http_status=503)
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return GraphError.from_spec(spec, code=None, title=f"Graph API request {kind} ({type(exc).__name__})")


def _malformed(operation: str) -> GraphError:
    spec = classify(None, http_status=502)
    return GraphError.from_spec(spec, code=None, title=f"Unexpected Graph API response to {operation}", http_status=200)


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _log_failure(
    operation: str, error: GraphError, attempt: int, *, retrying: bool, delay: float | None = None
) -> None:
    # Codes and categories only: Meta's messages can quote the recipient or the payload.
    fields = {
        "graph_operation": operation,
        "graph_error_code": error.code,
        "graph_http_status": error.http_status,
        "graph_problem_type": error.problem_type,
        "attempt": attempt,
    }
    if retrying:
        logger.warning("Graph API call failed; retrying", extra={**fields, "retry_in_seconds": round(delay or 0, 3)})
    else:
        logger.warning("Graph API call failed", extra={**fields, "retryable": error.retryable})


_shared_client: GraphClient | None = None
_shared_lock = threading.Lock()


def get_graph_client() -> GraphClient:
    """The container-wide client: one connection pool reused by every warm invocation."""
    global _shared_client
    if _shared_client is None:
        with _shared_lock:
            if _shared_client is None:
                _shared_client = GraphClient()
    return _shared_client


def reset_graph_client() -> None:
    """Close and forget the shared client (tests, or after settings change in the local stack)."""
    global _shared_client
    with _shared_lock:
        if _shared_client is not None:
            _shared_client.close()
        _shared_client = None
