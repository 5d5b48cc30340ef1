"""The local JWT authorizer accepts exactly what API Gateway's would: right signature, issuer,
audience, and a token that is neither expired nor not yet valid."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from relasify_local.jwt_local import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    LocalKeyPair,
    TokenRejectedError,
    authorizer_context,
    bearer_token,
    load_or_create_key,
    mint_token,
    subject_for_email,
    verify_token,
)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyPair:
    return load_or_create_key(tmp_path_factory.mktemp("jwt"))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyPair:
    return load_or_create_key(tmp_path_factory.mktemp("other-jwt"))


def _signed(key: LocalKeyPair, **overrides: object) -> str:
    now = int(time.time())
    claims = {
        "sub": "u1",
        "email": "a@example.com",
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.key_id})


def test_minted_token_is_accepted_with_cognito_like_claims(key: LocalKeyPair) -> None:
    token = mint_token("Someone@Example.com", name="Someone", ttl_seconds=120, key=key)

    claims = verify_token(token, key)

    assert claims["sub"] == subject_for_email("someone@example.com")
    assert claims["email"] == "Someone@Example.com"
    assert claims["name"] == "Someone"
    assert claims["iss"] == LOCAL_ISSUER
    assert claims["aud"] == LOCAL_AUDIENCE
    assert claims["token_use"] == "id"
    assert claims["exp"] - claims["iat"] == 120
    assert jwt.get_unverified_header(token)["kid"] == key.key_id


def test_sub_is_stable_per_email_and_can_be_overridden(key: LocalKeyPair) -> None:
    first = verify_token(mint_token("a@example.com", key=key), key)["sub"]
    again = verify_token(mint_token(" A@example.com ", key=key), key)["sub"]
    other = verify_token(mint_token("b@example.com", key=key), key)["sub"]
    explicit = verify_token(mint_token("a@example.com", sub="custom-sub", key=key), key)["sub"]

    assert first == again
    assert first != other
    assert explicit == "custom-sub"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": int(time.time()) - 5}, id="expired"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example.com"}, id="wrong-issuer"),
        pytest.param({"nbf": int(time.time()) + 600}, id="not-yet-valid"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"aud": None}, id="no-audience"),
    ],
)
def test_tokens_the_authorizer_would_refuse(key: LocalKeyPair, overrides: dict) -> None:
    with pytest.raises(TokenRejectedError):
        verify_token(_signed(key, **overrides), key)


def test_bad_signature_is_refused(key: LocalKeyPair, other_key: LocalKeyPair) -> None:
    with pytest.raises(TokenRejectedError):
        verify_token(_signed(other_key), key)


def test_tampered_payload_is_refused(key: LocalKeyPair) -> None:
    header, _, signature = _signed(key).split(".")
    forged_payload = jwt.utils.base64url_encode(
        b'{"sub":"admin","iss":"%s","aud":"%s","exp":9999999999}'
        % (
            LOCAL_ISSUER.encode(),
            LOCAL_AUDIENCE.encode(),
        )
    ).decode()

    with pytest.raises(TokenRejectedError):
        verify_token(f"{header}.{forged_payload}.{signature}", key)


def test_unsigned_token_is_refused(key: LocalKeyPair) -> None:
    unsigned = jwt.encode(
        {"sub": "u", "iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "exp": 9999999999}, None, algorithm="none"
    )

    with pytest.raises(TokenRejectedError):
        verify_token(unsigned, key)


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
def test_missing_or_malformed_token_is_refused(key: LocalKeyPair, token: str | None) -> None:
    with pytest.raises(TokenRejectedError):
        verify_token(token, key)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer abc", "abc"), ("abc", "abc"), ("Bearer ", None), ("", None), (None, None)],
)
def test_bearer_prefix_is_optional_like_api_gateway(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_key_is_generated_once_and_reused(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path)
    second = load_or_create_key(tmp_path)

    assert first.key_id == second.key_id
    assert verify_token(mint_token("a@example.com", key=first), second)["email"] == "a@example.com"
    assert (tmp_path / "jwt-signing-key.pem").stat().st_mode & 0o077 == 0
    assert first.public_jwk()["kid"] == first.key_id


def test_authorizer_context_stringifies_claims_like_api_gateway() -> None:
    context = authorizer_context({"sub": "u", "exp": 5, "email_verified": False, "groups": ["a", "b"]})

    assert context == {
        "jwt": {"claims": {"sub": "u", "exp": "5", "email_verified": "false", "groups": "[a b]"}, "scopes": None}
    }
