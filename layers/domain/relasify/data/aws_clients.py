"""boto3 clients for the data-access modules: one per service per warm container, made on first use.

Lazy, so a function pays for boto3 (and its service model) only when it talks to that service
(cold start), and shared, so every module that talks to a service reuses one connection pool.
Powertools parameters reads SSM through this module's client too: its own default provider would
make a second boto3 session, which loads and parses botocore's endpoint and service data again
(bench cold_start: the webhook receiver's first request).
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


def ssm_parameter(name: str, *, max_age: int) -> str:
    """A SecureString's value through Powertools parameters (cached per container for `max_age` seconds)."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    # Installed as Powertools' default SSM provider, so `parameters.clear_caches()` (which drops the
    # default providers) forgets it and its values as before; the next read installs it again.
    if "ssm" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider(boto3_client=client("ssm"))
    return str(parameters.get_parameter(name, decrypt=True, max_age=max_age) or "")
