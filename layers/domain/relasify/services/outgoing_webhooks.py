"""Outgoing webhooks (SPEC section 5c): admins subscribe an HTTPS endpoint to event types, list,
remove and re-enable subscriptions, and read the delivery log. Delivery itself is
`relasify.services.webhook_delivery`."""

from __future__ import annotations

from relasify.data import outgoing_webhooks as store
from relasify.data.memberships import Membership
from relasify.data.records import Page
from relasify.data.webhook_http import RefusedUrl, check_url_shape, checked_address
from relasify.errors import Conflict, NotFound, ValidationFailed
from relasify.observability import logger
from relasify.schemas.outgoing_webhooks import WebhookCreate, WebhookCreated, WebhookOut
from relasify.services import audit
from relasify.services.webhook_signing import new_secret

MAX_SUBSCRIPTIONS = 10  # per workspace: bounds each event's fan-out


class WebhookLimitReached(Conflict):
    type_slug = "webhook-limit-reached"
    title = "Too many webhooks"


def _invalid_url(message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"loc": ["body", "url"], "msg": message, "type": "value_error"}])


def _check_url(url: str) -> None:
    """Refuse what can never be delivered: scheme, credentials, non-public literal addresses, and a
    name resolving to a non-public address now. A name that does not resolve yet is accepted; every
    delivery resolves and checks again (DNS rebinding)."""
    try:
        check_url_shape(url)
    except RefusedUrl as exc:
        raise _invalid_url(str(exc)) from exc
    try:
        checked_address(url)
    except RefusedUrl as exc:
        if "does not resolve" not in str(exc):
            raise _invalid_url(str(exc)) from exc


def out(subscription: store.Subscription) -> WebhookOut:
    return WebhookOut.model_validate(subscription, from_attributes=True)


def create(caller: Membership, body: WebhookCreate) -> WebhookCreated:
    _check_url(body.url)
    if len(store.list_for_workspace(caller.ws)) >= MAX_SUBSCRIPTIONS:
        raise WebhookLimitReached(f"A workspace has at most {MAX_SUBSCRIPTIONS} webhooks; delete one first.")
    secret = new_secret()
    subscription = store.create(caller.ws, url=body.url, events=list(body.events), secret=secret, actor=caller.sub)
    audit.record(caller.ws, "webhook.created", actor_id=caller.sub, target_ids=[subscription.id])
    logger.info("outgoing webhook created", extra={"ws": caller.ws, "webhook_id": subscription.id})
    return WebhookCreated(**out(subscription).model_dump(), secret=secret)


def list_all(ws: str) -> list[WebhookOut]:
    return [out(s) for s in sorted(store.list_for_workspace(ws), key=lambda s: s.id)]


def get(ws: str, hook_id: str) -> store.Subscription:
    subscription = store.get(ws, hook_id)
    if subscription is None:
        raise NotFound("Webhook not found.")
    return subscription


def delete(caller: Membership, hook_id: str) -> None:
    if not store.delete(caller.ws, hook_id):
        raise NotFound("Webhook not found.")
    audit.record(caller.ws, "webhook.deleted", actor_id=caller.sub, target_ids=[hook_id])


def set_enabled(caller: Membership, hook_id: str, enabled: bool) -> WebhookOut:
    """Re-enable a disabled endpoint (events dropped while it was disabled are not replayed), or
    pause one."""
    subscription = store.set_enabled(caller.ws, hook_id, enabled, reason=None if enabled else "disabled by an admin")
    if subscription is None:
        raise NotFound("Webhook not found.")
    audit.record(
        caller.ws, "webhook.enabled" if enabled else "webhook.disabled", actor_id=caller.sub, target_ids=[hook_id]
    )
    return out(subscription)


def deliveries(ws: str, hook_id: str, *, limit: int, cursor: str | None) -> Page[store.DeliveryAttempt]:
    get(ws, hook_id)
    return store.list_attempts(ws, hook_id, limit=limit, cursor=cursor)
