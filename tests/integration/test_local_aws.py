"""The local stack's AWS side: moto in server mode (in-process thread) bootstrapped from a template:
tables with TTL, queues with DLQs and redrive, the bucket, the KMS alias and the SSM secrets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from relasify_local.aws import MotoServer, aws_client, bootstrap_resources
from relasify_local.cfn import TEMPLATE_PATH, load_template, resources_of_type

TEMPLATE = """
Parameters:
  StageName: {Type: String, Default: local}
  FrontendOrigin: {Type: String, Default: "http://localhost:5173"}
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        WEBHOOK_QUEUE_URL: !Ref WebhookQueue
        STAGE: !Ref StageName
        DLQ_ARN: !GetAtt WebhookDLQ.Arn
        LITERAL: hello
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: PK, AttributeType: S}, {AttributeName: SK, AttributeType: S}]
      KeySchema: [{AttributeName: PK, KeyType: HASH}, {AttributeName: SK, KeyType: RANGE}]
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
  WebhookQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 180
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WebhookDLQ.Arn, maxReceiveCount: 4}
  WebhookDLQ:
    Type: AWS::SQS::Queue
    Properties: {MessageRetentionPeriod: 1209600}
  MediaBucket:
    Type: AWS::S3::Bucket
    Properties:
      CorsConfiguration:
        CorsRules:
          - {AllowedOrigins: [!Ref FrontendOrigin], AllowedMethods: [GET, PUT], AllowedHeaders: ["*"], MaxAge: 3000}
  DataKey:
    Type: AWS::KMS::Key
    Properties: {Description: data key}
  DataKeyAlias:
    Type: AWS::KMS::Alias
    Properties:
      AliasName: !Sub "alias/relasify-${StageName}"
      TargetKeyId: !Ref DataKey
"""


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer("127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_url(moto_server: MotoServer) -> str:
    # moto keeps its state per process, shared by every server and mock: start each test empty.
    httpx.post(f"{moto_server.url}/moto-api/reset").raise_for_status()
    return moto_server.url


def _nothing_listens_on(port: int) -> bool:
    """True when a connection to the port is refused (TIME_WAIT leftovers do not count)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_template_resources_are_created_and_environment_resolved(moto_url: str, tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    template = load_template(tmp_path / "template.yaml")

    resources = bootstrap_resources(template, moto_url, app_secret="s3cret", verify_token="v3rify")

    sqs = aws_client("sqs", moto_url)
    queue = resources.queues["WebhookQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": resources.queues["WebhookDLQ"].arn,
        "maxReceiveCount": 4,
    }
    assert attributes["VisibilityTimeout"] == "180"
    assert queue.max_receive_count == 4
    assert queue.dead_letter_logical_id == "WebhookDLQ"

    dynamodb = aws_client("dynamodb", moto_url)
    ttl = dynamodb.describe_time_to_live(TableName="relasify-table")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"

    s3 = aws_client("s3", moto_url)
    s3.head_bucket(Bucket="relasify-media")
    cors = s3.get_bucket_cors(Bucket="relasify-media")["CORSRules"]
    assert cors[0]["AllowedOrigins"] == ["http://localhost:5173"]
    assert cors[0]["MaxAgeSeconds"] == 3000
    kms = aws_client("kms", moto_url)
    assert kms.describe_key(KeyId="alias/relasify")["KeyMetadata"]["KeyId"] == resources.kms_keys["DataKey"]
    assert kms.describe_key(KeyId="alias/relasify-local")["KeyMetadata"]["KeyId"] == resources.kms_keys["DataKey"]
    ciphertext = kms.encrypt(KeyId="alias/relasify", Plaintext=b"token")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"token"

    ssm = aws_client("ssm", moto_url)
    secret = ssm.get_parameter(Name="/relasify/whatsapp/app-secret", WithDecryption=True)["Parameter"]
    assert secret["Type"] == "SecureString"
    assert secret["Value"] == "s3cret"
    verify = ssm.get_parameter(Name="/relasify/whatsapp/verify-token", WithDecryption=True)["Parameter"]
    assert verify["Value"] == "v3rify"

    env = resources.function_environment(template)
    assert env["TABLE_NAME"] == "relasify-table"
    assert env["WEBHOOK_QUEUE_URL"] == queue.url
    assert env["MEDIA_BUCKET"] == "relasify-media"
    assert env["STAGE"] == "local"
    assert env["DLQ_ARN"] == resources.queues["WebhookDLQ"].arn
    assert env["LITERAL"] == "hello"
    assert env["KMS_KEY_ID"] == "alias/relasify"


def test_the_repository_template_bootstraps(moto_url: str) -> None:
    """Whatever template.yaml declares today must come up locally (queues keep their redrive)."""
    template = load_template(TEMPLATE_PATH)

    resources = bootstrap_resources(template, moto_url, app_secret="a", verify_token="b")

    sqs = aws_client("sqs", moto_url)
    for logical_id, resource in resources_of_type("AWS::SQS::Queue", template).items():
        attributes = sqs.get_queue_attributes(QueueUrl=resources.queues[logical_id].url, AttributeNames=["All"])
        if (resource.get("Properties") or {}).get("RedrivePolicy"):
            assert "RedrivePolicy" in attributes["Attributes"], logical_id
    assert set(resources.tables) == set(resources_of_type("AWS::DynamoDB::Table", template))
    env = resources.function_environment(template)
    for name in ("TABLE_NAME", "MEDIA_BUCKET", "KMS_KEY_ID"):
        assert env[name], name
    for variable, value in env.items():
        if variable.endswith("_QUEUE_URL"):
            assert value.startswith(moto_url), variable


def test_moto_server_releases_its_port_on_stop() -> None:
    server = MotoServer("127.0.0.1", 0)
    server.start()
    port = server.get_host_and_port()[1]
    server.stop()

    assert _nothing_listens_on(port)


def test_a_busy_port_fails_fast_instead_of_hanging() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match="in use"):
            MotoServer("127.0.0.1", busy.getsockname()[1]).start()
