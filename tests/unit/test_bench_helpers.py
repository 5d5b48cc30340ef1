"""Smoke tests of the benchmark helpers at small sizes (no AWS: botocore's Stubber answers), so the
request counter, the capacity rules and the cost model do not rot between benchmark runs."""

from __future__ import annotations

from collections import Counter

import boto3
import pytest
from botocore.stub import Stubber

from bench import cost_model
from bench.aws_counter import Usage, count_aws
from bench.capacity import attribute_value_size, item_size
from bench.payloads import signature, status_item, status_payload
from bench.request_counts import FunctionSpan, Operation


def test_item_sizes_follow_dynamodb_rules() -> None:
    assert attribute_value_size({"S": "abc"}) == 3
    assert attribute_value_size({"S": "é"}) == 2  # UTF-8 bytes
    assert attribute_value_size({"BOOL": True}) == 1
    assert attribute_value_size({"N": "12345"}) == 4  # (5 digits + 1) // 2 + 1
    assert attribute_value_size({"L": [{"S": "ab"}]}) == 3 + 1 + 2
    assert attribute_value_size({"M": {"k": {"S": "ab"}}}) == 3 + 1 + 1 + 2
    assert item_size({"PK": {"S": "WS#1"}, "SK": {"S": "META"}}) == 2 + 4 + 2 + 4
    assert item_size(None) == 0


def _stubbed(service: str) -> tuple[object, Stubber]:
    client = boto3.client(service, region_name="ap-southeast-3", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_count_aws_counts_requests_capacity_and_sqs_chunks() -> None:
    sqs, sqs_stub = _stubbed("sqs")
    ddb, ddb_stub = _stubbed("dynamodb")
    sqs_stub.add_response("send_message", {"MessageId": "1", "MD5OfMessageBody": "x"})
    ddb_stub.add_response("get_item", {})
    ddb_stub.add_response("get_item", {})
    with sqs_stub, ddb_stub, count_aws() as counter:
        sqs.send_message(QueueUrl="https://sqs.ap-southeast-3.amazonaws.com/1/q", MessageBody="x" * (70 * 1024))
        key = {"PK": {"S": "a"}, "SK": {"S": "b"}}
        ddb.get_item(TableName="t", Key=key)
        ddb.get_item(TableName="t", Key=key, ConsistentRead=True)
        counter.forget("sqs:SendMessage")
        counter.forget("sqs:SendMessage")  # never below zero
    usage = counter.snapshot()
    assert usage.requests == Counter({"dynamodb:GetItem": 2, "sqs:SendMessage": 0})
    assert usage.sqs_billable == 1  # 70 KB is two 64 KB chunks; one request taken back
    assert usage.rcu == pytest.approx(1.5)  # missing items still cost the minimum: 0.5 + 1
    assert usage.wcu == 0


def test_counter_is_removed_after_the_block() -> None:
    sqs, stub = _stubbed("sqs")
    stub.add_response("send_message", {"MessageId": "1", "MD5OfMessageBody": "x"})
    with count_aws() as counter:
        pass
    with stub:
        sqs.send_message(QueueUrl="https://sqs.ap-southeast-3.amazonaws.com/1/q", MessageBody="x")
    assert counter.snapshot().requests == Counter()


def test_usage_arithmetic() -> None:
    a = Usage(Counter({"s3:PutObject": 2, "s3:GetObject": 1, "kms:Decrypt": 1}), 3.0, 1.0, 2, 0.5)
    b = Usage(Counter({"s3:PutObject": 1}), 1.0, 0.5, 1, 0.25)
    diff = a - b
    assert diff.requests == Counter({"s3:PutObject": 1, "s3:GetObject": 1, "kms:Decrypt": 1})
    assert (diff.wcu, diff.rcu, diff.sqs_billable) == (2.0, 0.5, 1)
    assert (a.s3_puts(), a.s3_gets(), a.service("kms")) == (2, 1, 1)


def test_webhook_payload_helpers_sign_what_they_build() -> None:
    payload = status_payload([status_item("wamid.1", "sent", "628120000001", callback="cb")])
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["pricing"]["billable"] is True
    assert status["biz_opaque_callback_data"] == "cb"
    assert signature(b"{}", "secret").startswith("sha256=")


def _op(name: str, *, wcu: float, requests: dict[str, int], seconds: float) -> Operation:
    usage = Usage(Counter(requests), wcu, 1.0, requests.get("sqs:SendMessage", 0), seconds / 2)
    function = "SendApiFunction" if name.startswith("send") else "WebhookProcessorFunction"
    return Operation(name, 1, "test", usage, {function: FunctionSpan(1, seconds, usage)})


def test_cost_model_adds_up_the_unit() -> None:
    ops = tuple(
        _op(name, wcu=2.0, requests={"dynamodb:UpdateItem": 1, "s3:PutObject": 1, "sqs:SendMessage": 1}, seconds=0.02)
        for name, _ in cost_model.UNIT
    )
    section = cost_model.run(ops)
    rows = {row[0]: row for row in section.rows}
    assert rows["DynamoDB write request units"][2] == "10,000,000"  # 5 operations x 2 WRU
    assert rows["S3 PUT requests"][4] == "25.00"  # 5M PUTs at USD 0.005 per 1,000
    assert rows["Lambda requests"][1] == "5"
    # The send's Graph API time is billed Lambda time.
    assert cost_model.lambda_ms("SendApiFunction", 0.02, ops[0]) >= cost_model.DURATION_MODEL["graph_send_ms"]


def test_cost_model_says_what_is_missing() -> None:
    section = cost_model.run((Operation("status webhook: sent", 1, "test", unavailable="not yet"),))
    assert any("not available yet" in row[-1] for row in section.rows)


def test_lifecycle_counting_counts_log_lines_by_function_and_level_whatever_is_printed() -> None:
    from relasify.observability import logger
    from relasify_local import aws_calls

    with count_aws(lifecycle=True) as counter, aws_calls.invoking("WebhookProcessorFunction", {}):
        logger.debug("below every level in use")
        logger.info("routine line")
        logger.warning("must survive WARN")
    with count_aws() as plain:  # timed benchmarks: nothing formatted, nothing counted
        logger.info("not counted")
    usage = counter.snapshot()
    assert usage.log_lines == Counter(
        {
            ("WebhookProcessorFunction", "DEBUG"): 1,
            ("WebhookProcessorFunction", "INFO"): 1,
            ("WebhookProcessorFunction", "WARNING"): 1,
        }
    )
    assert usage.log_bytes["WebhookProcessorFunction", "INFO"] > len("routine line")  # the JSON line, not the text
    assert plain.snapshot().log_lines == Counter()


_TEMPLATE = {
    "Parameters": {"LogLevel": {"Default": "INFO"}, "HotPathLogLevel": {"Default": "WARN"}},
    "Mappings": {"LambdaLogLevels": {"INFO": {"Name": "INFO"}, "WARNING": {"Name": "WARN"}}},
    "Globals": {
        "Function": {
            "MemorySize": 512,
            "Tracing": "Active",
            "Environment": {"Variables": {"POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"}}},
            "LoggingConfig": {
                "LogFormat": "JSON",
                "ApplicationLogLevel": {"Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "Name"]},
                "SystemLogLevel": "WARN",
            },
        }
    },
    "Resources": {
        "Hot": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "MemorySize": 256,
                "Tracing": "PassThrough",
                "LoggingConfig": {"LogGroup": {"Ref": "HotLogs"}, "ApplicationLogLevel": {"Ref": "HotPathLogLevel"}},
                "Events": {"Post": {"Type": "HttpApi", "Properties": {"Path": "/webhooks/whatsapp", "Method": "POST"}}},
            },
        },
        "HotLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupClass": "INFREQUENT_ACCESS"}},
        "Api": {"Type": "AWS::Serverless::Function", "Properties": {}},
        "OldStyle": {
            "Type": "AWS::Serverless::Function",
            "Properties": {"LoggingConfig": {"LogFormat": "Text"}},
        },
    },
}


