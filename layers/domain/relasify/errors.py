"""Domain exceptions. Each carries its HTTP status and a stable problem `type` slug;
`relasify.web.problems` turns them into RFC 9457 problem+json in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    type_slug: str = "bad-request"
    title: str = "Bad request"
    headers: dict[str, str] | None = None  # response headers the problem needs (e.g. Retry-After)

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra


class ValidationFailed(DomainError):
    status = 422
    type_slug = "validation-error"
    title = "Request validation failed"


class BadCursor(DomainError):
    status = 400
    type_slug = "invalid-cursor"
    title = "Invalid pagination cursor"


class Unauthenticated(DomainError):
    status = 401
    type_slug = "unauthenticated"
    title = "Authentication required"


class AccountDeleted(Unauthenticated):
    """The token is from a sign-in at or before the user deleted their account."""

    type_slug = "account-deleted"
    title = "Account deleted"


class NotFound(DomainError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Forbidden(DomainError):
    status = 403
    type_slug = "forbidden"
    title = "Role too low for this action"


class Conflict(DomainError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class DuplicateContact(Conflict):
    type_slug = "duplicate-contact"
    title = "A contact with this phone already exists"


class SendInProgress(Conflict):
    """Another attempt holds the message's send lease: it may be talking to Meta right now."""

    type_slug = "send-in-progress"
    title = "This message is being sent by another attempt"


class PayloadTooLarge(DomainError):
    status = 413
    type_slug = "payload-too-large"
    title = "Payload too large"


class SendRefused(DomainError):
    """A message that policy forbids sending (SPEC section 5 refusal types)."""

    status = 409
    type_slug = "send-refused"
    title = "Message refused"

    def __init__(self, type_slug: str, detail: str, *, status: int = 409, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.type_slug = type_slug
        self.status = status
        self.title = type_slug.replace("-", " ").capitalize()


class RateLimited(DomainError):
    """The caller's or the workspace's request budget is used up; `Retry-After` says for how long."""

    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_seconds: int, budget: str) -> None:
        # `budget`: "user" or "workspace", which of the two budgets refused the request.
        super().__init__(detail, retry_after=retry_after_seconds, budget=budget)
        self.retry_after_seconds = retry_after_seconds
        self.headers = {"Retry-After": str(retry_after_seconds)}


class InvalidSignature(DomainError):
    status = 401
    type_slug = "invalid-signature"
    title = "Missing or invalid X-Hub-Signature-256"


class WhatsAppCredentialsRejected(DomainError):
    """Graph refused the token, or the phone number cannot be read with it (SPEC section 3)."""

    status = 422
    type_slug = "whatsapp-credentials-rejected"
    title = "WhatsApp credentials rejected"


class PhoneNumberNotInAccount(DomainError):
    """The phone number is not listed under the WhatsApp Business Account (SPEC section 3)."""

    status = 422
    type_slug = "phone-number-not-in-account"
    title = "Phone number not in this WhatsApp Business Account"


class WhatsAppUnavailable(DomainError):
    """Graph could not answer (timeout, 5xx, throttling, a malformed answer): nothing was changed."""

    status = 503
    type_slug = "whatsapp-unavailable"
    title = "WhatsApp Business Platform unavailable"


class ChangesExpired(DomainError):
    """`since` is older than the change feed keeps (48 h): the client reloads instead of replaying."""

    status = 410
    type_slug = "changes-expired"
    title = "Changes expired"
