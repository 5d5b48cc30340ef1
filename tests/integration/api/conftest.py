"""Fixtures of the in-process API tier (see tests/support/api.py)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from relasify.settings import Settings, get_settings
from relasify_local.sandbox import Sandbox

from tests.support.api import (
    APP_SECRET,
    DEAD_LETTER_QUEUES,
    QUEUES,
    UNLIMITED_BUDGETS,
    VERIFY_TOKEN,
    ApiClient,
    gateway_and_key,
    reset_warm_state,
)


@pytest.fixture
def aws_resources(ddb_tables: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """KMS key, bucket, queues and SSM secrets in the same moto as the tables."""
    key_id = boto3.client("kms").create_key(Description="test")["KeyMetadata"]["KeyId"]
    monkeypatch.setenv("KMS_KEY_ID", key_id)
    monkeypatch.setenv("MEDIA_BUCKET", "relasify-test-media")
    boto3.client("s3").create_bucket(
        Bucket="relasify-test-media", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-3"}
    )
    sqs = boto3.client("sqs")
    for env in QUEUES + DEAD_LETTER_QUEUES:
        name = env.removesuffix("_URL").lower().replace("_", "-")
        monkeypatch.setenv(env, sqs.create_queue(QueueName=f"test-{name}")["QueueUrl"])
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/test/app-secret", Value=APP_SECRET, Type="SecureString")
    ssm.put_parameter(Name="/test/verify-token", Value=VERIFY_TOKEN, Type="SecureString")
    monkeypatch.setenv("APP_SECRET_PARAMETER", "/test/app-secret")
    monkeypatch.setenv("VERIFY_TOKEN_PARAMETER", "/test/verify-token")
    get_settings.cache_clear()
    reset_warm_state()
    yield get_settings()
    from relasify.web import usage

    usage.flush()
    reset_warm_state()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_graph_sandbox() -> Iterator[Sandbox]:
    # Its webhooks go nowhere: tests that need them start their own (test_send_support.sending_environment).
    sandbox = Sandbox(
        webhook_url="http://127.0.0.1:9/webhooks/whatsapp", app_secret=APP_SECRET, webhook_max_attempts=1
    ).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def graph_sandbox(shared_graph_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The Graph API of the in-process tier: the WhatsApp sandbox with only its seeded account
    (WABA 102345678901234, number 109876543210987, any `EAAG...` token), fresh for each test."""
    from relasify.whatsapp.graph import reset_graph_client

    shared_graph_sandbox.reset()
    monkeypatch.setenv("GRAPH_API_BASE_URL", shared_graph_sandbox.base_url)
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    reset_graph_client()
    yield shared_graph_sandbox
    reset_graph_client()


@pytest.fixture
def unlimited_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Request budgets far above what the test fires (floods that test something else than the
    budgets); the budgets themselves are tested as deployed in test_rate_limits.py."""
    for name, value in UNLIMITED_BUDGETS.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture
def api(aws_resources: Settings, graph_sandbox: Sandbox) -> ApiClient:
    gateway, key = gateway_and_key()
    return ApiClient(gateway, key)
