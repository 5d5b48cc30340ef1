"""LocalStack in-process on a throwaway repository: the functions get the environment the
template declares (resolved to moto), an API function enqueues, the poller feeds the worker,
a poison message ends in the DLQ, the timer runs the scheduled function, and stop() restores
the process environment and frees every port."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import httpx
import jwt
import pytest
from relasify_local.jwt_local import LOCAL_AUDIENCE, LOCAL_ISSUER, mint_token
from relasify_local.stack import LocalStack, StackConfig

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        WORK_QUEUE_URL: !Ref WorkQueue
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: PK, AttributeType: S}]
      KeySchema: [{AttributeName: PK, KeyType: HASH}]
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 30
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDLQ.Arn, maxReceiveCount: 2}
  WorkDLQ:
    Type: AWS::SQS::Queue
  JobsApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/jobs/
      Handler: jobs_api.handler
      Events:
        Create: {Type: HttpApi, Properties: {Path: /v1/jobs, Method: POST}}
        Health: {Type: HttpApi, Properties: {Path: /health, Method: GET, Auth: {Authorizer: NONE}}}
  JobsWorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/jobs/
      Handler: jobs_worker.handler
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  SweepFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/jobs/
      Handler: sweep.handler
      Events:
        Daily: {Type: ScheduleV2, Properties: {ScheduleExpression: "cron(0 2 * * ? *)"}}
"""

JOBS_API = """
import json, os
import boto3

sqs = boto3.client("sqs")

def handler(event, context):
    if event["rawPath"] == "/health":
        return {"statusCode": 200, "body": json.dumps({"status": "ok"})}
    sub = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    body = json.loads(event["body"])
    sqs.send_message(QueueUrl=os.environ["WORK_QUEUE_URL"], MessageBody=json.dumps({"sub": sub, **body}))
    return {"statusCode": 202, "body": json.dumps({"queued": True})}
"""

JOBS_WORKER = """
import json, os
import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])

def handler(event, context):
    failures = []
    for record in event["Records"]:
        job = json.loads(record["body"])
        if job.get("poison"):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        table.put_item(Item={"PK": "JOB#" + job["name"], "owner": job["sub"]})
    return {"batchItemFailures": failures}
"""

SWEEP = """
import os
import boto3

def handler(event, context):
    boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"]).put_item(
        Item={"PK": "SWEEP#" + event["id"], "source": event["source"]}
    )
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    repo = tmp_path_factory.mktemp("repo")
    (repo / "template.yaml").write_text(TEMPLATE)
    (repo / "functions" / "jobs").mkdir(parents=True)
    for name, source in {"jobs_api.py": JOBS_API, "jobs_worker.py": JOBS_WORKER, "sweep.py": SWEEP}.items():
        (repo / "functions" / "jobs" / name).write_text(textwrap.dedent(source))
    config = StackConfig(
        repo_root=repo,
        http_port=0,
        moto_port=0,
        realtime_port=0,
        state_dir=repo / ".state",
        enable_sandbox=False,
        sweep_initial_delay_seconds=0.1,
        visibility_timeout_seconds=1,
    )
    environ_before = dict(os.environ)
    with LocalStack(config) as running:
        yield running
    assert dict(os.environ) == environ_before


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _table(stack: LocalStack):
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=stack.moto_url,
        region_name="ap-southeast-3",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return dynamodb.Table(stack.environment["TABLE_NAME"])


def _nothing_listens_on(port: int) -> bool:
    """True when a connection to the port is refused (TIME_WAIT leftovers do not count)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_api_enqueues_and_the_poller_feeds_the_worker(stack: LocalStack) -> None:
    token = mint_token("owner@example.com", sub="owner-1", state_dir=stack.state_dir)

    response = httpx.post(
        f"{stack.base_url}/v1/jobs", json={"name": "first"}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 202
    table = _table(stack)
    assert _eventually(lambda: "Item" in table.get_item(Key={"PK": "JOB#first"}))
    assert table.get_item(Key={"PK": "JOB#first"})["Item"]["owner"] == "owner-1"


def test_poison_message_is_redriven_to_the_dead_letter_queue(stack: LocalStack) -> None:
    token = mint_token("owner@example.com", state_dir=stack.state_dir)
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.moto_url,
        region_name="ap-southeast-3",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    dlq_url = stack.resources.queues["WorkDLQ"].url

    httpx.post(
        f"{stack.base_url}/v1/jobs", json={"name": "bad", "poison": True}, headers={"Authorization": f"Bearer {token}"}
    )

    def in_dlq() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        return attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"

    assert _eventually(in_dlq, timeout=20)
    assert "Item" not in _table(stack).get_item(Key={"PK": "JOB#bad"})


def test_unauthorised_calls_never_reach_the_function(stack: LocalStack) -> None:
    response = httpx.post(f"{stack.base_url}/v1/jobs", json={"name": "sneaky"})

    assert response.status_code == 401
    time.sleep(0.5)
    assert "Item" not in _table(stack).get_item(Key={"PK": "JOB#sneaky"})


def test_the_timer_runs_the_scheduled_function_shortly_after_start(stack: LocalStack) -> None:
    table = _table(stack)

    assert _eventually(lambda: any(i["PK"].startswith("SWEEP#") for i in table.scan()["Items"]))


def test_functions_see_the_template_environment_resolved_to_moto(stack: LocalStack) -> None:
    env = stack.environment

    assert env["AWS_ENDPOINT_URL"] == stack.moto_url
    assert env["WORK_QUEUE_URL"] == stack.resources.queues["WorkQueue"].url
    assert env["TABLE_NAME"] == "relasify-table"
    assert env["AWS_DEFAULT_REGION"] == "ap-southeast-3"
    assert env["GRAPH_API_BASE_URL"].startswith("http://127.0.0.1")


def test_stop_frees_every_port(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    stack = LocalStack(
        StackConfig(repo_root=tmp_path, http_port=0, moto_port=0, state_dir=tmp_path / "s", enable_sandbox=False)
    ).start()
    ports = [int(stack.base_url.rsplit(":", 1)[1]), int(stack.moto_url.rsplit(":", 1)[1])]

    stack.stop()

    assert all(_nothing_listens_on(port) for port in ports)


def test_the_local_issuer_publishes_its_key_set(stack: LocalStack) -> None:
    token = mint_token("owner@example.com", state_dir=stack.state_dir)

    jwks = httpx.get(f"{stack.base_url}/local-issuer/.well-known/jwks.json").json()

    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=LOCAL_AUDIENCE, issuer=LOCAL_ISSUER)
    assert claims["email"] == "owner@example.com"
