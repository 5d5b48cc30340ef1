"""Graph API error codes as data (reference/whatsapp.md section 6) and the typed GraphError.

Callers key on `code` (Meta's advice), never on the message text. Each code maps to what the
sender should do: retry (and how soon), refuse with a stable problem type, or alert an operator.
The same table classifies asynchronous failures (`statuses[].errors[].code` in webhooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from relasify.errors import SendRefused


class ErrorCategory(StrEnum):
    THROUGHPUT = "throughput"  # per-number messages-per-second cap
    PAIR_RATE_LIMIT = "pair-rate-limit"  # too many messages to one recipient
    RATE_LIMIT = "rate-limit"  # app / WABA Graph call-rate limit
    TRANSIENT = "transient"  # Meta-side failure; the same request may succeed later
    SERVICE_WINDOW = "service-window"
    RECIPIENT = "recipient"
    OPT_OUT = "opt-out"
    ENGAGEMENT = "engagement"  # Meta held the message back (marketing caps, experiments)
    TEMPLATE = "template"
    TEMPLATE_STATE = "template-state"  # missing, paused or disabled template
    MEDIA = "media"
    AUTH = "auth"
    PERMISSION = "permission"
    ACCOUNT = "account"
    BILLING = "billing"
    SPAM = "spam"
    INVALID_REQUEST = "invalid-request"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """What a Graph error code means for the sender.

    `retryable`: the same request may succeed later. `min_retry_delay_seconds`: do not retry sooner
    (a client with a smaller time budget gives up and lets the caller requeue). `problem_type`: the
    stable slug of the problem Relasify reports; `api_status`: the HTTP status it reports it with.
    """

    category: ErrorCategory
    retryable: bool
    problem_type: str
    action: str
    api_status: int = 502
    min_retry_delay_seconds: float = 0.0


_THROUGHPUT = ErrorSpec(
    ErrorCategory.THROUGHPUT,
    True,
    "whatsapp-throughput-exceeded",
    "Retry with backoff after seconds; pace sends per phone number.",
    429,
)
_TRANSIENT = ErrorSpec(
    ErrorCategory.TRANSIENT,
    True,
    "whatsapp-unavailable",
    "Retry with backoff; a timed-out send may already have been delivered.",
    503,
)
_RATE_LIMIT = ErrorSpec(
    ErrorCategory.RATE_LIMIT, True, "whatsapp-rate-limited", "Back off for minutes and reduce Graph calls.", 429, 60.0
)
_TEMPLATE_PAYLOAD = ErrorSpec(
    ErrorCategory.TEMPLATE,
    False,
    "template-error",
    "Fix the template parameters or resync templates; do not retry blindly.",
    422,
)
_TEMPLATE_UNUSABLE = ErrorSpec(
    ErrorCategory.TEMPLATE_STATE,
    False,
    "template-not-approved",
    "Stop using this template until its status webhook says APPROVED.",
    409,
)
_INVALID = ErrorSpec(
    ErrorCategory.INVALID_REQUEST,
    False,
    "whatsapp-invalid-request",
    "A bug or bad input in the request; do not retry.",
    422,
)
_PERMISSION = ErrorSpec(
    ErrorCategory.PERMISSION,
    False,
    "whatsapp-permission-denied",
    "Configuration error (token scope or app capability); alert an operator.",
    502,
)
_ACCOUNT = ErrorSpec(
    ErrorCategory.ACCOUNT,
    False,
    "whatsapp-account-restricted",
    "The account or number is blocked or restricted; stop and get a human to act.",
    409,
)
_MEDIA = ErrorSpec(
    ErrorCategory.MEDIA,
    True,
    "whatsapp-media-error",
    "Fetch a fresh media URL or upload again, a bounded number of times.",
    502,
)

GRAPH_ERRORS: MappingProxyType[int, ErrorSpec] = MappingProxyType(
    {
        130429: _THROUGHPUT,
        131056: ErrorSpec(
            ErrorCategory.PAIR_RATE_LIMIT,
            True,
            "whatsapp-pair-rate-limited",
            "Message this recipient again later (about 6 s apart, backing off 4^n s).",
            429,
            6.0,
        ),
        131048: ErrorSpec(
            ErrorCategory.SPAM,
            False,
            "whatsapp-spam-rate-limited",
            "Stop bulk sending and alert: too many recipients blocked or reported the number.",
            429,
        ),
        131049: ErrorSpec(
            ErrorCategory.ENGAGEMENT,
            False,
            "whatsapp-engagement-limited",
            "Meta held the marketing message back; treat as a soft failure, no immediate retry.",
            409,
        ),
        130472: ErrorSpec(
            ErrorCategory.ENGAGEMENT,
            False,
            "whatsapp-engagement-limited",
            "The user is in a Meta marketing experiment; expected, no retry.",
            409,
        ),
        131047: ErrorSpec(
            ErrorCategory.SERVICE_WINDOW,
            False,
            "outside-service-window",
            "More than 24 h since the contact's last message: send an approved template.",
            409,
        ),
        131026: ErrorSpec(
            ErrorCategory.RECIPIENT, False, "recipient-unreachable", "Mark the contact unreachable; do not retry.", 409
        ),
        131050: ErrorSpec(
            ErrorCategory.OPT_OUT,
            False,
            "contact-opted-out",
            "The user stopped marketing messages: record the opt-out.",
            409,
        ),
        131051: ErrorSpec(
            ErrorCategory.INVALID_REQUEST,
            False,
            "whatsapp-unsupported-message-type",
            "Unsupported message type; log it and show it as unsupported.",
            422,
        ),
        131052: _MEDIA,
        131053: _MEDIA,
        132000: _TEMPLATE_PAYLOAD,
        132005: _TEMPLATE_PAYLOAD,
        132007: _TEMPLATE_PAYLOAD,
        132012: _TEMPLATE_PAYLOAD,
        132001: _TEMPLATE_UNUSABLE,
        132015: _TEMPLATE_UNUSABLE,
        132016: _TEMPLATE_UNUSABLE,
        131000: _TRANSIENT,
        131016: _TRANSIENT,
        1: _TRANSIENT,
        2: _TRANSIENT,
        4: _RATE_LIMIT,
        80007: _RATE_LIMIT,
        190: ErrorSpec(
            ErrorCategory.AUTH,
            False,
            "whatsapp-token-expired",
            "The access token expired or was revoked: reconnect the number with a new token.",
            409,
        ),
        0: _PERMISSION,
        3: _PERMISSION,
        10: _PERMISSION,
        **dict.fromkeys(range(200, 300), _PERMISSION),
        368: _ACCOUNT,
        131031: _ACCOUNT,
        130497: _ACCOUNT,
        131042: ErrorSpec(
            ErrorCategory.BILLING,
            False,
            "whatsapp-payment-required",
            "Payment or eligibility problem on the WhatsApp account; alert billing.",
            409,
        ),
        100: _INVALID,
        131008: _INVALID,
        131009: _INVALID,
        131021: _INVALID,
    }
)

TOKEN_EXPIRED_CODE = 190

_UNKNOWN_TRANSIENT = ErrorSpec(
    ErrorCategory.TRANSIENT,
    True,
    "whatsapp-unavailable",
    "Meta answered with a server error or throttling; retry with backoff.",
    503,
)
_UNKNOWN = ErrorSpec(ErrorCategory.UNKNOWN, False, "whatsapp-error", "Unrecognised Graph API error; alert.", 502)


def classify(code: int | None, *, http_status: int | None = None, is_transient: bool | None = None) -> ErrorSpec:
    """The spec for a Graph error code. Unknown codes fall back on Meta's `is_transient` hint, then
    on the HTTP status (429 and 5xx are worth retrying; anything else is not)."""
    if code is not None and code in GRAPH_ERRORS:
        return GRAPH_ERRORS[code]
    if is_transient or http_status == 429 or (http_status is not None and http_status >= 500):
        return _UNKNOWN_TRANSIENT
    return _UNKNOWN


class GraphError(Exception):
    """A failed Graph API call after any retries. Carries no token and no request body."""

    def __init__(
        self,
        code: int | None,
        title: str,
        details: str | None,
        http_status: int | None,
        problem_type: str,
        retryable: bool,
        *,
        category: ErrorCategory = ErrorCategory.UNKNOWN,
        action: str = "",
        api_status: int = 502,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(f"Graph API error {code if code is not None else '-'} (HTTP {http_status}): {title}")
        self.code = code
        self.title = title
        self.details = details
        self.http_status = http_status
        self.problem_type = problem_type
        self.retryable = retryable
        self.category = category
        self.action = action
        self.api_status = api_status
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.retry_after_seconds = retry_after_seconds

    @classmethod
    def from_spec(
        cls,
        spec: ErrorSpec,
        *,
        code: int | None,
        title: str,
        details: str | None = None,
        http_status: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> GraphError:
        return cls(
            code,
            title,
            details,
            http_status,
            spec.problem_type,
            spec.retryable,
            category=spec.category,
            action=spec.action,
            api_status=spec.api_status,
            subcode=subcode,
            fbtrace_id=fbtrace_id,
            retry_after_seconds=retry_after_seconds,
        )

    @classmethod
    def from_error_body(
        cls, body: Any, *, http_status: int | None, retry_after_seconds: float | None = None
    ) -> GraphError:
        """Build from Meta's `{"error": {...}}` body (or anything else a misbehaving server sent)."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            spec = classify(None, http_status=http_status)
            return cls.from_spec(
                spec,
                code=None,
                title=f"Graph API answered HTTP {http_status}",
                http_status=http_status,
                retry_after_seconds=retry_after_seconds,
            )
        code = _as_int(error.get("code"))
        error_data = error.get("error_data")
        details = error_data.get("details") if isinstance(error_data, dict) else None
        spec = classify(code, http_status=http_status, is_transient=error.get("is_transient") is True)
        return cls.from_spec(
            spec,
            code=code,
            title=str(error.get("message") or error.get("type") or "Graph API error"),
            details=str(details) if details is not None else None,
            http_status=http_status,
            subcode=_as_int(error.get("error_subcode")),
            fbtrace_id=str(error["fbtrace_id"]) if error.get("fbtrace_id") else None,
            retry_after_seconds=retry_after_seconds,
        )

    @property
    def needs_new_token(self) -> bool:
        """The stored access token is dead: the connection must be marked as needing a new one."""
        return self.code == TOKEN_EXPIRED_CODE

    def to_domain_error(self) -> SendRefused:
        """The problem+json Relasify answers with (type = problem_type, Meta's code kept for the client)."""
        detail = self.details or self.title
        return SendRefused(self.problem_type, detail, status=self.api_status, meta_error_code=self.code)


class MediaTooLargeError(Exception):
    """A media download exceeded its size cap; nothing beyond the cap was read."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"media larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class UntrustedMediaUrlError(ValueError):
    """A media URL outside Meta's media hosts (or not HTTPS): the token is not sent there.

    Keeps only the scheme and host, for logs: the query of a media URL identifies the media."""

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            self.scheme, self.host = parts.scheme, parts.hostname or ""
        except ValueError:
            self.scheme, self.host = "", ""
        super().__init__(f"untrusted media URL ({self.scheme or '?'}://{self.host or '?'})")


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
