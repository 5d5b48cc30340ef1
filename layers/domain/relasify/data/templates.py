"""Message templates of a workspace: one item per (name, language) under the workspace partition.

Statuses are kept by the template webhooks (`apply_template_webhook`: an older webhook never
overwrites a newer one) and by the on-demand sync with Meta's list (`upsert_from_meta`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pynamodb.attributes import NumberAttribute
from pynamodb.exceptions import UpdateError

from relasify import clock
from relasify.data import models as m
from relasify.data.base import plain_value, query_all, utc
from relasify.data.records import Record
from relasify.data.tx import is_condition_failure


class Template(Record):
    ws: str
    name: str
    language: str
    category: str | None = None
    components: list[dict[str, Any]] = Field(default_factory=list)
    status: str = "PENDING"
    meta_template_id: str | None = None
    reason: str | None = None
    quality_score: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _sk(name: str, language: str) -> str:
    return f"{m.TemplateModel.SK_PREFIX}{name}#{language}"


def _template(item: m.TemplateModel) -> Template:
    return Template(
        ws=item.ws_id,
        name=item.name,
        language=item.language,
        category=item.category,
        components=plain_value(item.components) or [],
        status=item.status or "PENDING",
        meta_template_id=item.meta_template_id,
        reason=item.reason,
        quality_score=item.quality_score,
        created_at=utc(item.created_at),
        updated_at=utc(item.updated_at),
    )


def get_template(ws: str, name: str, language: str) -> Template | None:
    item = m.TemplateModel.get_live(m.ws_pk(ws), _sk(name, language))
    return _template(item) if item else None


def list_templates(ws: str) -> list[Template]:
    """Every template of the workspace (bounded by Meta: at most 6,000 per WABA)."""
    prefix = m.TemplateModel.SK_PREFIX
    return [_template(i) for i in query_all(m.TemplateModel, m.ws_pk(ws), m.TemplateModel.sk.startswith(prefix))]


def put_submitted(
    ws: str,
    *,
    name: str,
    language: str,
    category: str | None,
    components: list[dict[str, Any]],
    meta_template_id: str,
    status: str = "PENDING",
) -> Template:
    """Record a template just submitted to Meta (status PENDING until the webhook says otherwise)."""
    item = m.TemplateModel(
        m.ws_pk(ws),
        _sk(name, language),
        ws_id=ws,
        name=name,
        language=language,
        category=category,
        components=components,
        status=status,
        meta_template_id=meta_template_id,
    )
    item.save()
    return _template(item)


def upsert_from_meta(ws: str, entry: dict[str, Any]) -> Template | None:
    """Apply one template of Meta's list (sync). Keeps our created_at; None for malformed entries."""
    name, language = entry.get("name"), entry.get("language")
    if not isinstance(name, str) or not isinstance(language, str) or not name or not language:
        return None
    model = m.TemplateModel
    item = model(m.ws_pk(ws), _sk(name, language))
    reason = entry.get("rejected_reason")
    quality = entry.get("quality_score")
    quality_score = quality.get("score") if isinstance(quality, dict) else None
    actions: list[Any] = [
        model.ws_id.set(ws),
        model.name.set(name),
        model.language.set(language),
        model.status.set(str(entry.get("status") or "PENDING")),
        model.components.set(list(entry.get("components") or [])),
        model.created_at.set(model.created_at | clock.now()),
        model.touch(),
    ]
    if entry.get("category"):
        actions.append(model.category.set(str(entry["category"])))
    if entry.get("id"):
        actions.append(model.meta_template_id.set(str(entry["id"])))
    actions.append(model.reason.set(str(reason)) if reason and reason != "NONE" else model.reason.remove())
    if quality_score:
        actions.append(model.quality_score.set(str(quality_score)))
    item.update(actions=actions)
    return _template(item)


def delete_templates(ws: str, name: str) -> int:
    """Delete every language of a template (Meta deletes by name). Returns how many were removed."""
    removed = 0
    for template in list_templates(ws):
        if template.name == name:
            m.TemplateModel(m.ws_pk(ws), _sk(template.name, template.language)).delete()
            removed += 1
    return removed


# --- statuses changed by webhooks ------------------------------------------------------------------


class _TemplateWebhookModel(m.TemplateModel):
    """The template item plus the event time of the last webhook applied per attribute group, so an
    older webhook (Meta retries for days) never overwrites a newer one. Same table, same item."""

    status_webhook_at = NumberAttribute(null=True)
    category_webhook_at = NumberAttribute(null=True)
    quality_webhook_at = NumberAttribute(null=True)


def apply_template_webhook(
    ws: str,
    name: str,
    language: str,
    *,
    at: datetime,
    status: str | None = None,
    reason: str | None = None,
    category: str | None = None,
    meta_template_id: str | None = None,
    quality_score: str | None = None,
) -> bool:
    """Upsert what a template webhook reports (a template created in Meta's UI appears here too).
    One conditional UpdateItem; False when a newer webhook already set this attribute group."""
    model = _TemplateWebhookModel
    at_epoch = int(at.timestamp())
    actions: list[Any] = [
        model.ws_id.set(ws),
        model.name.set(name),
        model.language.set(language),
        model.components.set(model.components | []),
        model.created_at.set(model.created_at | clock.now()),
        model.touch(),
    ]
    guards: list[Any] = []

    def guarded(attribute: NumberAttribute) -> None:
        actions.append(attribute.set(at_epoch))
        guards.append(attribute.does_not_exist() | (attribute <= at_epoch))

    if status is not None:
        actions += [model.status.set(status), model.reason.set(reason) if reason else model.reason.remove()]
        guarded(model.status_webhook_at)
    if category is not None:
        actions.append(model.category.set(category))
        guarded(model.category_webhook_at)
    if quality_score is not None:
        actions.append(model.quality_score.set(quality_score))
        guarded(model.quality_webhook_at)
    if meta_template_id is not None:
        actions.append(model.meta_template_id.set(meta_template_id))
    if not guards:
        return False
    condition = guards[0]
    for guard in guards[1:]:
        condition &= guard
    item = model(m.ws_pk(ws), _sk(name, language))
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True
