"""Fixtures of the in-process API tier (see tests/support/api.py)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from relasify.settings import Settings, get_settings

from tests.support.api import (
    APP_SECRET,
    DEAD_LETTER_QUEUES,
    QUEUES,
    VERIFY_TOKEN,
    ApiClient,
    _gateway_and_key,
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


@pytest.fixture
def api(aws_resources: Settings) -> ApiClient:
    gateway, key = _gateway_and_key()
    return ApiClient(gateway, key)
