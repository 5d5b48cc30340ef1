"""API keys and the caller authorizer without AWS: key format and hashing, bearer parsing, the
authorizer's decisions, and the Cognito JWT checks it makes (against a local JWKS)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from relasify.data.api_keys import KeyRef
from relasify.errors import Unauthenticated
from relasify.services import api_keys
from relasify.settings import get_settings
from relasify.web import authorizer
from relasify.web.auth import actor_from_context
from relasify.web.authorizer import TokenRejected, authorize, bearer_token, user_context


def test_new_keys_are_rk_plus_256_random_bits_in_base64url() -> None:
    keys = {api_keys.new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("rk_")
        assert len(key) == 3 + 43
        assert api_keys.is_well_formed(key)
        assert api_keys.looks_like_key(key)


def test_the_stored_hash_is_the_hex_sha256_of_the_whole_key() -> None:
    key = "rk_" + "a" * 43
    assert api_keys.hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert api_keys.hash_key(key) != api_keys.hash_key(key[:-1] + "b")
    assert len(api_keys.hash_key(key)) == 64


@pytest.mark.parametrize(
    "token",
    [
        "rk_",
        "rk_short",
        "rk_" + "a" * 42,
        "rk_" + "a" * 44,
        "rk_" + "a" * 42 + "=",
        "rk_" + "a" * 42 + " ",
        "RK_" + "a" * 43,
    ],
)
def test_malformed_keys_are_not_well_formed(token: str) -> None:
    assert not api_keys.is_well_formed(token)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer ", None),
        ("Bearer rk_abc", "rk_abc"),
        ("bearer   rk_abc  ", "rk_abc"),
        ("rk_abc", "rk_abc"),  # like API Gateway's JWT authorizer, the scheme is optional
        ("eyJ.a.b", "eyJ.a.b"),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def _no_jwt(token: str) -> dict[str, Any]:
    raise AssertionError("a key must never be verified as a JWT")


def test_a_known_key_is_authorized_with_its_workspace_and_id_only(monkeypatch: pytest.MonkeyPatch) -> None:
    key = api_keys.new_key()
    looked_up: list[str] = []

    def find_by_hash(digest: str) -> KeyRef | None:
        looked_up.append(digest)
        return KeyRef(ws="ws_1", key_id="k1") if digest == api_keys.hash_key(key) else None

    monkeypatch.setattr(api_keys.store, "find_by_hash", find_by_hash)

    assert authorize(f"Bearer {key}", _no_jwt) == {
        "isAuthorized": True,
        "context": {"caller": "api_key", "ws": "ws_1", "key_id": "k1"},
    }
    assert looked_up == [api_keys.hash_key(key)]  # by hash, never by the key text
    assert authorize(f"Bearer {api_keys.new_key()}", _no_jwt) == {"isAuthorized": False}


def test_malformed_keys_are_refused_without_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def find_by_hash(digest: str) -> KeyRef | None:
        raise AssertionError("no read for what cannot be a key")

    monkeypatch.setattr(api_keys.store, "find_by_hash", find_by_hash)
    for token in ("rk_", "rk_short", "rk_" + "a" * 500):
        assert authorize(f"Bearer {token}", _no_jwt) == {"isAuthorized": False}


def test_jwts_are_verified_and_their_claims_passed_as_strings() -> None:
    claims = {"sub": "u1", "email": "a@example.com", "email_verified": True, "auth_time": 5, "groups": ["a", "b"]}

    answer = authorize("Bearer eyJ.x.y", lambda token: claims)

    assert answer == {
        "isAuthorized": True,
        "context": {
            "sub": "u1",
            "email": "a@example.com",
            "email_verified": "true",
            "auth_time": "5",
            "groups": "[a b]",
            "caller": "user",
        },
    }
    actor = actor_from_context(answer["context"])
    assert (actor.sub, actor.email, actor.signed_in_at, actor.api_key) == ("u1", "a@example.com", 5, None)


def test_a_jwt_cannot_claim_to_be_a_key() -> None:
    forged = {"sub": "u1", "caller": "api_key", "ws": "ws_victim", "key_id": "k1"}

    context = authorize("Bearer eyJ.x.y", lambda token: forged)["context"]

    assert context["caller"] == "user"
    assert actor_from_context(context).api_key is None


def test_refused_jwts_and_missing_tokens_are_not_authorized() -> None:
    def reject(token: str) -> dict[str, Any]:
        raise TokenRejected("ExpiredSignatureError")

    assert authorize("Bearer eyJ.x.y", reject) == {"isAuthorized": False}
    assert authorize(None, reject) == {"isAuthorized": False}
    assert authorize("Bearer ", reject) == {"isAuthorized": False}


def test_a_key_context_becomes_a_key_actor() -> None:
    actor = actor_from_context({"caller": "api_key", "ws": "ws_1", "key_id": "k1"})
    assert (actor.sub, actor.email, actor.api_key.ws, actor.api_key.key_id) == ("key:k1", "", "ws_1", "k1")
    assert user_context({"sub": "x"})["caller"] == "user"


# --- the Cognito verifier, against a JWKS served from memory -----------------------------------

ISSUER = "https://cognito-idp.ap-southeast-3.amazonaws.com/ap-southeast-3_Test"
AUDIENCE = "client-123"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    get_settings.cache_clear()
    authorizer._cognito_verifier.cache_clear()
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(_KEY.public_key(), as_dict=True)
    fetched: list[str] = []

    def fetch_data(self: jwt.PyJWKClient) -> dict[str, Any]:
        fetched.append(self.uri)
        return {"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch_data)
    yield fetched
    authorizer._cognito_verifier.cache_clear()
    get_settings.cache_clear()


def _token(key: rsa.RSAPrivateKey = _KEY, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"sub": "u1", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now, "token_use": "id"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def test_cognito_id_tokens_of_the_pool_are_accepted(cognito: list[str]) -> None:
    assert authorizer.verify_cognito_jwt(_token())["sub"] == "u1"
    assert cognito == [f"{ISSUER}/.well-known/jwks.json"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://cognito-idp.ap-southeast-3.amazonaws.com/ap-southeast-3_Other"},
        {"aud": "another-client"},
        {"exp": int(time.time()) - 10},
        {"token_use": "access"},
        {"token_use": None},
        {"sub": None},
    ],
)
def test_other_tokens_are_rejected(cognito: list[str], overrides: dict[str, Any]) -> None:
    with pytest.raises(TokenRejected):
        authorizer.verify_cognito_jwt(_token(**overrides))


def test_a_token_signed_by_another_key_is_rejected(cognito: list[str]) -> None:
    with pytest.raises(TokenRejected):
        authorizer.verify_cognito_jwt(_token(_OTHER_KEY))
    with pytest.raises(TokenRejected):
        authorizer.verify_cognito_jwt("not.a.jwt")


def test_a_cached_yes_for_a_token_that_has_expired_since_is_refused() -> None:
    """The cloud authorizer's answer is reused for 300 s: the function checks `exp` itself."""
    now = int(time.time())
    assert actor_from_context({"caller": "user", "sub": "u1", "exp": str(now + 60)}).sub == "u1"
    with pytest.raises(Unauthenticated):
        actor_from_context({"caller": "user", "sub": "u1", "exp": str(now - 1)})
