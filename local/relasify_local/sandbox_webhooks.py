"""The webhooks the WhatsApp sandbox posts (relasify_local.sandbox), as Meta does: the payloads (a send's
statuses, a template's approval) and their delivery, signed with the app secret, in order, retried
with backoff and given up after the last attempt, on a thread of its own."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from relasify.whatsapp.signature import sign

from relasify_local.sandbox_graph import ERROR_DETAILS, error_title

logger = logging.getLogger(__name__)

Build = Callable[[], dict[str, Any]]  # a webhook payload, built when its turn comes (its timestamp then)
Step = tuple[Build, str]  # the payload and a description for the deliveries' record
Envelope = Callable[[list[dict[str, Any]]], dict[str, Any]]  # statuses -> the `messages` webhook of a number
ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def wire_bytes(payload: dict[str, Any]) -> bytes:
    # Compact, ASCII-escaped like Meta's wire form; receivers must hash these exact bytes.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


# --- payloads -----------------------------------------------------------------------------------------


def _webhook(waba_id: str, field: str, value: dict[str, Any], **entry: Any) -> dict[str, Any]:
    """One change of one account, in the envelope every WhatsApp webhook has."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": field}], **entry}],
    }


def messages_envelope(
    waba_id: str, display_phone_number: str, phone_number_id: str, statuses: list[dict[str, Any]]
) -> dict[str, Any]:
    """A `messages` webhook of one number carrying `statuses` (an inbound message replaces them)."""
    metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
    return _webhook(waba_id, "messages", {"messaging_product": "whatsapp", "metadata": metadata, "statuses": statuses})


def status_steps(
    envelope: Envelope,
    wamid: str,
    wa_id: str,
    payload: dict[str, Any],
    template_category: str | None,
    failure_code: int | None,
) -> list[Step]:
    """The statuses Meta posts for an accepted send: `sent`, `delivered`, `read`, or `failed` alone
    for a recipient told to fail; a template is billed in its category, a reply in the service window
    is free. Meta's `biz_opaque_callback_data` is echoed in each."""
    now = int(time.time())
    conversation_category = template_category or "service"
    conversation = {
        "id": secrets.token_hex(16),
        "expiration_timestamp": str(now + 24 * 3600),
        "origin": {"type": conversation_category},
    }
    if template_category is not None:
        pricing = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": template_category}
    else:
        pricing = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
    callback_data = payload.get("biz_opaque_callback_data")

    def status_of(name: str) -> Build:
        def build() -> dict[str, Any]:
            status: dict[str, Any] = {
                "id": wamid,
                "status": name,
                "timestamp": str(int(time.time())),
                "recipient_id": wa_id,
            }
            if callback_data is not None:
                status["biz_opaque_callback_data"] = callback_data
            if name == "failed":
                code = failure_code or 131026
                title = error_title(code, "Message failed")
                status["errors"] = [
                    {
                        "code": code,
                        "title": title,
                        "message": title,
                        "error_data": {"details": ERROR_DETAILS.get(code, title)},
                        "href": ERROR_CODES_HREF,
                    }
                ]
            else:
                status["conversation"] = conversation
                status["pricing"] = pricing
            return envelope([status])

        return build

    sequence = ["failed"] if failure_code is not None else ["sent", "delivered", "read"]
    return [(status_of(name), f"status {name}") for name in sequence]


def template_approved(waba_id: str, template_id: str, template: dict[str, Any]) -> dict[str, Any]:
    """The `message_template_status_update` webhook of an approved template."""
    value = {
        "event": "APPROVED",
        "message_template_id": int(template_id),
        "message_template_name": template.get("name"),
        "message_template_language": template.get("language"),
        "reason": "NONE",
        "message_template_category": template.get("category"),
    }
    return _webhook(waba_id, "message_template_status_update", value, time=int(time.time()))


# --- delivery -----------------------------------------------------------------------------------------


@dataclass(order=True)
class _Job:
    due: float
    sequence: int
    build: Build = field(compare=False)
    description: str = field(compare=False)
    attempt: int = field(default=1, compare=False)
    before_post: Callable[[], None] | None = field(default=None, compare=False)
    after_done: Callable[[], None] | None = field(default=None, compare=False)
    body: bytes | None = field(default=None, compare=False)
    generation: int = field(default=0, compare=False)


