"""Local stand-in for the Cognito user pool and the HTTP API's JWT authorizer.

A single RS256 key pair is generated once and kept in the state directory (`.local-stack/`
under the repo root by default, gitignored), so tokens minted by `relasify token` are
accepted by any local stack that shares that directory. Verification applies the same
checks as API Gateway's JWT authorizer: signature, `iss`, `aud`, `exp` and `nbf`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relasify_local.cfn import REPO_ROOT

LOCAL_ISSUER = "http://127.0.0.1:3000/local-issuer"
LOCAL_AUDIENCE = "relasify-local"
SIGNING_ALGORITHM = "RS256"
SIGNING_KEY_FILE = "jwt-signing-key.pem"
DEFAULT_TTL_SECONDS = 3600
# Namespace for deriving a stable `sub` from an e-mail, so the same person keeps one identity.
_SUB_NAMESPACE = uuid.UUID("6f1c7a52-3d0e-4a8e-9a64-2f1f3b4d5e60")


def default_state_dir() -> Path:
    return Path(os.environ.get("RELASIFY_STATE_DIR") or REPO_ROOT / ".local-stack")


class TokenRejectedError(Exception):
    """The bearer token would be refused by the JWT authorizer (the reason is for logs, never the client)."""


@dataclass(frozen=True)
class LocalKeyPair:
    private_key: rsa.RSAPrivateKey

    @property
    def key_id(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()[:16]

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()

        def b64(value: int) -> str:
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {
            "kty": "RSA",
            "use": "sig",
            "alg": SIGNING_ALGORITHM,
            "kid": self.key_id,
            "n": b64(numbers.n),
            "e": b64(numbers.e),
        }


def load_or_create_key(state_dir: Path | None = None) -> LocalKeyPair:
    """The local signing key, generated on first use; concurrent first uses agree on one key."""
    directory = state_dir or default_state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SIGNING_KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        staging = directory / f".{SIGNING_KEY_FILE}.{os.getpid()}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            # link() fails if another process won the race: then everyone uses the winner's key.
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink(missing_ok=True)
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} does not hold an RSA private key")
    return LocalKeyPair(private_key)


def subject_for_email(email: str) -> str:
    return str(uuid.uuid5(_SUB_NAMESPACE, email.strip().lower()))


def mint_token(
    email: str,
    *,
    sub: str | None = None,
    name: str | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    key: LocalKeyPair | None = None,
    state_dir: Path | None = None,
    extra_claims: dict[str, Any] | None = None,
    now: float | None = None,
    email_verified: bool | None = True,
) -> str:
    """An ID token shaped like Cognito's (`token_use` "id"), signed with the local key.

    `email_verified` False mints a token whose address the identity provider has not verified (a
    Cognito user who changed their e-mail and has not confirmed it yet); None leaves the claim out.
    Either way the API matches that address to no user and no invitation."""
    signing_key = key or load_or_create_key(state_dir)
    issued_at = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": sub or subject_for_email(email),
        "email": email,
        "name": name or email.split("@", 1)[0],
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "iat": issued_at,
        "auth_time": issued_at,
        "exp": issued_at + ttl_seconds,
        "token_use": "id",
    }
    if email_verified is not None:
        claims["email_verified"] = email_verified
    claims.update(extra_claims or {})
    return jwt.encode(claims, signing_key.private_key, algorithm=SIGNING_ALGORITHM, headers={"kid": signing_key.key_id})


def bearer_token(authorization_header: str | None) -> str | None:
    """The token from an `Authorization` value; like API Gateway, a `Bearer ` prefix is optional."""
    if not authorization_header:
        return None
    scheme, _, rest = authorization_header.strip().partition(" ")
    value = rest.strip() if scheme.lower() == "bearer" else authorization_header.strip()
    return value or None


def verify_token(token: str | None, key: LocalKeyPair, *, leeway_seconds: int = 0) -> dict[str, Any]:
    """The token's claims if the JWT authorizer would accept it; raises TokenRejectedError otherwise."""
    if not token:
        raise TokenRejectedError("missing token")
    try:
        return jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[SIGNING_ALGORITHM],
            audience=LOCAL_AUDIENCE,
            issuer=LOCAL_ISSUER,
            leeway=leeway_seconds,
            options={"require": ["exp", "iss", "aud"], "verify_nbf": True},
        )
    except jwt.PyJWTError as exc:
        raise TokenRejectedError(type(exc).__name__) from exc


def authorizer_context(claims: dict[str, Any]) -> dict[str, Any]:
    """`requestContext.authorizer` as API Gateway builds it: claim values arrive as strings."""

    def as_string(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(as_string(v) for v in value) + "]"
        return str(value)

    scope = claims.get("scope")
    scopes = str(scope).split() if scope else None
    return {"jwt": {"claims": {k: as_string(v) for k, v in claims.items()}, "scopes": scopes}}
