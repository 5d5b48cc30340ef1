"""boto3 clients for the data-access modules: one per service per warm container, made on first use.

Lazy, so a function pays for boto3 (and its service model) only when it talks to that service
(cold start), and shared, so every module that talks to a service reuses one connection pool.
One botocore session per container, for these clients, those with a configuration of their own
(`session().client(...)`), Powertools parameters' SSM reads and pynamodb's DynamoDB client
(relasify.data.base): a session's loader caches botocore's endpoint,
partition and service data, so a second session (Powertools' default provider and pynamodb each make
their own) would load and parse them again on the first request (bench cold_start: the webhook
receiver's first request; workers that talk to DynamoDB and S3 or SQS).
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_sessions: dict[str, Any] = {}  # "botocore", "boto3": the container's one session, made on first use
# Reentrant: pynamodb's client is made under it too (botocore sessions are not thread safe).
_lock = threading.RLock()


def botocore_session() -> Any:
    """The container's botocore session (pynamodb's client is made from it: relasify.data.base)."""
    session = _sessions.get("botocore")
    if session is None:
        with _lock:
            session = _sessions.get("botocore")
            if session is None:
                import botocore.session  # lazy, as boto3 below

                session = _sessions["botocore"] = botocore.session.get_session()
    return session


def client(service: str) -> Any:
    made = _clients.get(service)
    if made is None:
        with _lock:
            made = _clients.get(service)
            if made is None:
                made = _clients[service] = session().client(service)
    return made


def creation_lock() -> threading.RLock:
    """Held while a client is made from the shared session (pynamodb's too)."""
    return _lock


def session() -> Any:
    """A boto3 session over the container's botocore session, for clients with their own configuration
    (path-style S3, an endpoint): `boto3.client` would make them from boto3's default session, another one."""
    made = _sessions.get("boto3")
    if made is None:
        with _lock:
            made = _sessions.get("boto3")
            if made is None:
                import boto3  # lazy: boto3 loads with the first client, not at import

                made = _sessions["boto3"] = boto3.session.Session(botocore_session=botocore_session())
    return made


def reset() -> None:
    """Forget the clients and the session (tests switch moto contexts, regions, endpoints and credentials)."""
    with _lock:
        _clients.clear()
        _sessions.clear()


def ssm_parameter(name: str, *, max_age: int) -> str:
    """A SecureString's value through Powertools parameters (cached per container for `max_age` seconds)."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    # Installed as Powertools' default SSM provider, so `parameters.clear_caches()` (which drops the
    # default providers) forgets it and its values as before; the next read installs it again.
    if "ssm" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider(boto3_client=client("ssm"))
    return str(parameters.get_parameter(name, decrypt=True, max_age=max_age) or "")
