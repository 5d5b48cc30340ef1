"""The message templates of the WhatsApp sandbox's accounts (relasify_local.sandbox), as Graph's
`/{waba_id}/message_templates` keeps them: submitted PENDING, approved by the webhook that follows,
listed in pages with Graph's cursors, deleted by name (and id)."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from relasify_local.sandbox_graph import Answer, decode_cursor, encode_cursor, graph_error, int_param, json_object
from relasify_local.sandbox_webhooks import template_approved


class TemplateStore:
    """Every account's templates by id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._templates: dict[str, dict[str, Any]] = {}

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(template) for template in self._templates.values()]

    def create(self, waba_id: str, body: bytes) -> tuple[Answer, str | None]:
        """Graph's answer to a submission, and the new template's id (None when refused)."""
        definition = json_object(body)
        if definition is None:
            return graph_error(100, details="Request body is not a JSON object"), None
        missing = [key for key in ("name", "language", "category", "components") if key not in definition]
        if missing:
            return graph_error(100, details=f"Missing parameters: {', '.join(missing)}"), None
        name, language = str(definition["name"]), str(definition["language"])
        category = str(definition["category"]).upper()
        with self._lock:
            if any(t["name"] == name and t["language"] == language for t in self._templates.values()):
                return graph_error(100, message="Message template already exists", subcode=2388024), None
            template_id = str(secrets.randbelow(9 * 10**15) + 10**15)
            self._templates[template_id] = {
                **definition,
                "id": template_id,
                "name": name,
                "language": language,
                "category": category,
                "status": "PENDING",
                "waba_id": waba_id,
            }
        return (200, {"id": template_id, "status": "PENDING", "category": category}, {}), template_id

    def list(self, waba_id: str, url: str, query: dict[str, list[str]]) -> Answer:
        """A page of the account's templates (`name` and `status` filters); `url`: this route's, for `next`."""
        limit = int_param(query, "limit", 25, maximum=1000)
        start = decode_cursor(query.get("after", [""])[0])
        name_filter = query.get("name", [None])[0]
        status_filter = query.get("status", [None])[0]
        with self._lock:
            matching = [
                {key: value for key, value in template.items() if key != "waba_id"}
                for template in self._templates.values()
                if template["waba_id"] == waba_id
                and (name_filter is None or template["name"] == name_filter)
                and (status_filter is None or template["status"] == status_filter)
            ]
        page = matching[start : start + limit]
        result: dict[str, Any] = {"data": page}
        if page:
            result["paging"] = {"cursors": {"before": encode_cursor(start), "after": encode_cursor(start + len(page))}}
            if start + len(page) < len(matching):
                result["paging"]["next"] = f"{url}?limit={limit}&after={encode_cursor(start + len(page))}"
        return 200, result, {}

    def delete(self, waba_id: str, query: dict[str, list[str]]) -> Answer:
        name = query.get("name", [""])[0]
        template_id = query.get("hsm_id", [None])[0]
        if not name:
            return graph_error(100, details="The parameter name is required.")
        with self._lock:
            doomed = [
                key
                for key, template in self._templates.items()
                if template["waba_id"] == waba_id
                and template["name"] == name
                and (template_id is None or key == template_id)
            ]
            for key in doomed:
                del self._templates[key]
        if not doomed:
            return graph_error(100, message="Message template not found", subcode=2593002)
        return 200, {"success": True}, {}

    def category_of(self, payload: dict[str, Any]) -> str:
        """The category a template send is billed in (a template not submitted here: utility)."""
        template = payload.get("template") or {}
        name = template.get("name") if isinstance(template, dict) else None
        with self._lock:
            for known in self._templates.values():
                if known["name"] == name:
                    return str(known["category"]).lower()
        return "utility"

    def approve(self, template_id: str) -> None:
        with self._lock:
            if template_id in self._templates:
                self._templates[template_id]["status"] = "APPROVED"

    def approval_webhook(self, waba_id: str, template_id: str) -> dict[str, Any]:
        with self._lock:
            template = dict(self._templates.get(template_id) or {})
        return template_approved(waba_id, template_id, template)
