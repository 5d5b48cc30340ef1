"""boto3 clients for the data-access modules: one per service per warm container, made on first use.

Lazy, so a function pays for boto3 (and its service model) only when it talks to that service
(cold start), and shared, so every module that talks to a service reuses one connection pool.
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    made = _clients.get(service)
    if made is None:
        with _lock:
            made = _clients.get(service)
            if made is None:
                import boto3  # lazy: boto3 loads with the first client, not at import

                made = _clients[service] = boto3.client(service)
    return made


def reset() -> None:
    """Forget the clients (tests switch moto contexts, regions and endpoints)."""
    _clients.clear()
