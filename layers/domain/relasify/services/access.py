"""Who may do what: roles, the caller's identity and the cached membership lookup."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from relasify.settings import get_settings


class Role(enum.IntEnum):
    """Ordered so that a higher role includes every permission of a lower one."""

    AGENT = 1
    ADMIN = 2
    OWNER = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        return cls[value.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Actor:
    sub: str
    email: str
    name: str | None = None
    picture: str | None = None


@dataclass(frozen=True)
class Membership:
    ws: str
    sub: str
    role: Role


# Per warm container: (ws, sub) -> (membership or None, fetched at monotonic seconds).
# A short TTL (settings.membership_cache_seconds, default 30 s) bounds how long a removed
# member keeps access on another container; changes made on this container invalidate at once.
_cache: dict[tuple[str, str], tuple[Membership | None, float]] = {}


def get_membership(ws: str, sub: str) -> Membership | None:
    key = (ws, sub)
    ttl = get_settings().membership_cache_seconds
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[1] < ttl:
        membership = hit[0]
    else:
        membership = _load_membership(ws, sub)
        _cache[key] = (membership, time.monotonic())
    # The workspace's state is read on every request, never cached: a workspace closed through
    # another container must be unreadable at once (privacy policy), not after the cache expires.
    if membership is None or not _workspace_active(ws):
        return None
    return membership


def invalidate_membership(ws: str, sub: str | None = None) -> None:
    for key in [k for k in _cache if k[0] == ws and (sub is None or k[1] == sub)]:
        _cache.pop(key, None)


def _load_membership(ws: str, sub: str) -> Membership | None:
    from relasify.data import identity  # lazy: keeps pynamodb off paths that never authorise

    return identity.get_membership(ws, sub)


def _workspace_active(ws: str) -> bool:
    """A closed (or expired) workspace reads as "not found": its data stays only for the
    retention window, unreadable through the API (privacy policy section 7)."""
    from relasify.data import identity

    workspace = identity.identity_repository().get_workspace(ws)
    return workspace is not None and workspace.status == "active"
