"""Contact consent decided outside the API (a STOP keyword, a preference webhook, a send refused
for opt-out): one conditional UpdateItem that keeps the newest decision.

Apart from the contacts repository (`relasify.data.contacts`, whose `set_consent` records an
agent's decision with its change-feed event) because these writes are ordered by when the decision
was taken, not by when it arrives: webhooks come late, twice and out of order.
"""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import UpdateError

from relasify.data import models as m
from relasify.data.tx import is_condition_failure


def set_consent_if_newer(ws: str, contact_id: str, status: str, source: str, at: datetime) -> bool:
    """Record a consent decision taken at `at` unless a decision at least as recent is stored.

    One conditional UpdateItem on the contact: a redelivered webhook (same `at`) and a stale one
    (a replayed STOP older than a later opt-in) both fail the condition and change nothing.
    """
    model = m.ContactModel
    event = m.ConsentEventMap(status=status, source=source, at=at, actor_id="whatsapp")
    item = model(m.ws_pk(ws), f"{model.SK_PREFIX}{contact_id}")
    try:
        item.update(
            actions=[
                model.consent.status.set(status),
                model.consent.source.set(source),
                model.consent.at.set(at),
                model.consent.history.set((model.consent.history | []).append([event])),
                model.touch(),
            ],
            condition=model.pk.exists() & (model.consent.at.does_not_exist() | (model.consent.at < at)),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True
