"""Template routes: list, submit, delete, sync with Meta (admins manage templates; agents read)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from relasify.data.memberships import Role
from relasify.schemas.templates import TemplateCreate, TemplateDeleted, TemplateList, TemplateOut, TemplateSyncOut
from relasify.services import templates
from relasify.web.auth import current_membership, workspace_route
from relasify.web.openapi_responses import GRAPH_STATUSES

router = APIGatewayHttpRouter()

TemplateName = Annotated[str, Path(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")]


@workspace_route(router, "GET", "/v1/workspaces/<ws>/templates", Role.AGENT, tags=["templates"])
def list_templates(ws: str) -> TemplateList:
    return TemplateList(
        items=[TemplateOut.model_validate(t, from_attributes=True) for t in templates.list_templates(ws)]
    )


@workspace_route(
    router,
    "POST",
    "/v1/workspaces/<ws>/templates",
    Role.ADMIN,
    success=201,
    statuses=GRAPH_STATUSES,
    tags=["templates"],
)
def create_template(ws: str, body: TemplateCreate) -> Response[TemplateOut]:
    template = templates.create_template(
        ws,
        name=body.name,
        language=body.language,
        category=body.category,
        components=body.components,
        actor_id=current_membership(router).sub,
    )
    out = TemplateOut.model_validate(template, from_attributes=True)
    return Response(status_code=201, content_type="application/json", body=out.model_dump(mode="json"))


@workspace_route(
    router, "POST", "/v1/workspaces/<ws>/templates/sync", Role.ADMIN, statuses=GRAPH_STATUSES, tags=["templates"]
)
def sync_templates(ws: str) -> TemplateSyncOut:
    items = [TemplateOut.model_validate(t, from_attributes=True) for t in templates.sync_templates(ws)]
    return TemplateSyncOut(synced=len(items), items=items)


@workspace_route(
    router, "DELETE", "/v1/workspaces/<ws>/templates/<name>", Role.ADMIN, statuses=GRAPH_STATUSES, tags=["templates"]
)
def delete_template(ws: str, name: TemplateName) -> TemplateDeleted:
    removed = templates.delete_template(ws, name, actor_id=current_membership(router).sub)
    return TemplateDeleted(name=name, deleted=removed)
