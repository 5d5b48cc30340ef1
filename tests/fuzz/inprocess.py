"""One moto account for a whole test module: tables, bucket, queues, KMS key and SSM secrets built once, and the
in-process API client (tests/support/api.py) against it. For tiers that send many requests (fuzzing, the
bad-input corpus), so their time goes to requests rather than to per-test setup."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from relasify import clock
from relasify.settings import get_settings
from relasify_local.cfn import create_tables
from relasify_local.sandbox import Sandbox

from tests.integration.conftest import TABLE_NAME, atomic_call_action
from tests.support.api import (
    APP_SECRET,
    QUEUES,
    UNLIMITED_BUDGETS,
    VERIFY_TOKEN,
    ApiClient,
    gateway_and_key,
    reset_warm_state,
)

BUCKET = "relasify-test-media"
# The in-process harness's secret names: the webhook receiver reads them once, at import.
APP_SECRET_PARAMETER = "/test/app-secret"
VERIFY_TOKEN_PARAMETER = "/test/verify-token"


@contextmanager
def shared_moto_api() -> Iterator[ApiClient]:
    """The in-process API client against a fresh moto account, the environment pointing at it, and
    the WhatsApp sandbox as its Graph API (connecting a number asks Graph for proof of ownership)."""
    from aws_lambda_powertools.utilities import parameters
    from relasify.data.base import reset_connections
    from relasify.whatsapp.graph import reset_graph_client

    sandbox = Sandbox(webhook_url="http://127.0.0.1:9/webhooks/whatsapp", app_secret=APP_SECRET, webhook_max_attempts=1)
    with sandbox, pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setenv("GRAPH_API_BASE_URL", sandbox.base_url)
        patch.setenv("GRAPH_TIMEOUT_SECONDS", "2")
        reset_graph_client()
        patch.setenv("TABLE_NAME", TABLE_NAME)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.setattr(DynamoHandler, "call_action", atomic_call_action)
        reset_connections()
        create_tables(boto3.client("dynamodb"), {"Table": TABLE_NAME})
        patch.setenv("KMS_KEY_ID", boto3.client("kms").create_key(Description="test")["KeyMetadata"]["KeyId"])
        patch.setenv("MEDIA_BUCKET", BUCKET)
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-3"}
        )
        sqs = boto3.client("sqs")
        for env in QUEUES:
            name = env.removesuffix("_URL").lower().replace("_", "-")
            patch.setenv(env, sqs.create_queue(QueueName=f"test-{name}")["QueueUrl"])
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name=APP_SECRET_PARAMETER, Value=APP_SECRET, Type="SecureString")
        ssm.put_parameter(Name=VERIFY_TOKEN_PARAMETER, Value=VERIFY_TOKEN, Type="SecureString")
        patch.setenv("APP_SECRET_PARAMETER", APP_SECRET_PARAMETER)
        patch.setenv("VERIFY_TOKEN_PARAMETER", VERIFY_TOKEN_PARAMETER)
        for name, value in UNLIMITED_BUDGETS.items():  # the fuzzer fires requests as fast as they answer
            patch.setenv(name, value)
        parameters.clear_caches()
        get_settings.cache_clear()
        reset_warm_state()
        gateway, key = gateway_and_key()
        try:
            yield ApiClient(gateway, key)
        finally:
            from relasify.web import usage

            usage.flush()
            reset_warm_state()
            parameters.clear_caches()
            clock.set_clock(None)
            get_settings.cache_clear()
            reset_graph_client()
