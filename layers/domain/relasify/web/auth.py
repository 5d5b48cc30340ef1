"""Authentication context and the one authorisation mechanism every API route goes through.

The HTTP API's JWT authorizer (or the local gateway) has already verified the token; here
we read its claims, look up the caller's membership of `{ws}` and apply the route's
minimum role: non-members get 404 (no existence leak), members below the role get 403.
Every workspace route is registered with `workspace_route`, which also records it in
`ROUTE_POLICIES`, the table the permission-matrix tests are generated from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from relasify.errors import Forbidden, NotFound, Unauthenticated
from relasify.services import rate_limits
from relasify.services.access import Actor, Membership, Role, get_membership


@dataclass(frozen=True)
class RoutePolicy:
    method: str
    path: str  # Powertools rule, e.g. /v1/workspaces/<ws>/contacts/<contact_id>
    min_role: Role


ROUTE_POLICIES: list[RoutePolicy] = []
_POLICY_BY_RULE: dict[tuple[str, str], RoutePolicy] = {}


def actor_from_claims(claims: dict[str, Any] | None) -> Actor:
    if not claims or not claims.get("sub"):
        raise Unauthenticated("A valid bearer token is required")
    return Actor(
        sub=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        name=str(claims.get("name") or "") or None,
        picture=str(claims.get("picture") or "") or None,
        signed_in_at=_epoch_claim(claims.get("auth_time")) or _epoch_claim(claims.get("iat")),
    )


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
    claims = app.current_event.request_context.authorizer.jwt_claim
    actor = actor_from_claims(claims)
    app.append_context(actor=actor)
    return actor


def current_membership(app: BaseRouter) -> Membership:
    """The caller's membership of the route's workspace, set by the role guard."""
    return app.context["membership"]


def charge_caller(app: Any) -> None:
    """Charge the caller's own request budget, once per request (RateLimited when it is used up)."""
    if app.context.get("_caller_charged"):
        return
    actor = current_actor(app)
    app.append_context(_caller_charged=True)  # a refusal is answered once, not charged again
    rate_limits.charge_user(actor.sub)


def has_caller(app: Any) -> bool:
    """Whether the request carries a verified token (every /v1 route; not health or webhooks)."""
    return bool(app.current_event.request_context.authorizer.jwt_claim)


def check_access(app: Any, min_role: Role) -> Membership:
    """The caller's membership of the route's workspace, or RateLimited / NotFound / Forbidden."""
    actor = current_actor(app)
    # The caller's budget first: an over-budget caller costs no membership read.
    charge_caller(app)
    ws = app.context.get("_route_args", {}).get("ws", "")
    membership = get_membership(ws, actor.sub)
    if membership is None:
        # First request of a new user may be to a workspace they were invited to.
        from relasify.services.workspaces import current_user, sign_in

        if ws in sign_in(actor):
            membership = get_membership(ws, actor.sub)
        if membership is None:
            # This container's sign-in cache may predate the caller deleting their account
            # elsewhere: a deleted account gets 401, not 404. A read on the refusal path only.
            current_user(actor)
    from relasify.services import audit

    if membership is None:
        # Recorded in the global security log: the caller named a workspace that is not theirs.
        audit.record(
            None, "authorization.denied", actor_id=actor.sub, target_ids=[ws[:64]], details={"reason": "not_a_member"}
        )
        raise NotFound("Workspace not found")
    if not app.context.get("_workspace_charged"):
        # Only once the caller is a member: naming a workspace must not spend its budget.
        app.append_context(_workspace_charged=True)
        rate_limits.charge_workspace(membership.ws)
    if membership.role < min_role:
        audit.record(
            ws, "authorization.denied", actor_id=actor.sub, details={"reason": "role_too_low", "needed": min_role.label}
        )
        raise Forbidden(f"This action needs the {min_role.label} role or higher")
    app.append_context(membership=membership)
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
    router: BaseRouter, method: str, path: str, min_role: Role, **route_kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a `/v1/workspaces/<ws>/...` route behind the role guard."""
    if "<ws>" not in path:
        raise ValueError(f"workspace routes must contain <ws>: {path}")
    policy = RoutePolicy(method.upper(), path, min_role)
    ROUTE_POLICIES.append(policy)
    _POLICY_BY_RULE[(policy.method, path)] = policy
    middlewares = [require_role(min_role), *route_kwargs.pop("middlewares", [])]
    return router.route(path, method.upper(), middlewares=middlewares, **route_kwargs)
