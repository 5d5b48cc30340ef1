"""The outgoing-webhook signature and HTTP client (SPEC 5c), without AWS: signatures verify for any
body and only for it; the client connects to the address it checked (DNS rebinding), never follows a
redirect, and gives up on a trickling answer."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from relasify.data import webhook_http
from relasify.services import webhook_signing

SECRET = "whsec_test-secret"
NOW = 1_780_000_000


@given(body=st.binary(max_size=4096), timestamp=st.integers(min_value=0, max_value=2**40))
def test_signature_is_hmac_sha256_of_timestamp_dot_body(body: bytes, timestamp: int) -> None:
    header = webhook_signing.header_value(SECRET, timestamp, body)
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={timestamp},v1={expected}"
    assert webhook_signing.verify(SECRET, header, body, now=timestamp)


@given(body=st.binary(max_size=1024), other=st.binary(max_size=1024))
def test_a_signature_verifies_only_its_own_body_and_secret(body: bytes, other: bytes) -> None:
    header = webhook_signing.header_value(SECRET, NOW, body)
    assert webhook_signing.verify(SECRET, header, other, now=NOW) == (other == body)
    assert not webhook_signing.verify(SECRET + "x", header, body, now=NOW)


def test_an_old_or_malformed_signature_is_refused() -> None:
    header = webhook_signing.header_value(SECRET, NOW, b"{}")
    assert not webhook_signing.verify(SECRET, header, b"{}", now=NOW + 301)
    assert not webhook_signing.verify(SECRET, "v1=abc", b"{}", now=NOW)
    assert not webhook_signing.verify(SECRET, "t=x,v1=abc", b"{}", now=NOW)


def test_secrets_are_random_and_long() -> None:
    secrets = {webhook_signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(s.startswith("whsec_") and len(s) >= 40 for s in secrets)


class Recorder:
    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.headers = headers or {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers, stream=httpx.ByteStream(b"x" * 200_000))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    real_client = httpx.Client

    def client(**kwargs: Any) -> httpx.Client:
        assert kwargs["follow_redirects"] is False
        assert kwargs["timeout"] == webhook_http.TIMEOUT_SECONDS
        return real_client(transport=httpx.MockTransport(recorder.handler), **kwargs)

    monkeypatch.setattr(httpx, "Client", client)
    return recorder


def test_the_connection_goes_to_the_checked_address_with_the_name_for_tls(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([["93.184.216.34"], ["10.0.0.1"]])  # a second lookup would answer a private address
    monkeypatch.setattr(webhook_http, "resolve", lambda host, port: next(answers))
    result = webhook_http.post("https://hooks.example.com:8443/in?x=1", b"{}", {"X-Test": "1"})
    assert result.ok
    assert result.status_code == 200
    (request,) = recorder.requests
    assert request.url.host == "93.184.216.34"
    assert request.url.port == 8443
    assert request.url.raw_path == b"/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_redirects_are_not_followed(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder.status, recorder.headers = 302, {"location": "http://169.254.169.254/latest/meta-data/"}
    monkeypatch.setattr(webhook_http, "resolve", lambda host, port: ["93.184.216.34"])
    result = webhook_http.post("https://hooks.example.com/in", b"{}", {})
    assert not result.ok
    assert result.status_code == 302
    assert len(recorder.requests) == 1


def test_a_refused_address_makes_no_request(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook_http, "resolve", lambda host, port: ["169.254.169.254"])
    result = webhook_http.post("https://hooks.example.com/in", b"{}", {})
    assert (result.status_code, result.error) == (None, "refused-address")
    assert recorder.requests == []


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.1", "192.168.0.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
     "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::"],
)  # fmt: skip
def test_non_public_addresses(address: str) -> None:
    import ipaddress

    assert not webhook_http.is_public(ipaddress.ip_address(address))


def test_public_addresses() -> None:
    import ipaddress

    assert webhook_http.is_public(ipaddress.ip_address("93.184.216.34"))
    assert webhook_http.is_public(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


def test_a_slow_endpoint_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from relasify.settings import get_settings

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(1.5)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OUTGOING_WEBHOOKS_ALLOW_LOCAL_HTTP", "true")
    monkeypatch.setattr(webhook_http, "TIMEOUT_SECONDS", 0.3)
    get_settings.cache_clear()
    try:
        result = webhook_http.post(f"http://127.0.0.1:{server.server_address[1]}/in", b"{}", {})
    finally:
        server.shutdown()
        server.server_close()
        get_settings.cache_clear()
    assert (result.status_code, result.error) == (None, "timeout")
    assert result.duration_ms < 1000