class WebhookDispatcher:
    """Posts scheduled webhooks to `webhook_url` from its own thread, between `start()` and `stop()`."""

    def __init__(
        self,
        *,
        webhook_url: str,
        app_secret: str,
        step_delay_seconds: float,
        max_attempts: int,
        retry_delay_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self.webhook_url = webhook_url
        self.app_secret = app_secret
        self.step_delay_seconds = step_delay_seconds
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: list[_Job] = []
        self._in_flight = 0
        self._sequence = itertools.count()
        self._generation = 0
        self._deliveries: list[dict[str, Any]] = []
        self._client: httpx.Client | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._thread = None

    def reset(self) -> None:
        """Drop every pending webhook (one in flight is not recorded or followed) and the record."""
        with self._lock:
            self._generation += 1
            self._jobs.clear()
            self._deliveries = []
            self._changed.notify_all()

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Every post attempt: description, attempt number, HTTP status (None on connection errors)."""
        with self._lock:
            return list(self._deliveries)

    def wait_until_idle(self, timeout: float) -> bool:
        """Block until every scheduled webhook has been delivered or dropped."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._jobs or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
        return True

    def schedule_chain(self, steps: list[Step], *, before_post: Callable[[], None] | None = None) -> None:
        """Post the steps in order, each `step_delay_seconds` after the previous one finished
        (delivered or given up); `before_post` runs once before the first step's first attempt."""
        if not steps:
            return
        (build, description), rest = steps[0], steps[1:]
        with self._lock:
            job = _Job(
                due=time.monotonic() + self.step_delay_seconds,
                sequence=next(self._sequence),
                build=build,
                description=description,
                before_post=before_post,
                after_done=(lambda: self.schedule_chain(rest)) if rest else None,
                generation=self._generation,
            )
        self._schedule(job)

    def post(self, body: bytes) -> int | None:
        """Post one signed body now; the HTTP status, None when the receiver could not be reached."""
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, self.app_secret),
            "User-Agent": "facebookexternalua",
        }
        client = self._client
        try:
            if client is None:
                with httpx.Client(timeout=self.timeout_seconds) as one_off:
                    return one_off.post(self.webhook_url, content=body, headers=headers).status_code
            return client.post(self.webhook_url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            logger.info("sandbox webhook post failed: %s", type(exc).__name__)
            return None

    def _schedule(self, job: _Job) -> None:
        with self._lock:
            heapq.heappush(self._jobs, job)
            self._changed.notify_all()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_seconds) as client:
            self._client = client
            while not self._stopping.is_set():
                job = self._next_due_job()
                if job is None:
                    continue
                try:
                    self._deliver(job)
                finally:
                    with self._lock:
                        self._in_flight -= 1
                        self._changed.notify_all()
            self._client = None

    def _next_due_job(self) -> _Job | None:
        with self._lock:
            while not self._stopping.is_set():
                if self._jobs:
                    wait = self._jobs[0].due - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._jobs)
                else:
                    wait = 0.5
                self._changed.wait(min(wait, 0.5))
        return None

    def _deliver(self, job: _Job) -> None:
        if job.generation != self._generation:
            return  # scheduled before reset()
        if job.before_post is not None and job.attempt == 1:
            job.before_post()
        if job.body is None:
            job.body = wire_bytes(job.build())
        status = self.post(job.body)
        with self._lock:
            if job.generation != self._generation:
                return
            self._deliveries.append({"description": job.description, "attempt": job.attempt, "http_status": status})
        if status is not None and 200 <= status < 300:
            if job.after_done is not None:
                job.after_done()
            return
        if job.attempt >= self.max_attempts:
            # Like Meta after its retry period: give up. Nothing personal is logged.
            logger.warning("sandbox webhook dropped after %d attempts (%s)", job.attempt, job.description)
            if job.after_done is not None:
                job.after_done()
            return
        job.attempt += 1
        job.due = time.monotonic() + self.retry_delay_seconds * 2 ** (job.attempt - 2)
        with self._lock:
            job.sequence = next(self._sequence)
        self._schedule(job)
