"""Request budgets of the /v1 API: per user (across every workspace) and per workspace.

The role guard charges the caller's budget before it reads their membership (so an over-budget
caller costs no membership read, and probing workspace ids is limited too), and the workspace's
budget only once the caller is known to be a member (so nobody can drain a workspace they do not
belong to by naming it). Routes outside a workspace (`/v1/me`, `POST /v1/workspaces`, ...) charge
the caller's budget only. The webhook route is not limited here: it carries no user, Meta's
signature check guards it, and API Gateway's route throttle bounds it (template.yaml).

A refusal is a 429 `rate-limited` problem with `Retry-After`; nothing is written to the security
log per refusal (a flood would turn into a flood of log writes).
"""

from __future__ import annotations

from relasify import clock
from relasify.errors import RateLimited
from relasify.settings import get_settings


def charge_user(sub: str) -> None:
    """One request of the user's budget, or RateLimited."""
    settings = get_settings()
    _charge("user", sub, settings.api_user_rate_per_second, settings.api_user_burst)


def charge_api_key(key_id: str) -> None:
    """One request of an API key's own budget (the per-user figures; keys also spend their
    workspace's budget, like its members), or RateLimited."""
    from relasify.services.access import api_key_actor_id

    settings = get_settings()
    _charge("api key", api_key_actor_id(key_id), settings.api_user_rate_per_second, settings.api_user_burst)


def charge_workspace(ws: str) -> None:
    """One request of the workspace's budget (shared by its members), or RateLimited."""
    settings = get_settings()
    _charge("workspace", ws, settings.api_workspace_rate_per_second, settings.api_workspace_burst)


def _charge(budget_name: str, owner: str, rate_per_second: float, burst: int) -> None:
    from relasify.data import request_budget  # lazy: keeps pynamodb off paths that never authorise

    # A key's budget is keyed by its actor id (`key:<id>`), which no user's sub can be.
    pk = (
        request_budget.workspace_budget_pk(owner)
        if budget_name == "workspace"
        else request_budget.user_budget_pk(owner)
    )
    budget = request_budget.Budget(rate_per_second=rate_per_second, burst=burst)
    now_us = round(clock.now().timestamp() * request_budget.MICROS)
    decision = request_budget.take(pk, budget, now_us)
    if not decision.allowed:
        raise RateLimited(
            f"The {budget_name}'s request budget ({rate_per_second:g} requests per second, bursts of {burst}) "
            f"is used up; retry after {decision.retry_after_seconds} s",
            retry_after_seconds=decision.retry_after_seconds,
            budget=budget_name,
        )