def test_deployment_reads_the_template_as_sam_merges_its_globals() -> None:
    from bench.deployment import from_template

    deployment = from_template(_TEMPLATE)
    hot, api, old = (deployment.function(f) for f in ("Hot", "Api", "OldStyle"))
    assert (hot.memory_mb, hot.tracing, hot.log_group_class) == (256, "PassThrough", "INFREQUENT_ACCESS")
    assert (hot.application_log_level, hot.system_log_level, hot.log_format) == ("WARN", "WARN", "JSON")
    assert not hot.keeps("INFO")
    assert hot.keeps("WARNING")
    assert not hot.keeps_platform_lines
    assert (api.memory_mb, api.tracing, api.application_log_level, api.log_group_class) == (
        512,
        "Active",
        "INFO",
        "STANDARD",
    )
    assert old.keeps_platform_lines
    assert old.keeps("INFO")
    assert deployment.webhook_post_through_http_api


def test_cost_model_prices_logs_traces_and_sweep_by_the_template() -> None:
    import dataclasses

    from bench.capacity import ExpiringItem

    def op(name: str) -> Operation:
        function = "SendApiFunction" if name.startswith("send") else "WebhookProcessorFunction"
        usage = Usage(
            Counter({"dynamodb:UpdateItem": 1}),
            1.0,
            0.5,
            0,
            0.001,
            log_bytes=Counter({(function, "INFO"): 500, (function, "WARNING"): 300}),
            log_lines=Counter({(function, "INFO"): 1, (function, "WARNING"): 1}),
            expiring={f"item-{name}": ExpiringItem("MSG", delete_wcu=2, recheck_rcu=1.0, query_rcu=0.0)},
        )
        return Operation(name, 1, "test", usage, {function: FunctionSpan(1, 0.01, usage)})

    ops = {name: op(name) for name, _ in cost_model.UNIT}
    deployment = cost_model.deployment_config.load()
    verbose = dataclasses.replace(
        deployment,
        functions={
            f: dataclasses.replace(c, application_log_level="INFO", tracing="Active", system_log_level="INFO")
            for f, c in deployment.functions.items()
        },
    )
    _, quiet_lines = cost_model.total_usd(ops, deployment)
    _, verbose_lines = cost_model.total_usd(ops, verbose)
    handler_lines = [k for k in quiet_lines if k.startswith("CloudWatch Logs: handler lines")]
    assert sum(verbose_lines[k] for k in handler_lines) > sum(quiet_lines[k] for k in handler_lines)
    assert quiet_lines["X-Ray traces recorded"] < verbose_lines["X-Ray traces recorded"]
    platform = [k for k in quiet_lines if "START/END/REPORT" in k]
    assert sum(quiet_lines[k] for k in platform) == 0 < sum(verbose_lines[k] for k in platform)
    sweep = cost_model.sweep_units(ops, share=1.0)  # if TTL deleted nothing in time
    assert (sweep.items, sweep.wru, sweep.rru) == (5, 10, 5.0)  # one expiring item per operation
    assert cost_model.sweep_units(ops).wru == 10 * cost_model.SWEEP_SHARE_TODAY
    assert cost_model.sweep_units(ops, 0.1).wru == pytest.approx(1.0)
