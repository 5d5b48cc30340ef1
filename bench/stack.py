"""The benches' in-process stack: a moto account shaped like the deployed one.

`bench_stack()`: the tables from template.yaml, the bucket, queues, KMS key and SSM secrets, and the
environment the functions read; caches reset on entry and exit. `moto_server_process()` runs moto in
a child process instead, so the emulator's CPU is not the caller's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.payloads import APP_SECRET, DISPLAY_PHONE, PHONE_NUMBER_ID, VERIFY_TOKEN, WABA_ID

REGION = "ap-southeast-3"
TABLE_NAME = "relasify-bench-table"
MEDIA_BUCKET = "relasify-bench-media"
QUEUES = ("WEBHOOK_QUEUE_URL", "MEDIA_QUEUE_URL", "BROADCAST_QUEUE_URL", "IMPORT_QUEUE_URL")


def reset_caches() -> None:
    """Drop what the code under test caches per process (settings, clients, SSM values, warm state)."""
    from aws_lambda_powertools.utilities import parameters
    from relasify.data import webhook_inbox
    from relasify.data.base import reset_connections
    from relasify.settings import get_settings

    get_settings.cache_clear()
    reset_connections()
    webhook_inbox.reset_clients()
    parameters.clear_caches()
    with contextlib.suppress(Exception):
        from tests.support.api import reset_warm_state

        reset_warm_state()


@dataclass(frozen=True)
class BenchStack:
    env: dict[str, str]


@contextlib.contextmanager
def bench_stack(endpoint_url: str | None = None) -> Iterator[BenchStack]:
    """A moto account shaped like the deployed stack, with the environment the functions read.

    In-process (moto's mock, the default), or at `endpoint_url`: a moto server in another process
    (`moto_server_process()`), so the emulator's CPU is not the caller's, as DynamoDB's is not a
    Lambda function's."""
    import boto3
    from moto import mock_aws
    from relasify_local import moto_expressions, moto_queries, moto_serialization, moto_transactions

    # moto's own rollback copies every table on each transaction (O(table)); DynamoDB has no such cost.
    if not moto_transactions.install():
        raise RuntimeError("moto's transact_write_items changed: re-port relasify_local/moto_transactions.py")
    moto_queries.install()
    moto_expressions.install()
    moto_serialization.install()
    saved = dict(os.environ)
    env = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_SERVICE_NAME": "relasify-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "RelasifyBench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "TABLE_NAME": TABLE_NAME,
        "MEDIA_BUCKET": MEDIA_BUCKET,
        "APP_SECRET_PARAMETER": "/bench/app-secret",
        "VERIFY_TOKEN_PARAMETER": "/bench/verify-token",
        # Benches fire API requests as fast as the harness answers: budgets far above that (still
        # taken, one UpdateItem each per request, so the counts are those of the deployed API).
        "API_USER_RATE_PER_SECOND": "1000000",
        "API_USER_BURST": "1000000",
        "API_WORKSPACE_RATE_PER_SECOND": "1000000",
        "API_WORKSPACE_BURST": "1000000",
    }
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ.update(env)
    try:
        with contextlib.nullcontext() if endpoint_url else mock_aws():
            from relasify_local.cfn import create_tables, load_template

            reset_caches()
            create_tables(boto3.client("dynamodb"), {"Table": TABLE_NAME})
            boto3.client("s3").create_bucket(
                Bucket=MEDIA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            sqs = boto3.client("sqs")
            resources = load_template()["Resources"]
            for name in QUEUES:
                words = name.removesuffix("_URL").split("_")
                properties = resources["".join(w.capitalize() for w in words)]["Properties"]
                # The template's visibility timeout: moto's default (30 s) would redeliver long jobs.
                attributes = {"VisibilityTimeout": str(properties["VisibilityTimeout"])}
                queue_name = "bench-" + "-".join(w.lower() for w in words)
                os.environ[name] = env[name] = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
            os.environ["KMS_KEY_ID"] = env["KMS_KEY_ID"] = boto3.client("kms").create_key(Description="bench")[
                "KeyMetadata"
            ]["KeyId"]
            ssm = boto3.client("ssm")
            ssm.put_parameter(Name="/bench/app-secret", Value=APP_SECRET, Type="SecureString")
            ssm.put_parameter(Name="/bench/verify-token", Value=VERIFY_TOKEN, Type="SecureString")
            reset_caches()
            try:
                yield BenchStack(env)
            finally:
                reset_caches()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        with contextlib.suppress(Exception):
            reset_caches()


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """A moto server (the local stack's: atomic requests, item-level transaction undo, partition
    queries) in a child process; yields its URL and stops it on exit."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as probe:  # a free port, as the OS hands it out
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.moto_process", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("moto server not ready within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connected_workspace(api: Any, owner: str) -> str:
    """A workspace created through the API by `owner`, with the bench's WhatsApp number connected."""
    from relasify.data.identity import identity_repository
    from relasify.data.kms_tokens import encrypt_token

    ws = api.create_workspace(owner)
    identity_repository().put_whatsapp_connection(
        ws,
        waba_id=WABA_ID,
        phone_number_id=PHONE_NUMBER_ID,
        encrypted_access_token=encrypt_token(ws, "bench-access-token"),
        display_phone_number=DISPLAY_PHONE,
    )
    return ws
