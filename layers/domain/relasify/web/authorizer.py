"""The HTTP API's Lambda REQUEST authorizer (simple responses): who is calling `/v1`.

A bearer token starting `rk_` is an API key (SPEC 5c), looked up by its SHA-256 in one GetItem; any
other is a Cognito JWT, verified against the user pool's JWKS (signature, `iss`, `aud`, `exp`,
`token_use` id) as the JWT authorizer did before. The answer's `context` reaches the functions as
`requestContext.authorizer.lambda`; `relasify.web.auth.current_actor` reads it:
- a user: `{"caller": "user", <every claim as a string>}` (as API Gateway's JWT authorizer passed claims);
- a key: `{"caller": "api_key", "key_id": ..., "ws": ...}` (the role is read fresh by the role guard).

API Gateway caches an answer per Authorization value for the authorizer's TTL (template.yaml): a
revoked key may pass THIS check for up to that long, but the role guard reads the key with the
workspace on every request and refuses it at once (401). Nothing here logs a token.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from relasify.observability import logger

CALLER_USER = "user"
CALLER_API_KEY = "api_key"

JwtVerifier = Callable[[str], dict[str, Any]]


class TokenRejected(Exception):
    """The token is not valid (the reason is for logs: the type of the failure, never the token)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization` value; like API Gateway's JWT authorizer, `Bearer ` is optional."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    value = rest.strip() if scheme.lower() == "bearer" else authorization.strip()
    return value or None


def claim_string(value: Any) -> str:
    """A claim as API Gateway hands claims to functions: strings, lists as `[a b]`, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(claim_string(v) for v in value) + "]"
    return str(value)


def user_context(claims: dict[str, Any]) -> dict[str, str]:
    return {**{name: claim_string(value) for name, value in claims.items()}, "caller": CALLER_USER}


def api_key_context(ws: str, key_id: str) -> dict[str, str]:
    return {"caller": CALLER_API_KEY, "ws": ws, "key_id": key_id}


def authorize(authorization: str | None, verify_jwt: JwtVerifier) -> dict[str, Any]:
    """The simple response for one request: `{"isAuthorized": bool, "context": {...}}`."""
    from relasify.services import api_keys  # lazy: a JWT caller never needs the key store

    token = bearer_token(authorization)
    if token is None:
        return _refused("missing token")
    if api_keys.looks_like_key(token):
        found = api_keys.find(token)
        if found is None:
            return _refused("unknown api key")
        return {"isAuthorized": True, "context": api_key_context(found.ws, found.key_id)}
    try:
        claims = verify_jwt(token)
    except TokenRejected as rejected:
        return _refused(str(rejected))
    return {"isAuthorized": True, "context": user_context(claims)}


def _refused(reason: str) -> dict[str, Any]:
    logger.info("authorizer refused", extra={"reason": reason})
    return {"isAuthorized": False}


def verify_cognito_jwt(token: str) -> dict[str, Any]:
    """The claims of a valid Cognito ID token of this stack's pool, or TokenRejected."""
    return _cognito_verifier()(token)


@lru_cache(maxsize=1)
def _cognito_verifier() -> JwtVerifier:
    """Verifies Cognito ID tokens of the configured pool and app client (settings `jwt_issuer`,
    `jwt_audience`). PyJWT ships with the authorizer function only (functions/authorizer/requirements.txt);
    its JWKS client caches the pool's signing keys for the container's life."""
    import jwt  # lazy: only the authorizer function has PyJWT

    from relasify.settings import get_settings

    settings = get_settings()
    issuer, audience = settings.jwt_issuer, settings.jwt_audience
    jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json", cache_keys=True, lifespan=3600)

    def verify(token: str) -> dict[str, Any]:
        try:
            signing_key = jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(type(exc).__name__) from exc
        if claims.get("token_use") != "id":
            raise TokenRejected("not an id token")
        return claims

    return verify
