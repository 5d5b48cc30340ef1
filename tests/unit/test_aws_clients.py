"""relasify.data.aws_clients: one botocore session per container, shared by the boto3 clients,
Powertools parameters' SSM reads and pynamodb's DynamoDB client (a second session loads and parses
botocore's endpoint and service data again: bench cold_start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from moto import mock_aws
from relasify.data import aws_clients
from relasify.data.base import TableModel, reset_connections


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    reset_connections()
    parameters.clear_caches()
    yield
    reset_connections()
    parameters.clear_caches()


def test_pynamodb_and_boto3_clients_share_one_botocore_session() -> None:
    dynamodb = TableModel._get_connection().connection
    sqs = aws_clients.client("sqs")
    assert dynamodb.session is aws_clients.botocore_session()
    # A client keeps its session's loader (the cache of parsed botocore data), not the session.
    loader = aws_clients.botocore_session().get_component("data_loader")
    assert dynamodb.client._loader is sqs._loader is loader
    # Clients with a configuration of their own (path-style S3) come from it too.
    assert aws_clients.session().client("s3")._loader is loader


def test_powertools_parameters_read_ssm_through_the_shared_client() -> None:
    with mock_aws():
        aws_clients.client("ssm").put_parameter(Name="/relasify/test/key", Value="secret", Type="SecureString")
        assert aws_clients.ssm_parameter("/relasify/test/key", max_age=1) == "secret"
    assert DEFAULT_PROVIDERS["ssm"].client is aws_clients.client("ssm")


def test_reset_forgets_the_session_and_its_clients() -> None:
    before = aws_clients.botocore_session()
    sqs = aws_clients.client("sqs")
    reset_connections()
    assert aws_clients.botocore_session() is not before
    assert aws_clients.client("sqs") is not sqs
    assert TableModel._get_connection().connection.session is aws_clients.botocore_session()
