"""X-Hub-Signature-256 over raw bytes: fixtures, malformed headers and a property test."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from relasify.whatsapp.signature import is_valid_signature, sign

REPO = Path(__file__).resolve().parents[2]
FIXTURES = next(p for p in (REPO / "tests/fixtures/whatsapp", REPO.parent / "shared/fixtures/whatsapp") if p.is_dir())
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
SECRET = "test-app-secret"


def test_fixtures_are_found() -> None:
    assert len(FIXTURE_FILES) >= 12


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_signature_is_over_the_file_bytes_not_a_reserialisation(path: Path) -> None:
    raw = path.read_bytes()
    header = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert sign(raw, SECRET) == header
    assert is_valid_signature(raw, header, SECRET)
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert not is_valid_signature(reserialised, header, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 63,
        "sha256=" + "z" * 64,
        "0" * 64,
        "sha256=" + "0" * 65,
    ],
)
def test_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    assert not is_valid_signature(b"{}", header, SECRET)


def test_empty_secret_never_verifies() -> None:
    assert not is_valid_signature(b"{}", sign(b"{}", ""), "")


def test_uppercase_hex_and_whitespace_are_tolerated() -> None:
    header = sign(b"{}", SECRET)
    assert is_valid_signature(b"{}", "  sha256=" + header[7:].upper() + " ", SECRET)


def test_other_secret_fails() -> None:
    assert not is_valid_signature(b"{}", sign(b"{}", "other"), SECRET)


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=64), data=st.data())
def test_any_single_bit_flip_fails(body: bytes, secret: str, data: st.DataObject) -> None:
    header = sign(body, secret)
    assert is_valid_signature(body, header, secret)
    if body:
        bit = data.draw(st.integers(0, len(body) * 8 - 1))
        flipped = bytearray(body)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not is_valid_signature(bytes(flipped), header, secret)
    digest = bytes.fromhex(header[7:])
    bit = data.draw(st.integers(0, len(digest) * 8 - 1))
    bad_digest = bytearray(digest)
    bad_digest[bit // 8] ^= 1 << (bit % 8)
    assert not is_valid_signature(body, "sha256=" + bad_digest.hex(), secret)
