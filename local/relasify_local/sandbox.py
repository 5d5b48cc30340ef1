"""WhatsApp sandbox: a local stand-in for Meta's Graph API (SPEC section 11).

It accepts sends, template submissions, media uploads and media look-ups the way the Cloud API does, then posts
signed webhooks back like Meta: `sent` -> `delivered` -> `read` statuses for each message and an
`APPROVED` template status update for each template. Tests can inject faults (throttling, server
errors, timeouts, connection resets, Graph error codes) for the next N calls.

It models accounts (SPEC section 11): the seeded WhatsApp Business Account `102345678901234` with the
number `109876543210987` accepts any token beginning with `EAAG`; `POST /_sandbox/accounts
{waba_id, phone_number_id, display_phone_number, token}` registers more. A token that is not known
gets Graph's OAuthException 190; an object the token does not own (a number, an account, their
messages and templates) gets Graph's code 100 / subcode 33, exactly as Meta answers both.

Its parts: `sandbox_http` (the standard library server; every thread and socket is released by
`stop()`), `sandbox_graph` (Graph's error bodies, cursors and objects), `sandbox_templates` (the
accounts' message templates) and `sandbox_webhooks` (the webhooks it posts, and their delivery).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

from relasify_local.sandbox_graph import (
    Answer,
    Number,
    bearer_token,
    encode_cursor,
    graph_error,
    json_object,
    not_visible,
    number_fields,
)
from relasify_local.sandbox_http import RequestHandler, SandboxServer
from relasify_local.sandbox_templates import TemplateStore
from relasify_local.sandbox_webhooks import (
    WebhookDispatcher,
    messages_envelope,
    status_steps,
    wire_bytes,
)

logger = logging.getLogger(__name__)

FAULT_KINDS = frozenset({"429", "500", "timeout", "reset", "error_code"})
DEFAULT_WABA_ID = "102345678901234"
DEFAULT_DISPLAY_PHONE_NUMBER = "6281234500000"
DEFAULT_PHONE_NUMBER_ID = "109876543210987"
SANDBOX_TOKEN_PREFIX = "EAAG"  # noqa: S105 - the seeded account accepts any token beginning with this
_VERSION = r"v\d+(?:\.\d+)?"
_ID = r"[A-Za-z0-9_\-]{1,64}"
_ROUTE_MESSAGES = re.compile(rf"/({_VERSION})/({_ID})/messages/?")
_ROUTE_TEMPLATES = re.compile(rf"/({_VERSION})/({_ID})/message_templates/?")
_ROUTE_PHONE_NUMBERS = re.compile(rf"/({_VERSION})/({_ID})/phone_numbers/?")
_ROUTE_SUBSCRIBED_APPS = re.compile(rf"/({_VERSION})/({_ID})/subscribed_apps/?")
_ROUTE_OBJECT = re.compile(rf"/({_VERSION})/({_ID})/?")
_ID_VALUE = re.compile(_ID)
_ROUTE_MEDIA_BYTES = re.compile(rf"/media/({_ID})/?")
_ROUTE_MEDIA_UPLOAD = re.compile(rf"/({_VERSION})/({_ID})/media/?")
INSPECT_SENT_MESSAGES_PATH = "/_sandbox/sent-messages"  # GET: every send the sandbox accepted
ADD_MEDIA_PATH = "/_sandbox/media"  # POST raw bytes (Content-Type = mime type): {"id": media id}
ACCOUNTS_PATH = "/_sandbox/accounts"  # POST: register a WABA number and the token that owns it
# POST {phone_number_id, from, text | media, profile_name?, context?, wamid?}: a customer writes in (a signed
# webhook, as Meta posts it); the same `wamid` again is a redelivery.
INBOUND_PATH = "/_sandbox/inbound"
INSPECT_UPLOADED_MEDIA_PATH = "/_sandbox/uploaded-media"  # GET: media the business uploaded (base64 bytes)


@dataclass
class _Account:
    """A WhatsApp Business Account: its numbers and the tokens that own it. `open_to_sandbox_tokens`:
    any `EAAG...` token that is not registered to another account owns it (the seeded account)."""

    waba_id: str
    numbers: dict[str, Number] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    open_to_sandbox_tokens: bool = False


@dataclass
class _Fault:
    kind: str
    remaining: int
    options: dict[str, Any]


class Sandbox:
    """A Graph API double. `base_url` is what GRAPH_API_BASE_URL should point at."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str,
        app_secret: str,
        latency_seconds: float = 0.0,
        status_delay_seconds: float = 0.2,
        waba_id: str = DEFAULT_WABA_ID,
        display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
        webhook_max_attempts: int = 4,
        webhook_retry_delay_seconds: float = 0.2,
        webhook_timeout_seconds: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.webhook_url = webhook_url
        self.app_secret = app_secret
        self.latency_seconds = latency_seconds
        self.status_delay_seconds = status_delay_seconds
        self.waba_id = waba_id
        self.display_phone_number = display_phone_number
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay_seconds = webhook_retry_delay_seconds
        self.webhook_timeout_seconds = webhook_timeout_seconds

        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: SandboxServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._webhooks = WebhookDispatcher(
            webhook_url=webhook_url,
            app_secret=app_secret,
            step_delay_seconds=status_delay_seconds,
            max_attempts=webhook_max_attempts,
            retry_delay_seconds=webhook_retry_delay_seconds,
            timeout_seconds=webhook_timeout_seconds,
        )
        self._reset_state()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = SandboxServer((self.host, self.port), self.handle)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-http"
        )
        self._serve_thread.start()
        self._webhooks.start()
        logger.info("WhatsApp sandbox listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        self._webhooks.stop()
        server.close()
        if self._serve_thread is not None:
            self._serve_thread.join()
        self._server = None
        self._serve_thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test hooks -----------------------------------------------------------------------------

    def inject_fault(self, kind: str, count: int = 1, **options: Any) -> None:
        """Make the next `count` Graph calls fail with `kind`.

        Options: "429" retry_after (seconds, default 1); "timeout" seconds to hold the connection
        before closing it without an answer (default 5); "error_code" code (required) and optionally
        http_status, message.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if kind == "error_code" and "code" not in options:
            raise ValueError("error_code faults need code=<Graph error code>")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(_Fault(kind, count, options))

    def fail_recipient(self, wa_id: str, code: int = 131026) -> None:
        """Accept sends to `wa_id` but report them `failed` with `code` in the status webhook."""
        with self._lock:
            self._failing_recipients[wa_id] = code

    def expire_token(self, token: str) -> None:
        """Calls with this token get Graph error 190 from now on."""
        with self._lock:
            self._expired_tokens.add(token)

    def register_number(
        self,
        phone_number_id: str,
        *,
        waba_id: str | None = None,
        display_phone_number: str | None = None,
        token: str | None = None,
        quality_rating: str | None = None,
        messaging_limit: str | None = None,
    ) -> None:
        """Put a number into a WABA (created if new). With `token`, that exact token owns the account;
        without, the account is open to any `EAAG...` token like the seeded one. A number belongs to
        one account: registering it again moves it (ValueError if the ids are malformed)."""
        waba_id = waba_id or self.waba_id
        if not (_ID_VALUE.fullmatch(waba_id) and _ID_VALUE.fullmatch(phone_number_id)):
            raise ValueError("waba_id and phone_number_id must be Graph ids")
        number = Number(phone_number_id, display_phone_number or self.display_phone_number)
        if quality_rating:
            number.quality_rating = quality_rating
        if messaging_limit:
            number.messaging_limit = messaging_limit
        with self._lock:
            for account in self._accounts.values():
                account.numbers.pop(phone_number_id, None)
            account = self._accounts.setdefault(waba_id, _Account(waba_id, open_to_sandbox_tokens=token is None))
            account.numbers[phone_number_id] = number
            if token is not None:
                account.tokens.add(token)

    @property
    def subscribed_apps(self) -> list[str]:
        """The WABA ids of every accepted `POST /{waba_id}/subscribed_apps`, in order."""
        with self._lock:
            return list(self._subscriptions)

    def add_media(self, content: bytes, mime_type: str = "image/jpeg", *, url: str | None = None) -> str:
        """Store media as if a user had sent it; returns the media id to put in an inbound webhook.
        `url`: answer the media look-up with this download URL instead of the sandbox's own (tests of
        where the token may go)."""
        media_id = str(secrets.randbelow(10**15) + 10**15)
        with self._lock:
            self._media[media_id] = (content, mime_type)
            if url is not None:
                self._media_urls[media_id] = url
        return media_id

    def post_webhook(self, payload: dict[str, Any]) -> int:
        """Post one signed webhook now (e.g. a simulated inbound message); returns the HTTP status."""
        return self._webhooks.post(wire_bytes(payload))

    def post_inbound_message(
        self,
        phone_number_id: str,
        from_wa_id: str,
        message: dict[str, Any],
        *,
        profile_name: str = "Sandbox User",
        wamid: str | None = None,
    ) -> tuple[str, int | None]:
        """Post a signed inbound message webhook, as if `from_wa_id` had written to the number.

        `message` is the type-specific part, e.g. {"type": "text", "text": {"body": "Halo"}} or
        {"type": "image", "image": {"id": sandbox.add_media(...), "mime_type": "image/jpeg"}}.
        Returns the inbound wamid and the receiver's HTTP status.
        """
        wamid = wamid or "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()  # given: a redelivery
        envelope = self._envelope_for_number(phone_number_id, [])
        value = envelope["entry"][0]["changes"][0]["value"]
        del value["statuses"]
        value["contacts"] = [{"profile": {"name": profile_name}, "wa_id": from_wa_id}]
        value["messages"] = [{"from": from_wa_id, "id": wamid, "timestamp": str(int(time.time())), **message}]
        return wamid, self.post_webhook(envelope)

    def reset(self) -> None:
        """Forget everything recorded and every pending fault and webhook."""
        self._webhooks.reset()  # first: no webhook of the old state is posted once it is gone
        with self._lock:
            self._reset_state()

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Block until every scheduled webhook has been delivered or dropped."""
        return self._webhooks.wait_until_idle(timeout)

    @property
    def sent_messages(self) -> list[dict[str, Any]]:
        """Each accepted send payload plus `phone_number_id` and the `wamid` the sandbox answered with."""
        with self._lock:
            return list(self._sent_messages)

    @property
    def uploaded_media(self) -> list[dict[str, Any]]:
        """Each file uploaded to `POST /{phone_number_id}/media`: id, phone_number_id, mime_type, filename, content."""
        with self._lock:
            return [dict(upload) for upload in self._uploaded_media]

    @property
    def templates(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._templates.all()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every Graph call received: method, path, HTTP status answered (None if none), fault applied and
        arrival time (epoch seconds, before any latency: when Meta would count it against throughput)."""
        with self._lock:
            return list(self._requests)

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook post attempt: description, attempt number, HTTP status (None on connection errors)."""
        return self._webhooks.deliveries

    # -- request handling (called from handler threads) -----------------------------------------

    def handle(self, request: RequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path, query = parts.path, parse_qs(parts.query)
        body = request.read_body()
        if path == INSPECT_SENT_MESSAGES_PATH and method == "GET":
            # Not a Graph route: what the sandbox accepted, for tests and developers of the local stack
            # (no latency, no faults, not counted as a Graph request).
            request.respond(200, {"data": self.sent_messages}, {})
            return
        if path == INSPECT_UPLOADED_MEDIA_PATH and method == "GET":
            uploads = [{**u, "content": base64.b64encode(u["content"]).decode()} for u in self.uploaded_media]
            request.respond(200, {"data": uploads}, {})
            return
        if path == ADD_MEDIA_PATH and method == "POST":
            # Not a Graph route either: media "a user sent", for inbound media webhooks from another process.
            mime_type = request.headers.get("Content-Type") or "image/jpeg"
            request.respond(200, {"id": self.add_media(body, mime_type)}, {})
            return
        if path == ACCOUNTS_PATH and method == "POST":
            request.respond(*self._register_account(body))
            return
        if path == INBOUND_PATH and method == "POST":
            # Not a Graph route: a customer writing in, posted to the receiver as Meta would.
            request.respond(*self._inbound(body))
            return
        record: dict[str, Any] = {"method": method, "path": path, "status": None, "fault": None, "at": time.time()}
        with self._lock:
            self._requests.append(record)

        # Latency first, like a slow network; stop() cuts it short.
        if self.latency_seconds > 0 and self._stopping.wait(self.latency_seconds):
            request.abort()
            return

        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            self._answer(request, record, *graph_error(190, message="Invalid OAuth access token - Cannot parse"))
            return

        fault = self._take_fault()
        if fault is not None:
            record["fault"] = fault.kind
            self._apply_fault(request, record, fault)
            return

        with self._lock:
            expired = token in self._expired_tokens
            owned = self._accounts_of(token)
        if expired:
            self._answer(request, record, *graph_error(190))
            return
        if not owned:
            self._answer(request, record, *graph_error(190, message="Invalid OAuth access token - Cannot parse"))
            return

        status, payload, headers = self._route(
            method, path, query, body, owned, request.headers.get("Content-Type") or ""
        )
        self._answer(request, record, status, payload, headers)

    def _accounts_of(self, token: str) -> dict[str, _Account]:
        """The accounts `token` owns (call with the lock held): those it is registered to, else, for
        an `EAAG...` token, the accounts open to any sandbox token."""
        exact = {w: a for w, a in self._accounts.items() if token in a.tokens}
        if exact or not token.startswith(SANDBOX_TOKEN_PREFIX):
            return exact
        return {w: a for w, a in self._accounts.items() if a.open_to_sandbox_tokens}

    def _register_account(self, body: bytes) -> Answer:
        payload = json_object(body) or {}
        fields = ("waba_id", "phone_number_id", "display_phone_number", "token")
        values = {name: payload.get(name) for name in fields}
        if not all(isinstance(value, str) and value.strip() for value in values.values()):
            return 400, {"error": f"{', '.join(fields)} are required strings"}, {}
        try:
            self.register_number(
                values["phone_number_id"],
                waba_id=values["waba_id"],
                display_phone_number=values["display_phone_number"],
                token=values["token"],
                quality_rating=payload.get("quality_rating")
                if isinstance(payload.get("quality_rating"), str)
                else None,
                messaging_limit=payload.get("messaging_limit")
                if isinstance(payload.get("messaging_limit"), str)
                else None,
            )
        except ValueError as exc:
            return 400, {"error": str(exc)}, {}
        return 201, {key: values[key] for key in ("waba_id", "phone_number_id", "display_phone_number")}, {}

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        owned: dict[str, _Account],
        content_type: str = "",
    ) -> Answer:
        owned_numbers = {n: a for a in owned.values() for n in a.numbers}
        if match := _ROUTE_MESSAGES.fullmatch(path):
            if method == "POST":
                if match.group(2) not in owned_numbers:
                    return not_visible(method, match.group(2))
                return self._send(match.group(2), body)
        elif match := _ROUTE_PHONE_NUMBERS.fullmatch(path):
            if method == "GET":
                account = owned.get(match.group(2))
                if account is None:
                    return not_visible(method, match.group(2))
                return self._list_numbers(account)
        elif match := _ROUTE_SUBSCRIBED_APPS.fullmatch(path):
            if method == "POST":
                if match.group(2) not in owned:
                    return not_visible(method, match.group(2))
                with self._lock:
                    self._subscriptions.append(match.group(2))
                return 200, {"success": True}, {}
        elif match := _ROUTE_MEDIA_UPLOAD.fullmatch(path):
            if method == "POST":
                return self._upload_media(match.group(2), body, content_type)
        elif match := _ROUTE_TEMPLATES.fullmatch(path):
            waba_id = match.group(2)
            if waba_id not in owned:
                return not_visible(method, waba_id)
            if method == "POST":
                return self._create_template(waba_id, body)
            if method == "GET":
                return self._templates.list(waba_id, f"{self.base_url}{path}", query)
            if method == "DELETE":
                return self._templates.delete(waba_id, query)
        elif match := _ROUTE_MEDIA_BYTES.fullmatch(path):
            if method == "GET":
                return self._media_bytes(match.group(1))
        elif (match := _ROUTE_OBJECT.fullmatch(path)) and method == "GET":
            return self._get_object(match.group(2), owned_numbers)
        status, error, headers = graph_error(100, message=f"Unsupported {method} request")
        return status, error, headers

    def _inbound(self, body: bytes) -> Answer:
        request = json_object(body) or {}
        phone_number_id, sender = request.get("phone_number_id"), request.get("from")
        text, media = request.get("text"), request.get("media")
        if not isinstance(phone_number_id, str) or not isinstance(sender, str) or not sender.isdigit():
            return 400, {"error": "phone_number_id and from (digits) are required"}, {}
        if isinstance(text, str) and text:
            message: dict[str, Any] = {"type": "text", "text": {"body": text}}
        elif isinstance(media, dict) and media.get("type") in ("image", "document", "audio", "video", "sticker"):
            kind, mime_type = media["type"], str(media.get("mime_type") or "image/jpeg")
            raw = base64.b64decode(str(media.get("data_base64") or "")) or b"sandbox-media"
            part: dict[str, Any] = {"id": self.add_media(raw, mime_type), "mime_type": mime_type}
            if media.get("caption"):
                part["caption"] = str(media["caption"])
            message = {"type": kind, kind: part}
        else:
            return 400, {"error": "give text (a string) or media {type, mime_type?, caption?, data_base64?}"}, {}
        if isinstance(request.get("context"), str):
            message["context"] = {"from": self.display_phone_number, "id": request["context"]}
        profile = str(request.get("profile_name") or "Sandbox User")
        given = request.get("wamid") if isinstance(request.get("wamid"), str) else None
        wamid, status = self.post_inbound_message(phone_number_id, sender, message, profile_name=profile, wamid=given)
        return 200, {"wamid": wamid, "webhook_status": status}, {}

    def _send(self, phone_number_id: str, body: bytes) -> Answer:
        payload = json_object(body)
        if payload is None:
            return graph_error(100, message="Invalid parameter", details="Request body is not a JSON object")
        if payload.get("messaging_product") != "whatsapp":
            return graph_error(100, details="messaging_product must be whatsapp")
        if payload.get("status") == "read":  # mark as read (and the typing indicator): no message, no webhook
            if not isinstance(payload.get("message_id"), str) or not payload["message_id"]:
                return graph_error(131009, details="message_id is required")
            with self._lock:
                self._sent_messages.append({**payload, "phone_number_id": phone_number_id})
            return 200, {"success": True}, {}
        recipient = payload.get("to") or payload.get("recipient")
        message_type = payload.get("type", "text")
        if not isinstance(recipient, str) or not recipient.strip():
            return graph_error(131008, details="The parameter to is required.")
        if not isinstance(payload.get(message_type), dict):
            return graph_error(131008, details=f"The parameter {message_type} is required.")
        wa_id = re.sub(r"\D", "", recipient) or recipient
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()
        message: dict[str, Any] = {"id": wamid}
        if message_type == "template":
            message["message_status"] = "accepted"
        with self._lock:
            self._sent_messages.append({**payload, "phone_number_id": phone_number_id, "wamid": wamid})
            category = self._templates.category_of(payload) if message_type == "template" else None
            failure_code = self._failing_recipients.get(wa_id)
        envelope = partial(self._envelope_for_number, phone_number_id)
        self._webhooks.schedule_chain(status_steps(envelope, wamid, wa_id, payload, category, failure_code))
        response = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": recipient, "wa_id": wa_id}],
            "messages": [message],
        }
        return 200, response, {}

    def _create_template(self, waba_id: str, body: bytes) -> Answer:
        answer, template_id = self._templates.create(waba_id, body)
        if template_id is not None:
            build = partial(self._templates.approval_webhook, waba_id, template_id)
            approve = partial(self._templates.approve, template_id)
            self._webhooks.schedule_chain([(build, "template APPROVED")], before_post=approve)
        return answer

    def _get_object(self, object_id: str, owned_numbers: dict[str, _Account]) -> Answer:
        with self._lock:
            media = self._media.get(object_id)
            account = owned_numbers.get(object_id)
            number = account.numbers.get(object_id) if account is not None else None
        if media is not None:
            content, mime_type = media
            return (
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": self._media_urls.get(object_id, f"{self.base_url}/media/{object_id}"),
                    "mime_type": mime_type,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "file_size": len(content),
                    "id": object_id,
                },
                {},
            )
        if number is not None:
            return 200, number_fields(number), {}
        return not_visible("GET", object_id)

    def _list_numbers(self, account: _Account) -> Answer:
        with self._lock:
            data = [number_fields(number) for number in account.numbers.values()]
        cursor = encode_cursor(0)
        return 200, {"data": data, "paging": {"cursors": {"before": cursor, "after": cursor}}}, {}

    def _upload_media(self, phone_number_id: str, body: bytes, content_type: str) -> Answer:
        """POST /{phone_number_id}/media as the Cloud API takes it: multipart `messaging_product`, `type`, `file`."""
        if not content_type.lower().startswith("multipart/form-data"):
            return graph_error(100, details="Upload media as multipart/form-data")
        message = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        product, file_part = parts.get("messaging_product"), parts.get("file")
        if product is None or product.get_content().strip() != "whatsapp":
            return graph_error(100, details="messaging_product must be whatsapp")
        if file_part is None:
            return graph_error(131008, details="The parameter file is required.")
        type_part = parts.get("type")
        mime_type = type_part.get_content().strip() if type_part is not None else file_part.get_content_type()
        content = file_part.get_payload(decode=True) or b""
        media_id = self.add_media(content, mime_type)
        with self._lock:
            self._uploaded_media.append(
                {
                    "id": media_id,
                    "phone_number_id": phone_number_id,
                    "mime_type": mime_type,
                    "filename": file_part.get_filename(),
                    "content": content,
                }
            )
        return 200, {"id": media_id}, {}

    def _media_bytes(self, media_id: str) -> Answer:
        with self._lock:
            media = self._media.get(media_id)
        if media is None:
            return 404, b"", {"Content-Type": "text/plain"}
        content, mime_type = media
        return 200, content, {"Content-Type": mime_type}

    # -- faults ---------------------------------------------------------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            while self._faults:
                fault = self._faults[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.pop(0)
                return fault
        return None

    def _apply_fault(self, request: RequestHandler, record: dict[str, Any], fault: _Fault) -> None:
        options = fault.options
        if fault.kind == "429":
            retry_after = options.get("retry_after", 1)
            status, error, headers = graph_error(130429)
            self._answer(request, record, status, error, {**headers, "Retry-After": str(retry_after)})
        elif fault.kind == "500":
            status, error, headers = graph_error(131000, http_status=500)
            self._answer(request, record, status, error, headers)
        elif fault.kind == "error_code":
            code = int(options["code"])
            status, error, headers = graph_error(
                code, http_status=options.get("http_status"), message=options.get("message")
            )
            self._answer(request, record, status, error, headers)
        elif fault.kind == "timeout":
            self._stopping.wait(float(options.get("seconds", 5.0)))
            request.abort()
        else:  # reset
            request.abort(reset=True)

    def _answer(
        self, request: RequestHandler, record: dict[str, Any], status: int, payload: Any, headers: dict[str, str]
    ) -> None:
        record["status"] = status
        request.respond(status, payload, headers)

    # -- webhooks -------------------------------------------------------------------------------

    def _envelope_for_number(self, phone_number_id: str, statuses: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            account = next((a for a in self._accounts.values() if phone_number_id in a.numbers), None)
        if account is not None:
            waba_id, display = account.waba_id, account.numbers[phone_number_id].display_phone_number
        else:
            waba_id, display = self.waba_id, self.display_phone_number
        return messages_envelope(waba_id, display, phone_number_id, statuses)

    def _reset_state(self) -> None:
        self._faults: list[_Fault] = []
        self._sent_messages: list[dict[str, Any]] = []
        self._templates = TemplateStore()
        self._requests: list[dict[str, Any]] = []
        self._media: dict[str, tuple[bytes, str]] = {}
        self._media_urls: dict[str, str] = {}
        self._uploaded_media: list[dict[str, Any]] = []
        self._failing_recipients: dict[str, int] = {}
        self._expired_tokens: set[str] = set()
        self._subscriptions: list[str] = []
        seeded = _Account(self.waba_id, open_to_sandbox_tokens=True)
        seeded.numbers[DEFAULT_PHONE_NUMBER_ID] = Number(DEFAULT_PHONE_NUMBER_ID, self.display_phone_number)
        self._accounts: dict[str, _Account] = {self.waba_id: seeded}
