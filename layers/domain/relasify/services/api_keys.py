"""Workspace API keys (SPEC section 5c): created and revoked by admins, used as bearer tokens.

A key is `rk_` plus 256 random bits (base64url). Only its SHA-256 is stored: a salted, slow hash
buys nothing for a uniformly random 256-bit secret (nobody can guess one to test against the
hash), and the authorizer must find the key by a deterministic digest in one GetItem. The key text
is returned once, by `create`, and never logged (`relasify.observability` also masks `rk_...`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from relasify import clock
from relasify.data import api_keys as store
from relasify.data.api_keys import ApiKey, KeyRef
from relasify.data.ids import new_id
from relasify.data.memberships import Membership, Role
from relasify.errors import Conflict, NotFound
from relasify.schemas.api_keys import ApiKeyCreate
from relasify.services import audit
from relasify.services.access import ApiKeyGrant, api_key_actor_id

KEY_PREFIX = "rk_"
SECRET_BYTES = 32  # 256 bits
# base64url of 32 bytes without padding is 43 characters.
_KEY_PATTERN = re.compile(r"^rk_[A-Za-z0-9_-]{43}$")
# `last_used_at` is written at most once a minute per key, not on every request: it answers "is this
# key still in use?", for which a minute is exact enough, and a busy integration (tens of requests
# a second) would otherwise turn every read into a write too (cost, and throttling on one item).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TooManyApiKeys(Conflict):
    type_slug = "too-many-api-keys"
    title = "Too many API keys"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def looks_like_key(token: str | None) -> bool:
    """Whether a bearer token is shaped like an API key (and so is not a JWT)."""
    return bool(token) and token.startswith(KEY_PREFIX)  # type: ignore[union-attr]


def is_well_formed(token: str) -> bool:
    return bool(_KEY_PATTERN.fullmatch(token))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(caller: Membership, body: ApiKeyCreate) -> tuple[ApiKey, str]:
    """A new key of the caller's workspace and its text (shown once)."""
    if store.count_keys(caller.ws) >= store.MAX_KEYS_PER_WORKSPACE:
        raise TooManyApiKeys(
            f"A workspace has at most {store.MAX_KEYS_PER_WORKSPACE} API keys; revoke one you no longer use."
        )
    key = new_key()
    record = store.create(
        caller.ws, key_id=new_id(), key_hash=hash_key(key), name=body.name, role=body.role, created_by=caller.sub
    )
    audit.record(caller.ws, "api_key.created", actor_id=caller.sub, target_ids=[record.id], details={"role": body.role})
    return record, key


def list_keys(ws: str) -> list[ApiKey]:
    return store.list_keys(ws)


def revoke(caller: Membership, key_id: str) -> None:
    if not store.revoke(caller.ws, key_id):
        raise NotFound("API key not found.")
    audit.record(caller.ws, "api_key.revoked", actor_id=caller.sub, target_ids=[key_id])


def find(token: str) -> KeyRef | None:
    """The authorizer's check: the key this token is, or None (malformed, unknown or revoked)."""
    if not is_well_formed(token):
        return None  # no read for what cannot be a key
    return store.find_by_hash(hash_key(token))


def membership_of(grant: ApiKeyGrant, ws: str) -> Membership | None:
    """The key's standing in `ws` for the role guard: its role there, or None when `ws` is not its
    workspace, the workspace is closed, or the key was revoked (even while a cloud authorizer still
    caches its earlier yes)."""
    if ws != grant.ws:
        return None
    key = store.get_active_key(ws, grant.key_id)
    if key is None:
        return None
    last_used = key.last_used_at
    if last_used is None or clock.now() - last_used >= LAST_USED_RESOLUTION:
        store.touch_last_used(ws, key.id, older_than=LAST_USED_RESOLUTION)
    return Membership(ws=ws, sub=api_key_actor_id(key.id), role=Role.parse(key.role))
