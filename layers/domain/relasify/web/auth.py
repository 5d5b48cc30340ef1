"""Authentication context and the one authorisation mechanism every API route goes through.

The HTTP API's authorizer (relasify.web.authorizer; the local gateway does the same) has already
verified the token; here we read its context (a user's claims, or an API key's id and workspace),
look up the caller's membership of `{ws}` and apply the route's minimum role: non-members get 404
(no existence leak), members below the role get 403. An API key stands in its one workspace with
its own role (never owner); anywhere else it is refused: 404 on another workspace's routes, 403
(`api-key-not-allowed`) on routes outside any workspace.
Every workspace route is registered with `workspace_route`, which also records it in
`ROUTE_POLICIES` (used by the tenant-isolation tests to reach every route). The permission matrix
test does not read it: its expectations are typed in from SPEC section 3's role table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from relasify.data.memberships import Membership, Role
from relasify.errors import Forbidden, NotFound, Unauthenticated
from relasify.services import rate_limits
from relasify.services.access import Actor, ApiKeyGrant, api_key_actor_id, get_membership
from relasify.web.openapi_responses import reads_json_body, route_responses


@dataclass(frozen=True)
class RoutePolicy:
    method: str
    path: str  # Powertools rule, e.g. /v1/workspaces/<ws>/contacts/<contact_id>
    min_role: Role


class ApiKeyNotAllowed(Forbidden):
    type_slug = "api-key-not-allowed"
    title = "API keys cannot call this route"


class ApiKeyRevoked(Unauthenticated):
    type_slug = "api-key-revoked"
    title = "API key revoked"


ROUTE_POLICIES: list[RoutePolicy] = []
_POLICY_BY_RULE: dict[tuple[str, str], RoutePolicy] = {}


def actor_from_claims(claims: dict[str, Any] | None) -> Actor:
    if not claims or not claims.get("sub"):
        raise Unauthenticated("A valid bearer token is required")
    return Actor(
        sub=str(claims["sub"]),
        email=verified_email(claims),
        name=str(claims.get("name") or "") or None,
        picture=str(claims.get("picture") or "") or None,
        signed_in_at=_epoch_claim(claims.get("auth_time")) or _epoch_claim(claims.get("iat")),
    )


def verified_email(claims: dict[str, Any]) -> str:
    """The token's `email`, lower-cased, when its `email_verified` claim is true; "" otherwise.

    API Gateway hands every claim over as a string, so the JSON boolean `true` arrives as "true"
    (a direct invocation may still pass the boolean). Anything else, "false", a missing claim, "1",
    "yes", counts as NOT verified: Cognito and Google only ever say true or false, and an address
    nobody proved to own must never be matched to a user or an invitation."""
    verified = claims.get("email_verified")
    if verified is not True and not (isinstance(verified, str) and verified.strip().lower() == "true"):
        return ""
    return str(claims.get("email") or "").strip().lower()


def _epoch_claim(value: Any) -> int | None:
    """A NumericDate claim; API Gateway hands claims over as strings."""
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def current_actor(app: BaseRouter) -> Actor:
    cached = app.context.get("actor")
    if cached is not None:
        return cached
    actor = actor_from_context(app.current_event.request_context.authorizer.get_lambda)
    app.append_context(actor=actor)
    return actor


def actor_from_context(context: dict[str, Any] | None) -> Actor:
    """The caller the authorizer let in: an API key (`caller` "api_key") or a user (the token's claims)."""
    from relasify.web.authorizer import CALLER_API_KEY

    if context and context.get("caller") == CALLER_API_KEY:
        ws, key_id = str(context.get("ws") or ""), str(context.get("key_id") or "")
        if not ws or not key_id:
            raise Unauthenticated("A valid bearer token is required")
        return Actor(sub=api_key_actor_id(key_id), email="", api_key=ApiKeyGrant(ws=ws, key_id=key_id))
    # API Gateway reuses the authorizer's yes for its cache TTL (300 s): a token that expired since is
    # refused here, so a cached answer never stretches a token's life.
    expires = _epoch_claim((context or {}).get("exp"))
    # Wall-clock time, as the authorizer's own `exp` check (not `relasify.clock`, which tests move).
    if expires is not None and expires <= time.time():
        raise Unauthenticated("The bearer token has expired")
    return actor_from_claims(context)


def current_membership(app: BaseRouter) -> Membership:
    """The caller's membership of the route's workspace, set by the role guard."""
    return app.context["membership"]


def charge_caller(app: Any) -> None:
    """Charge the caller's own request budget, once per request (RateLimited when it is used up)."""
    if app.context.get("_caller_charged"):
        return
    actor = current_actor(app)
    app.append_context(_caller_charged=True)  # a refusal is answered once, not charged again
    if actor.api_key is not None:
        rate_limits.charge_api_key(actor.api_key.key_id)
    else:
        rate_limits.charge_user(actor.sub)


def charge_account_caller(app: Any) -> None:
    """Routes outside a workspace: API keys are refused (403), a user's budget is charged."""
    if current_actor(app).api_key is not None:
        raise ApiKeyNotAllowed("API keys act inside their workspace only (/v1/workspaces/{ws}/...)")
    charge_caller(app)


def has_caller(app: Any) -> bool:
    """Whether the request carries a verified token (every /v1 route; not health or webhooks)."""
    return bool(app.current_event.request_context.authorizer.get_lambda)


def check_access(app: Any, min_role: Role) -> Membership:
    """The caller's membership of the route's workspace, or RateLimited / NotFound / Forbidden."""
    actor = current_actor(app)
    # The caller's budget first: an over-budget caller costs no membership read.
    charge_caller(app)
    ws = app.context.get("_route_args", {}).get("ws", "")
    grant = actor.api_key
    membership = _api_key_membership(grant, ws) if grant is not None else get_membership(ws, actor.sub)
    if membership is None and actor.api_key is None:
        # The caller may have been invited since they signed in (on this warm container too):
        # accept pending invitations to their verified address, then look again.
        from relasify.services.workspaces import current_user, sign_in

        if ws in sign_in(actor, recheck_invitations=True):
            membership = get_membership(ws, actor.sub)
        if membership is None:
            # This container's sign-in cache may predate the caller deleting their account
            # elsewhere: a deleted account gets 401, not 404. A read on the refusal path only.
            current_user(actor)
    from relasify.services import audit

    if membership is None:
        # Counted in the global security log: the caller named a workspace that is not theirs.
        audit.count_refusal(None, actor_id=actor.sub, reason="not_a_member", target_ids=[ws[:64]])
        raise NotFound("Workspace not found")
    if not app.context.get("_workspace_charged"):
        # Only once the caller is a member: naming a workspace must not spend its budget.
        app.append_context(_workspace_charged=True)
        rate_limits.charge_workspace(membership.ws)
    if membership.role < min_role:
        audit.count_refusal(ws, actor_id=actor.sub, reason="role_too_low", needed=min_role.label)
        raise Forbidden(f"This action needs the {min_role.label} role or higher")
    app.append_context(membership=membership)
    return membership


def _api_key_membership(grant: ApiKeyGrant, ws: str) -> Membership | None:
    """A key's standing in `ws`: None (404) on another workspace; ApiKeyRevoked (401) when the key is
    gone from its own (revoked, or the workspace closed), even if a cloud authorizer cached its yes."""
    from relasify.services import api_keys

    if ws != grant.ws:
        return None
    membership = api_keys.membership_of(grant, ws)
    if membership is None:
        raise ApiKeyRevoked("This API key has been revoked (or its workspace closed)")
    return membership


def policy_of_current_route(app: Any) -> RoutePolicy | None:
    route = app.context.get("_route")
    if route is None:
        return None
    return _POLICY_BY_RULE.get((str(route.method).upper(), route.path))


def require_role(min_role: Role) -> Callable[[Any, Callable[[Any], Response]], Response]:
    def role_guard(app: Any, next_middleware: Callable[[Any], Response]) -> Response:
        check_access(app, min_role)
        return next_middleware(app)

    role_guard.__name__ = f"require_{min_role.label}"
    return role_guard


def workspace_route(
    router: BaseRouter,
    method: str,
    path: str,
    min_role: Role,
    *,
    success: int = 200,
    statuses: Iterable[int] = (),
    body: bool | None = None,
    **route_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a `/v1/workspaces/<ws>/...` route behind the role guard.

    Its OpenAPI responses are derived here (openapi_responses.py): 401, 404, 422, 429 for every workspace
    route, 403 above the lowest role, 400/413/415 when it reads a JSON body (a handler parameter typed as a
    pydantic model, whatever its name, or `body=True`). `success` is the status it answers on success (201
    creates, 202 accepted jobs, 204 no body); `statuses` adds what only its own logic answers (409, 503, ...)."""
    if "<ws>" not in path:
        raise ValueError(f"workspace routes must contain <ws>: {path}")
    policy = RoutePolicy(method.upper(), path, min_role)
    ROUTE_POLICIES.append(policy)
    _POLICY_BY_RULE[(policy.method, path)] = policy
    middlewares = [require_role(min_role), *route_kwargs.pop("middlewares", [])]
    return _described_route(
        router,
        method,
        path,
        success=success,
        workspace=True,
        role_checked=min_role > min(Role),
        statuses=statuses,
        body=body,
        middlewares=middlewares,
        **route_kwargs,
    )


def api_route(
    router: BaseRouter,
    method: str,
    path: str,
    *,
    public: bool = False,
    success: int = 200,
    statuses: Iterable[int] = (),
    body: bool | None = None,
    **route_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a route outside any workspace (/v1/me, creating and listing workspaces, /health) with
    its OpenAPI responses: 401 unless `public` (no authorizer), plus as for `workspace_route`."""
    return _described_route(
        router, method, path, success=success, authorised=not public, statuses=statuses, body=body, **route_kwargs
    )


def _described_route(
    router: BaseRouter,
    method: str,
    path: str,
    *,
    success: int,
    statuses: Iterable[int],
    body: bool | None,
    authorised: bool = True,
    workspace: bool = False,
    role_checked: bool = False,
    **route_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        reads_body = body if body is not None else reads_json_body(func)
        responses = route_responses(
            success=success,
            authorised=authorised,
            workspace=workspace,
            role_checked=role_checked,
            body=reads_body,
            statuses=statuses,
        )
        # `status_code`: a handler returning a model (not a Response) answers the declared success status.
        route = router.route(path, method.upper(), responses=responses, status_code=success, **route_kwargs)
        return route(func)

    return register
