"""Templates: submit to Meta, list, delete, and sync from Meta's list (SPEC section 5).

Statuses after submission come from Meta's template webhooks (services.webhook); `sync` reconciles
on demand (e.g. templates created in Meta's UI, or webhooks missed while disconnected).
"""

from __future__ import annotations

from typing import Any

from relasify.data import templates as template_store
from relasify.data.kms_tokens import decrypt_token
from relasify.data.records import WhatsAppConnection
from relasify.data.templates import Template
from relasify.data.whatsapp_connections import whatsapp_connection_repository
from relasify.errors import NotFound
from relasify.services import audit
from relasify.services.delivery import connection_for_sending
from relasify.whatsapp.errors import GraphError

SYNC_PAGE_SIZE = 100
MAX_SYNC_PAGES = 100  # 10,000 templates: above Meta's 6,000-per-WABA ceiling


def _graph() -> Any:
    from relasify.whatsapp.graph import get_graph_client

    return get_graph_client()


def _token(ws: str, connection: WhatsAppConnection) -> str:
    return decrypt_token(ws, connection.encrypted_access_token)


def _graph_failed(ws: str, error: GraphError) -> Exception:
    if error.needs_new_token:
        whatsapp_connection_repository().update_whatsapp_health(ws, token_status="expired")  # noqa: S106
    return error.to_domain_error()


def list_templates(ws: str) -> list[Template]:
    return sorted(template_store.list_templates(ws), key=lambda t: (t.name, t.language))


def create_template(
    ws: str,
    *,
    name: str,
    language: str,
    category: str,
    components: list[dict[str, Any]],
    actor_id: str | None = None,
    graph: Any | None = None,
) -> Template:
    connection = connection_for_sending(ws)
    definition = {"name": name, "language": language, "category": category, "components": components}
    try:
        submitted = (graph or _graph()).create_template(connection.waba_id, _token(ws, connection), definition)
    except GraphError as error:
        raise _graph_failed(ws, error) from None
    template = template_store.put_submitted(
        ws,
        name=name,
        language=language,
        category=submitted.category or category,
        components=components,
        meta_template_id=submitted.id,
        status=submitted.status or "PENDING",
    )
    audit.record(ws, "template.submitted", actor_id=actor_id, target_ids=[submitted.id], details={"name": name})
    return template


def delete_template(ws: str, name: str, *, actor_id: str | None = None, graph: Any | None = None) -> int:
    """Delete a template (every language, as Meta does) at Meta and here."""
    known = [t for t in template_store.list_templates(ws) if t.name == name]
    if not known:
        raise NotFound("Template not found")
    connection = connection_for_sending(ws)
    try:
        (graph or _graph()).delete_template(connection.waba_id, _token(ws, connection), name)
    except GraphError as error:
        if error.code != 100:  # 100: Meta no longer has it; forget it here too
            raise _graph_failed(ws, error) from None
    removed = template_store.delete_templates(ws, name)
    audit.record(ws, "template.deleted", actor_id=actor_id, details={"name": name, "languages": removed})
    return removed


def sync_templates(ws: str, *, graph: Any | None = None) -> list[Template]:
    """Pull Meta's list (all pages) and upsert each template; returns the workspace's templates."""
    connection = connection_for_sending(ws)
    client = graph or _graph()
    token = _token(ws, connection)
    after: str | None = None
    for _ in range(MAX_SYNC_PAGES):
        try:
            page = client.list_templates(connection.waba_id, token, after=after, limit=SYNC_PAGE_SIZE)
        except GraphError as error:
            raise _graph_failed(ws, error) from None
        for entry in page.items:
            if isinstance(entry, dict):
                template_store.upsert_from_meta(ws, entry)
        after = page.next_after
        if not after:
            break
    return list_templates(ws)
