"""Who is calling: the caller's identity and the membership lookup of the role guard (`Role` and
`Membership` live in `relasify.data.memberships`, so the data layer can build them)."""

from __future__ import annotations

from dataclasses import dataclass

from relasify.data.memberships import Membership


@dataclass(frozen=True)
class ApiKeyGrant:
    """The caller is an API key (SPEC 5c) of this one workspace, as the authorizer found it."""

    ws: str
    key_id: str


def api_key_actor_id(key_id: str) -> str:
    """The stable id a key acts under (audit entries, request budgets, `sent_by`): never a user's sub,
    which Cognito makes a UUID."""
    return f"key:{key_id}"


@dataclass(frozen=True)
class Actor:
    sub: str
    # The token's e-mail ONLY when the identity provider verified it (`email_verified` true), else "".
    # It is what invitations and member records are matched on, so an address nobody proved to own
    # must never get here: `relasify.web.auth.actor_from_claims` drops it.
    email: str
    name: str | None = None
    picture: str | None = None
    # When the person signed in to get this token (epoch seconds; `auth_time`, else `iat`): a token
    # from a sign-in at or before their account's deletion is refused. None: the token does not say.
    signed_in_at: int | None = None
    # Set when the caller is an API key: then `sub` is `api_key_actor_id(...)` and `email` is "".
    api_key: ApiKeyGrant | None = None


def get_membership(ws: str, sub: str) -> Membership | None:
    """The caller's membership of an active workspace, read on every request and never cached.

    The workspace and the membership come back from one consistent BatchGetItem, so a member
    removed or demoted, or a workspace closed, through ANY container is refused by the very next
    request everywhere (privacy policy: revocation takes effect at once), for the one DynamoDB
    request the guard needed anyway to see the workspace's state.
    """
    from relasify.data import identity  # lazy: keeps pynamodb off paths that never authorise

    return identity.get_active_membership(ws, sub)
