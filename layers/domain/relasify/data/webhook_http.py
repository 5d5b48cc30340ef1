"""The outgoing-webhook HTTP client (SPEC 5c), hardened against SSRF.

A subscriber chooses the URL, so the URL is attacker-controlled input:
- only `https://` (the local stack may also allow `http://127.0.0.1`, a setting off in the cloud);
- the host is resolved HERE, at delivery time, and every address must be public (`is_global`:
  no private, loopback, link-local 169.254.0.0/16 / fe80::/10 (cloud metadata), CGNAT, multicast,
  reserved or unspecified addresses; IPv4-mapped IPv6 is judged by its IPv4 address). A name that
  resolved to a public address when the subscription was made may point elsewhere now (DNS
  rebinding), so the check at creation is only early feedback;
- the connection goes to the checked address itself (the URL's host is replaced by it; TLS still
  verifies the certificate for the original name through SNI, and `Host` names it), so a second
  lookup by the HTTP library cannot be answered differently;
- 10 s timeout, redirects never followed (a 3xx is a failed delivery), at most 64 KiB of the
  response read.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from relasify.settings import get_settings

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
_LOCAL_HTTP_HOSTS = frozenset({"127.0.0.1"})
_FORBIDDEN_NAMES = ("localhost", ".localhost", ".internal", ".local")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedUrl(ValueError):
    """The URL may not be called (scheme, host or a resolved address is not allowed)."""


@dataclass(frozen=True, slots=True)
class PostResult:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses (a module function, so tests can stand in for DNS)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _local_http_allowed(parts: SplitResult) -> bool:
    return (
        get_settings().outgoing_webhooks_allow_local_http
        and parts.scheme == "http"
        and (parts.hostname or "") in _LOCAL_HTTP_HOSTS
    )


def check_url_shape(url: str) -> SplitResult:
    """Scheme, host and form, without DNS (request validation and delivery both use it)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise RefusedUrl("The URL is not valid.") from exc
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("The URL may not carry credentials.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise RefusedUrl("The URL needs a host.")
    if parts.scheme != "https" and not _local_http_allowed(parts):
        raise RefusedUrl("The URL must use https://.")
    if _local_http_allowed(parts):
        return parts
    if host == "localhost" or host.endswith(_FORBIDDEN_NAMES):
        raise RefusedUrl("The URL's host is not a public address.")
    literal = _literal(host)
    if literal is not None and not is_public(literal):
        raise RefusedUrl("The URL's host is not a public address.")
    return parts


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return bool(address.is_global) and not address.is_multicast


def checked_address(url: str) -> tuple[SplitResult, str]:
    """The URL's parts and the one address to connect to, every resolved address checked."""
    parts = check_url_shape(url)
    if _local_http_allowed(parts):
        return parts, str(parts.hostname)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(str(parts.hostname), port)
    except OSError as exc:
        raise RefusedUrl("The URL's host does not resolve.") from exc
    if not addresses:
        raise RefusedUrl("The URL's host does not resolve.")
    # Every address, not just the first: a name answering one public and one private address
    # would otherwise reach the private one on a later attempt.
    for text in addresses:
        if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
            raise RefusedUrl("The URL's host resolves to an address that is not public.")
    return parts, addresses[0]


def post(url: str, body: bytes, headers: dict[str, str]) -> PostResult:
    """POST `body` to `url` (checked, pinned to the checked address). Never raises for the
    endpoint's faults: they come back as an error name."""
    import httpx  # lazy: only the delivery worker posts

    started = time.monotonic()

    def done(status: int | None, error: str | None) -> PostResult:
        return PostResult(status, error, int((time.monotonic() - started) * 1000))

    try:
        parts, address = checked_address(url)
    except RefusedUrl:
        return done(None, "refused-address")
    host = str(parts.hostname)
    netloc_host = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{netloc_host}:{parts.port}" if parts.port else netloc_host).geturl()
    host_header = f"{host}:{parts.port}" if parts.port else host
    try:
        with (
            httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST",
                pinned,
                content=body,
                headers={**headers, "Host": host_header},
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            ) as response,
        ):
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if time.monotonic() - started > TIMEOUT_SECONDS:
                    return done(None, "timeout")  # a trickling answer: 10 s in all, not per read
                if read >= MAX_RESPONSE_BYTES:
                    break  # the answer's body does not matter; a huge one must not cost memory or time
            return done(response.status_code, None)
    except httpx.TimeoutException:
        return done(None, "timeout")
    except httpx.HTTPError:
        return done(None, "connection")
