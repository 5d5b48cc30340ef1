"""Infrastructure tests: `template.yaml` lints clean and its CloudFormation (after the SAM
transform, run offline) keeps the product's security, retention and reliability promises.

Everything here is offline: cfn-lint and samtranslator ship their schemas and policy templates.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from relasify.settings import Settings
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
SAMCONFIG_PATH = REPO_ROOT / "samconfig.toml"
REGION = "ap-southeast-3"

# docs/ARCHITECTURE.md: logical id -> (CodeUri, Handler)
FUNCTIONS: dict[str, tuple[str, str]] = {
    "WebhookReceiverFunction": ("functions/webhook/", "receiver.handler"),
    "WebhookProcessorFunction": ("functions/webhook/", "processor.handler"),
    "MediaWorkerFunction": ("functions/webhook/", "media.handler"),
    "SendApiFunction": ("functions/send/", "send_api.handler"),
    "BroadcastWorkerFunction": ("functions/send/", "broadcast_worker.handler"),
    "ContactsApiFunction": ("functions/contacts/", "contacts_api.handler"),
    "ImportWorkerFunction": ("functions/contacts/", "import_worker.handler"),
    "NotFoundFunction": ("functions/contacts/", "not_found.handler"),
    "RetentionSweepFunction": ("functions/retention/", "sweep.handler"),
    "RealtimeConnectionFunction": ("functions/realtime/", "connection.handler"),
    "RealtimePublisherFunction": ("functions/realtime/", "publisher.handler"),
    "ApiAuthorizerFunction": ("functions/authorizer/", "authorizer.handler"),  # Cognito JWTs and API keys
    "WebhookDeliveryFunction": ("functions/integrations/", "webhook_delivery.handler"),
}

# docs/ARCHITECTURE.md: (method, path) -> function. OPTIONS preflight routes are checked separately.
# Meta's webhook is not an API route: the receiver's own function URL serves it (test below).
ROUTES: dict[tuple[str, str], str] = {
    ("ANY", "/v1/workspaces/{ws}/messages"): "SendApiFunction",
    ("ANY", "/v1/workspaces/{ws}/messages/{proxy+}"): "SendApiFunction",
    ("ANY", "/v1/workspaces/{ws}/templates"): "SendApiFunction",
    ("ANY", "/v1/workspaces/{ws}/templates/{proxy+}"): "SendApiFunction",
    ("ANY", "/v1/workspaces/{ws}/broadcasts"): "SendApiFunction",
    ("ANY", "/v1/workspaces/{ws}/broadcasts/{proxy+}"): "SendApiFunction",
    ("ANY", "/v1/workspaces/{ws}/media"): "SendApiFunction",  # uploads to send (SPEC 5a)
    ("ANY", "/v1/workspaces"): "ContactsApiFunction",
    ("ANY", "/v1/workspaces/{proxy+}"): "ContactsApiFunction",
    ("ANY", "/v1/me"): "ContactsApiFunction",
    ("ANY", "/v1/me/{proxy+}"): "ContactsApiFunction",
    ("ANY", "/v1/realtime/{proxy+}"): "ContactsApiFunction",  # WebSocket tickets (SPEC 5b)
    ("GET", "/health"): "ContactsApiFunction",
    # Whatever no route serves: a 404 problem+json (SPEC section 10), not API Gateway's bare 404.
    ("ANY", "$default"): "NotFoundFunction",
}
PUBLIC_ROUTES = {
    ("GET", "/health"),
    ("ANY", "$default"),
}

# SQS consumer -> queue it polls, and queue -> its DLQ.
CONSUMERS = {
    "WebhookProcessorFunction": "WebhookQueue",
    "MediaWorkerFunction": "MediaQueue",
    "BroadcastWorkerFunction": "BroadcastQueue",
    "ImportWorkerFunction": "ImportQueue",
    "WebhookDeliveryFunction": "OutgoingWebhookQueue",
}
DEAD_LETTER_QUEUES = {
    "WebhookQueue": "WebhookDLQ",
    "MediaQueue": "MediaDLQ",
    "BroadcastQueue": "BroadcastDLQ",
    "ImportQueue": "ImportDLQ",
    "OutgoingWebhookQueue": "OutgoingWebhookDLQ",
}

# Privacy policy section 7 defaults (days): template parameter -> (default, Settings field).
RETENTION_DEFAULTS = {
    "RetentionMessageDays": (90, "retention_message_days"),
    "RetentionUsageDays": (365, "retention_usage_days"),
    "RetentionSecurityDays": (730, "retention_security_days"),
    "RetentionBillingDays": (2555, "retention_billing_days"),
    "RetentionAccountAfterClosureDays": (90, "retention_account_after_closure_days"),
}


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sam_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text())


@pytest.fixture(scope="module")
def cfn(sam_template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation that the SAM transform produces, computed offline.

    Local CodeUri/ContentUri paths are replaced by S3 URIs first, as `sam package` would do.
    No managed policy is referenced by name, so the managed-policy map (an IAM call) is empty.
    """
    packaged = copy.deepcopy(sam_template)
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://artifacts/{props[key].strip('/')}.zip"
    translator = Translator(
        managed_policy_map={},
        sam_parser=Parser(),
        boto_session=boto3.session.Session(region_name=REGION),
    )
    return translator.translate(packaged, parameter_values={}, get_managed_policy_map=dict)


@pytest.fixture(scope="module")
def cfn_lint_run() -> subprocess.CompletedProcess[str]:
    """One cfn-lint run per session, exactly as `cfn-lint template.yaml` from the repo root."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", "template.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def resources(cfn: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == resource_type}


def props(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return cfn["Resources"][logical_id]["Properties"]


def mentions(value: Any, logical_id: str) -> bool:
    """True if an intrinsic inside `value` refers to `logical_id` (Ref, GetAtt or Sub)."""
    text = json.dumps(value)
    return f'"{logical_id}"' in text or f"${{{logical_id}." in text or f"${{{logical_id}}}" in text


def role_statements(cfn: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    role_id = props(cfn, function_id)["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in props(cfn, role_id).get("Policies", []):
        statements.extend(policy["PolicyDocument"]["Statement"])
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_actions_on(cfn: dict[str, Any], function_id: str, logical_id: str) -> set[str]:
    """Actions the function's inline policies allow on resources that refer to `logical_id`."""
    actions: set[str] = set()
    for statement in role_statements(cfn, function_id):
        if statement["Effect"] == "Allow" and any(mentions(r, logical_id) for r in as_list(statement["Resource"])):
            actions.update(as_list(statement["Action"]))
    return actions


def http_api_operations(cfn: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, OpenAPI operation) for every route of the HTTP API."""
    for path, methods in props(cfn, "HttpApi")["Body"]["paths"].items():
        for method, operation in methods.items():
            name = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            yield name, path, operation


def env_of(cfn: dict[str, Any], function_id: str) -> dict[str, Any]:
    return props(cfn, function_id)["Environment"]["Variables"]


# ------------------------------------------------------------------ lint and transform


def test_cfn_lint_reports_no_errors_or_warnings(cfn_lint_run: subprocess.CompletedProcess[str]) -> None:
    assert cfn_lint_run.returncode == 0, cfn_lint_run.stdout + cfn_lint_run.stderr


def test_sam_transform_produces_every_function_and_no_unexpected_lambda(cfn: dict[str, Any]) -> None:
    assert set(resources(cfn, "AWS::Lambda::Function")) == set(FUNCTIONS)


# ------------------------------------------------------------------ data and retention


def test_ttl_is_enabled_on_the_table_with_the_attribute_the_code_writes(cfn: dict[str, Any]) -> None:
    assert props(cfn, "Table")["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # One table: sends are idempotent through their outbox items (data/outbox.py), not a table of their own.
    assert set(resources(cfn, "AWS::DynamoDB::Table")) == {"Table"}


def test_single_table_keeps_the_schema_contract(cfn: dict[str, Any]) -> None:
    table = props(cfn, "Table")
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert list(indexes) == ["GSI1", "GSI2", "ByExpiry", "InboxByStatus", "Timeline"]
    # The inbox index projects what its listings filter on and no more (docs/INBOX.md): a status
    # tick or a new preview must not rewrite its entries.
    assert indexes["InboxByStatus"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["assignee_sub", "unread_count", "snoozed_until", "expires_at"],
    }
    # Likewise the thread's index (docs/DATA_MODEL.md): only what a message's put sets and nothing
    # changes after it, so a status update rewrites no entry.
    assert indexes["Timeline"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["direction", "expires_at"],
    }
    attribute_types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert attribute_types["expires_at"] == "N", "DynamoDB TTL only honours Number attributes"
    assert cfn["Resources"]["Table"]["DeletionPolicy"] == "Retain"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_retention_parameters_default_to_the_privacy_policy_and_match_settings(sam_template: dict[str, Any]) -> None:
    parameters = sam_template["Parameters"]
    settings_defaults = Settings.model_fields
    for name, (days, field) in RETENTION_DEFAULTS.items():
        assert parameters[name]["Default"] == days, name
        assert settings_defaults[field].default == days, field
    assert (
        parameters["DefaultSendRatePerSecond"]["Default"]
        == 80
        == settings_defaults["default_send_rate_per_second"].default
    )


def test_sweep_grace_period_defaults_to_settings_and_reaches_only_the_sweep(
    sam_template: dict[str, Any], cfn: dict[str, Any]
) -> None:
    """The sweep leaves items to DynamoDB's free TTL deletes for this many days after expiry."""
    parameter = sam_template["Parameters"]["RetentionSweepGraceDays"]
    assert parameter["Default"] == 3 == Settings.model_fields["retention_sweep_grace_days"].default
    assert mentions(env_of(cfn, "RetentionSweepFunction")["RETENTION_SWEEP_GRACE_DAYS"], "RetentionSweepGraceDays")
    others = [f for f in FUNCTIONS if f != "RetentionSweepFunction"]
    assert not [f for f in others if "RETENTION_SWEEP_GRACE_DAYS" in env_of(cfn, f)]


def test_bucket_lifecycle_expires_message_content_at_the_message_retention(sam_template: dict[str, Any]) -> None:
    rules = {
        rule["Id"]: rule
        for rule in sam_template["Resources"]["MediaBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    by_prefix = {rule.get("Prefix"): rule for rule in rules.values() if rule["Status"] == "Enabled"}
    assert by_prefix["media/"]["ExpirationInDays"] == {"Ref": "RetentionMessageDays"}
    assert by_prefix["raw-webhooks/"]["ExpirationInDays"] == {"Ref": "RetentionMessageDays"}
    assert by_prefix["imports/"]["ExpirationInDays"] <= 7
    assert by_prefix["exports/"]["ExpirationInDays"] <= 1
    assert any(rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") for rule in rules.values())


# ------------------------------------------------------------------ encryption and transport


def test_data_key_encrypts_the_table_the_bucket_every_queue_and_the_alarm_topic(cfn: dict[str, Any]) -> None:
    sse = props(cfn, "Table")["SSESpecification"]
    assert sse["SSEEnabled"] is True
    assert sse["SSEType"] == "KMS"
    assert sse["KMSMasterKeyId"] == {"Ref": "DataKey"}

    (bucket_rule,) = props(cfn, "MediaBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket_rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert mentions(bucket_rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], "DataKey")
    assert bucket_rule["BucketKeyEnabled"] is True

    queues = resources(cfn, "AWS::SQS::Queue")
    assert len(queues) == 11
    for name, queue in queues.items():
        assert queue["Properties"].get("KmsMasterKeyId") == {"Ref": "DataKey"}, name

    for name, topic in resources(cfn, "AWS::SNS::Topic").items():
        assert topic["Properties"].get("KmsMasterKeyId") == {"Ref": "DataKey"}, name

    assert props(cfn, "DataKey")["EnableKeyRotation"] is True


def test_bucket_is_private_and_refuses_plain_http(cfn: dict[str, Any]) -> None:
    bucket = props(cfn, "MediaBucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    # Versioning would keep erased media as noncurrent versions.
    assert bucket.get("VersioningConfiguration", {}).get("Status") != "Enabled"
    (policy,) = resources(cfn, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "MediaBucket"}
    deny = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)


def test_every_queue_refuses_plain_http(cfn: dict[str, Any]) -> None:
    covered: set[str] = set()
    for policy in resources(cfn, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ):
            covered.update(ref["Ref"] for ref in policy["Properties"]["Queues"])
    assert covered == set(resources(cfn, "AWS::SQS::Queue"))


# ------------------------------------------------------------------ API and identity


def test_every_v1_route_requires_the_caller_authorizer(cfn: dict[str, Any]) -> None:
    """One Lambda REQUEST authorizer for Cognito ID tokens and API keys (SPEC 5c; an HTTP API route
    takes one authorizer), cached 300 s per Authorization value (docs/API_KEYS.md)."""
    body = props(cfn, "HttpApi")["Body"]
    authorizer = body["components"]["securitySchemes"]["CallerAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == ["$request.header.Authorization"]
    assert authorizer["authorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["enableSimpleResponses"] is True
    assert authorizer["authorizerResultTtlInSeconds"] == 300
    assert mentions(authorizer["authorizerUri"], "ApiAuthorizerFunction")
    permission = props(cfn, "HttpApiCallerAuthorizerAuthorizerPermission")
    assert mentions(permission["FunctionName"], "ApiAuthorizerFunction")
    assert permission["Principal"] == "apigateway.amazonaws.com"
    # The JWT checks the JWT authorizer made: this pool's issuer, this app client as audience.
    env = env_of(cfn, "ApiAuthorizerFunction")
    assert env["JWT_ISSUER"] == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    assert env["JWT_AUDIENCE"] == {"Ref": "UserPoolClient"}

    v1_routes = [(m, p, op) for m, p, op in http_api_operations(cfn) if p.startswith("/v1") and m != "OPTIONS"]
    assert len(v1_routes) == 12
    for method, path, operation in v1_routes:
        assert operation["security"] == [{"CallerAuthorizer": []}], f"{method} {path} is not behind the authorizer"


def test_the_authorizer_reads_api_key_lookups_and_nothing_else(cfn: dict[str, Any]) -> None:
    [statement] = role_statements(cfn, "ApiAuthorizerFunction")
    assert as_list(statement["Action"]) == ["dynamodb:GetItem"]
    assert mentions(statement["Resource"], "Table")
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["APIKEY#*"]}}
    assert (REPO_ROOT / "functions/authorizer/requirements.txt").read_text().count("pyjwt[crypto]==") == 1


def test_tokens_say_whether_the_email_is_verified(cfn: dict[str, Any]) -> None:
    """Invitations are matched only on `email_verified` true (SPEC §3): Google users get the claim
    from Google's id token, and a Cognito user's changed address counts only once confirmed."""
    google = props(cfn, "GoogleIdentityProvider")
    assert google["AttributeMapping"]["email_verified"] == "email_verified"
    assert google["AttributeMapping"]["email"] == "email"
    pool = props(cfn, "UserPool")
    assert pool["AutoVerifiedAttributes"] == ["email"]
    assert pool["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}


def test_only_webhooks_health_and_cors_preflights_are_public(cfn: dict[str, Any]) -> None:
    public = {(m, p) for m, p, op in http_api_operations(cfn) if op["security"] == [{"NONE": []}]}
    preflights = {(m, p) for m, p in public if m == "OPTIONS"}
    assert public - preflights == PUBLIC_ROUTES
    # Each ANY route behind the authorizer catches its CORS preflight too; an unauthenticated OPTIONS
    # route must shadow it ($default is public: its preflight needs no route of its own).
    any_paths = {p for (m, p) in ROUTES if m == "ANY" and (m, p) not in PUBLIC_ROUTES}
    assert preflights == {("OPTIONS", p) for p in any_paths}


def test_routes_reach_the_functions_of_the_architecture(cfn: dict[str, Any]) -> None:
    routed: dict[tuple[str, str], str] = {}
    for method, path, operation in http_api_operations(cfn):
        uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        (function_id,) = [f for f in FUNCTIONS if f"${{{f}.Arn}}" in uri]
        routed[(method, path)] = function_id
    assert {route: fn for route, fn in routed.items() if route[0] != "OPTIONS"} == ROUTES
    for (method, path), function_id in routed.items():
        if method == "OPTIONS":
            assert routed[("ANY", path)] == function_id


def _evaluate(value: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> Any:
    """The few intrinsic functions the CORS configuration uses, evaluated as CloudFormation would."""
    if isinstance(value, list):
        return [_evaluate(item, parameters, conditions) for item in value]
    if not isinstance(value, dict) or len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
        return {k: _evaluate(v, parameters, conditions) for k, v in value.items()} if isinstance(value, dict) else value
    ((name, argument),) = value.items()
    if name == "Ref":
        return parameters[argument]
    if name == "Fn::Sub":
        return re.sub(r"\$\{(\w+)\}", lambda m: parameters[m.group(1)], argument)
    if name == "Fn::Split":
        return _evaluate(argument[1], parameters, conditions).split(argument[0])
    if name == "Fn::Equals":
        return _evaluate(argument[0], parameters, conditions) == _evaluate(argument[1], parameters, conditions)
    if name == "Fn::Not":
        return not _evaluate(argument[0], parameters, conditions)
    if name == "Fn::If":
        chosen = argument[1] if _evaluate(conditions[argument[0]], parameters, conditions) else argument[2]
        return _evaluate(chosen, parameters, conditions)
    raise AssertionError(f"unexpected intrinsic {name}")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", ["https://app.relasify.id"]),
        ("https://preview.relasify.pages.dev", ["https://app.relasify.id", "https://preview.relasify.pages.dev"]),
        (
            "https://main.relasify.pages.dev,http://localhost:5173",
            ["https://app.relasify.id", "https://main.relasify.pages.dev", "http://localhost:5173"],
        ),
    ],
    ids=["frontend-only", "one-preview", "preview-and-localhost"],
)
def test_cors_allows_the_frontend_and_the_configured_extra_origins(
    sam_template: dict[str, Any], extra: str, expected: list[str]
) -> None:
    values = {"FrontendOrigin": "https://app.relasify.id", "CorsExtraOrigins": extra}
    config = sam_template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    cors = _evaluate(config, values, sam_template["Conditions"])
    assert cors == {
        "AllowOrigins": expected,
        "AllowMethods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        "AllowHeaders": ["authorization", "content-type", "idempotency-key"],
        "ExposeHeaders": ["location", "retry-after"],
        "MaxAge": 600,  # no AllowCredentials: bearer tokens, no cookies
    }


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("", True),
        ("https://preview.relasify.pages.dev", True),
        ("https://a.relasify.pages.dev,http://localhost:5173", True),
        ("https://*.relasify-preview.pages.dev", False),  # HTTP API CORS has no subdomain wildcards
        ("*", False),
        ("https://a.example, https://b.example", False),  # a space would become part of the origin
        ("https://a.example/", False),
    ],
)
def test_extra_cors_origins_must_be_exact_origins(sam_template: dict[str, Any], value: str, allowed: bool) -> None:
    parameter = sam_template["Parameters"]["CorsExtraOrigins"]
    assert parameter["Default"] == ""  # each stage allows only its own frontend unless told otherwise
    assert (re.fullmatch(parameter["AllowedPattern"], value) is not None) is allowed


def test_transformed_cors_keeps_every_setting_in_both_branches(cfn: dict[str, Any]) -> None:
    # SAM copies an intrinsic CorsConfiguration into the OpenAPI body as is (keys lower-cased).
    condition, with_extra, frontend_only = props(cfn, "HttpApi")["Body"]["x-amazon-apigateway-cors"]["Fn::If"]
    assert condition == "HasCorsExtraOrigins"
    assert {k: v for k, v in with_extra.items() if k != "allowOrigins"} == {
        k: v for k, v in frontend_only.items() if k != "allowOrigins"
    }
    assert set(frontend_only) == {"allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge"}


def test_functions_know_the_extra_cors_origins(cfn: dict[str, Any]) -> None:
    for function_id in FUNCTIONS:
        assert mentions(env_of(cfn, function_id)["CORS_EXTRA_ORIGINS"], "CorsExtraOrigins"), function_id


def test_http_api_writes_access_logs_to_a_log_group_with_retention(cfn: dict[str, Any]) -> None:
    stage = props(cfn, "HttpApiApiGatewayDefaultStage")
    log_group_id = stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert "RetentionInDays" in props(cfn, log_group_id)
    assert "$context.identity.sourceIp" not in stage["AccessLogSettings"]["Format"], "no personal data in access logs"


def test_http_api_throttles_every_route(cfn: dict[str, Any]) -> None:
    stage = props(cfn, "HttpApiApiGatewayDefaultStage")
    default = stage["DefaultRouteSettings"]
    # Every route is capped for all callers together (the per-user and per-workspace budgets are
    # the functions' own): the ceiling protects the account's 10,000 requests/s from one route.
    assert 0 < default["ThrottlingRateLimit"] <= 1000
    assert default["ThrottlingRateLimit"] <= default["ThrottlingBurstLimit"] <= 5000
    per_route = stage["RouteSettings"]
    routes = {path if path == "$default" else f"{method} {path}" for method, path, _ in http_api_operations(cfn)}
    assert set(per_route) <= routes, f"settings for routes that do not exist: {set(per_route) - routes}"
    # The public health check uptime monitors use gets a trickle, not 1,000/s.
    assert per_route["GET /health"]["ThrottlingRateLimit"] <= 10
    assert per_route["GET /health"]["ThrottlingBurstLimit"] <= 20
    # Unknown paths (the public $default route's 404s) are throttled well below the /v1 routes.
    assert per_route["$default"]["ThrottlingRateLimit"] < default["ThrottlingRateLimit"] / 10


def test_metas_webhook_is_the_receiver_s_public_function_url_capped_by_reserved_concurrency(
    sam_template: dict[str, Any], cfn: dict[str, Any]
) -> None:
    """No API Gateway in front of Meta's webhook: the function URL (AuthType NONE, the signature is the
    authentication) with the receiver's reserved concurrency as its only cap, a template parameter."""
    (url_id,) = resources(cfn, "AWS::Lambda::Url")
    url = props(cfn, url_id)
    assert url["AuthType"] == "NONE"
    assert url["TargetFunctionArn"] == {"Ref": "WebhookReceiverFunction"}
    # Public invocation through the URL only: both permissions Lambda requires for a new URL.
    permissions = [p["Properties"] for p in resources(cfn, "AWS::Lambda::Permission").values()]
    through_url = [p for p in permissions if p["FunctionName"] == {"Ref": "WebhookReceiverFunction"}]
    assert {p["Action"] for p in through_url} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(p["Principal"] == "*" for p in through_url)
    for permission in through_url:
        assert permission.get("FunctionUrlAuthType") == "NONE" or permission.get("InvokedViaFunctionUrl") is True
    receiver = props(cfn, "WebhookReceiverFunction")
    assert receiver["ReservedConcurrentExecutions"] == {"Ref": "WebhookReceiverReservedConcurrency"}
    # Meta's bursts: ~3,000 status webhooks/s at ~40 ms each need ~120 concurrent executions.
    assert sam_template["Parameters"]["WebhookReceiverReservedConcurrency"]["Default"] >= 120
    # No API route reaches the receiver any more.
    assert all("WebhookReceiverFunction" not in json.dumps(op) for _, _, op in http_api_operations(cfn))
    assert cfn["Outputs"]["WebhookUrl"]["Value"] == {
        "Fn::Sub": "${WebhookReceiverFunctionUrl.FunctionUrl}webhooks/whatsapp"
    }


def test_api_request_budget_parameters_default_to_the_settings(
    sam_template: dict[str, Any], cfn: dict[str, Any]
) -> None:
    parameters = sam_template["Parameters"]
    fields = Settings.model_fields
    for parameter, field in (
        ("ApiUserRatePerSecond", "api_user_rate_per_second"),
        ("ApiUserBurst", "api_user_burst"),
        ("ApiWorkspaceRatePerSecond", "api_workspace_rate_per_second"),
        ("ApiWorkspaceBurst", "api_workspace_burst"),
    ):
        assert parameters[parameter]["Default"] == fields[field].default, parameter
        for function_id in ("ContactsApiFunction", "SendApiFunction"):
            assert env_of(cfn, function_id)[field.upper()] == {"Ref": parameter}, (function_id, field)


def test_user_pool_federates_google_with_optional_totp_mfa(sam_template: dict[str, Any], cfn: dict[str, Any]) -> None:
    parameters = sam_template["Parameters"]
    assert parameters["MfaConfiguration"]["Default"] == "OPTIONAL"
    assert set(parameters["MfaConfiguration"]["AllowedValues"]) == {"OFF", "OPTIONAL"}
    assert parameters["GoogleClientSecret"]["NoEcho"] is True

    pool = props(cfn, "UserPool")
    assert pool["MfaConfiguration"] == {"Ref": "MfaConfiguration"}
    assert json.dumps(pool["EnabledMfas"]).count("SOFTWARE_TOKEN_MFA") == 1

    google = props(cfn, "GoogleIdentityProvider")
    assert google["ProviderType"] == "Google"
    assert google["ProviderDetails"]["client_id"] == {"Ref": "GoogleClientId"}
    assert google["ProviderDetails"]["client_secret"] == {"Ref": "GoogleClientSecret"}

    client = props(cfn, "UserPoolClient")
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["GenerateSecret"] is False
    assert any(mentions(url, "FrontendOrigin") for url in client["CallbackURLs"])
    assert mentions(client["SupportedIdentityProviders"], "GoogleIdentityProvider")
    assert "UserPoolDomain" in cfn["Resources"]


# ------------------------------------------------------------------ functions


# Per-event functions: their INFO lines are routine and dropped before ingestion, and they record no
# X-Ray trace of their own (docs/SCALING.md, cost per lifecycle).
HOT_PATH_FUNCTIONS = {
    "WebhookReceiverFunction",
    "WebhookProcessorFunction",
    "MediaWorkerFunction",
    "RealtimePublisherFunction",
}
PASS_THROUGH_TRACING = {"WebhookReceiverFunction", "WebhookProcessorFunction"}
# Functions that publish Powertools metrics (embedded metric format): their log groups stay Standard.
EMF_FUNCTIONS = {"SendApiFunction", "ContactsApiFunction", "BroadcastWorkerFunction", "RetentionSweepFunction"}


def test_functions_run_python313_on_arm64_with_the_domain_layer_and_tracing(cfn: dict[str, Any]) -> None:
    (layer_id,) = resources(cfn, "AWS::Lambda::LayerVersion")
    layer = props(cfn, layer_id)
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    for function_id, (_, handler) in FUNCTIONS.items():
        function = props(cfn, function_id)
        assert function["Runtime"] == "python3.13", function_id
        assert function["Architectures"] == ["arm64"], function_id
        assert function["Handler"] == handler, function_id
        assert function["Layers"] == [{"Ref": layer_id}], function_id
        if function_id == "SendApiFunction":  # a parameter: traced only while someone investigates
            assert function["TracingConfig"] == {"Mode": {"Ref": "SendApiTracing"}}
            continue
        mode = "PassThrough" if function_id in PASS_THROUGH_TRACING else "Active"
        assert function["TracingConfig"] == {"Mode": mode}, function_id


def test_the_send_api_is_untraced_unless_the_operator_switches_tracing_on(sam_template: dict[str, Any]) -> None:
    parameter = sam_template["Parameters"]["SendApiTracing"]
    assert parameter["Default"] == "PassThrough"
    assert parameter["AllowedValues"] == ["Active", "PassThrough"]
    send = sam_template["Resources"]["SendApiFunction"]["Properties"]
    assert send["Tracing"] == {"Ref": "SendApiTracing"}


def test_functions_log_json_filtered_by_level_without_platform_lines(cfn: dict[str, Any]) -> None:
    template = yaml_parse(TEMPLATE_PATH.read_text())
    parameters, mappings = template["Parameters"], template["Mappings"]
    assert parameters["HotPathLogLevel"]["Default"] == "WARN"
    # The LogLevel parameter (Powertools' names) maps onto Lambda's names, one for one.
    assert {name: mappings["LambdaLogLevels"][name]["Name"] for name in parameters["LogLevel"]["AllowedValues"]} == {
        "DEBUG": "DEBUG",
        "INFO": "INFO",
        "WARNING": "WARN",
        "ERROR": "ERROR",
    }
    for function_id in FUNCTIONS:
        config = props(cfn, function_id)["LoggingConfig"]
        assert config["LogFormat"] == "JSON", function_id  # level filtering needs JSON
        assert config["SystemLogLevel"] == "WARN", function_id  # no START/END/REPORT lines
        if function_id in HOT_PATH_FUNCTIONS:
            assert config["ApplicationLogLevel"] == {"Ref": "HotPathLogLevel"}, function_id
        else:
            assert config["ApplicationLogLevel"] == {"Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "Name"]}
        assert "LogGroup" in config, function_id


def test_log_groups_are_infrequent_access_unless_metrics_are_extracted_from_them(cfn: dict[str, Any]) -> None:
    assert not resources(cfn, "AWS::Logs::MetricFilter")  # Infrequent Access groups cannot have any
    assert not resources(cfn, "AWS::Logs::SubscriptionFilter")
    for function_id in FUNCTIONS:
        log_group = props(cfn, props(cfn, function_id)["LoggingConfig"]["LogGroup"]["Ref"])
        expected = "STANDARD" if function_id in EMF_FUNCTIONS else "INFREQUENT_ACCESS"
        assert log_group.get("LogGroupClass", "STANDARD") == expected, function_id
    access_logs = props(cfn, "HttpApiApiGatewayDefaultStage")["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert props(cfn, access_logs)["LogGroupClass"] == "INFREQUENT_ACCESS"


def test_functions_that_publish_metrics_are_the_ones_with_standard_log_groups() -> None:
    for function_id, (code_uri, handler) in FUNCTIONS.items():
        source = (REPO_ROOT / code_uri / (handler.split(".")[0] + ".py")).read_text()
        assert ("metrics.log_metrics" in source) == (function_id in EMF_FUNCTIONS), function_id


def test_domain_layer_is_built_by_sam_for_python313_arm64(sam_template: dict[str, Any]) -> None:
    layer = sam_template["Resources"]["DomainLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/domain/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    # The Makefile installs wheels for that platform and compiles our package (test_layer_build.py).
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (REPO_ROOT / "layers/domain/Makefile").read_text()
    assert "RUNTIME_PYTHON_VERSION := 3.13" in makefile
    assert "PLATFORM ?= manylinux2014_aarch64" in makefile
    assert (REPO_ROOT / "layers/domain/requirements.txt").is_file()
    assert (REPO_ROOT / "layers/domain/relasify/__init__.py").is_file()


def test_function_code_directories_exist(sam_template: dict[str, Any]) -> None:
    for function_id, (code_uri, _) in FUNCTIONS.items():
        assert sam_template["Resources"][function_id]["Properties"]["CodeUri"] == code_uri
        assert (REPO_ROOT / code_uri).is_dir(), code_uri


def test_every_handler_module_exists(sam_template: dict[str, Any]) -> None:
    missing = []
    for function_id in FUNCTIONS:
        function = sam_template["Resources"][function_id]["Properties"]
        module = function["Handler"].rsplit(".", 1)[0].replace(".", "/")
        if not (REPO_ROOT / function["CodeUri"] / f"{module}.py").is_file():
            missing.append(f"{function_id}: {function['CodeUri']}{module}.py")
    assert not missing, f"handler files missing: {missing}"


def test_environment_carries_every_shared_setting_under_its_settings_name(cfn: dict[str, Any]) -> None:
    settings_names = {name.upper() for name in Settings.model_fields}
    expected_refs = {
        "TABLE_NAME": "Table",
        "MEDIA_BUCKET": "MediaBucket",
        "WEBHOOK_QUEUE_URL": "WebhookQueue",
        "MEDIA_QUEUE_URL": "MediaQueue",
        "BROADCAST_QUEUE_URL": "BroadcastQueue",
        "IMPORT_QUEUE_URL": "ImportQueue",
        "WEBHOOK_DLQ_URL": "WebhookDLQ",
        "MEDIA_DLQ_URL": "MediaDLQ",
        "BROADCAST_DLQ_URL": "BroadcastDLQ",
        "IMPORT_DLQ_URL": "ImportDLQ",
        "KMS_KEY_ID": "DataKey",
        "APP_SECRET_PARAMETER": "AppSecretParameterName",
        "VERIFY_TOKEN_PARAMETER": "VerifyTokenParameterName",
        "CURSOR_SIGNING_KEY_PARAMETER": "CursorSigningKeyParameterName",
        "ERASURE_HASH_KEY_PARAMETER": "ErasureHashKeyParameterName",
        "GRAPH_API_VERSION": "GraphApiVersion",
        "RETENTION_MESSAGE_DAYS": "RetentionMessageDays",
        "RETENTION_USAGE_DAYS": "RetentionUsageDays",
        "RETENTION_SECURITY_DAYS": "RetentionSecurityDays",
        "RETENTION_BILLING_DAYS": "RetentionBillingDays",
        "RETENTION_ACCOUNT_AFTER_CLOSURE_DAYS": "RetentionAccountAfterClosureDays",
        "DEFAULT_SEND_RATE_PER_SECOND": "DefaultSendRatePerSecond",
    }
    for function_id in FUNCTIONS:
        env = env_of(cfn, function_id)
        for variable, logical_id in expected_refs.items():
            assert variable in settings_names, f"{variable} is not a Settings field"
            assert mentions(env[variable], logical_id), f"{function_id}.{variable}"
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)
        # The level is LoggingConfig's (test_functions_log_json_filtered_by_level_without_platform_lines).
        assert "POWERTOOLS_LOG_LEVEL" not in env, function_id
        unknown = {v for v in env if not v.startswith("POWERTOOLS_")} - settings_names - {"FRONTEND_ORIGIN"}
        assert not unknown, f"{function_id} sets variables Settings does not read: {unknown}"
        assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", "responses hold personal data"


def test_every_function_logs_to_its_own_log_group_with_retention(cfn: dict[str, Any]) -> None:
    log_groups = set()
    for function_id in FUNCTIONS:
        log_group_id = props(cfn, function_id)["LoggingConfig"]["LogGroup"]["Ref"]
        assert cfn["Resources"][log_group_id]["Type"] == "AWS::Logs::LogGroup"
        assert "RetentionInDays" in props(cfn, log_group_id)
        log_groups.add(log_group_id)
    assert len(log_groups) == len(FUNCTIONS)


def test_the_api_functions_log_groups_keep_the_usage_log_for_the_usage_window(cfn: dict[str, Any]) -> None:
    """Every function serving /v1 through the shared resolver logs one usage line per request
    (relasify/web/usage.py): its log group is the usage log, kept as long as the usage class."""
    usage_days = cfn["Parameters"]["RetentionUsageDays"]["Default"]
    api_functions = ("SendApiFunction", "ContactsApiFunction")
    for function_id in api_functions:
        log_group_id = props(cfn, function_id)["LoggingConfig"]["LogGroup"]["Ref"]
        assert props(cfn, log_group_id)["RetentionInDays"] == usage_days == 365
    handlers = REPO_ROOT / "functions"
    serving = {p.parent.name + "/" + p.name for p in handlers.glob("*/*.py") if "create_app()" in p.read_text()}
    assert serving == {"send/send_api.py", "contacts/contacts_api.py"}


# ------------------------------------------------------------------ queues and events


def test_every_work_queue_redrives_to_its_own_dlq(cfn: dict[str, Any]) -> None:
    queues = resources(cfn, "AWS::SQS::Queue")
    for queue, dlq in DEAD_LETTER_QUEUES.items():
        redrive = queues[queue]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
        assert 1 < redrive["maxReceiveCount"] <= 10
    dead_letter = set(DEAD_LETTER_QUEUES.values()) | {"SweepDLQ"}
    assert set(queues) == set(DEAD_LETTER_QUEUES) | dead_letter
    for dlq in dead_letter:
        assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 1209600, "keep failures for 14 days"


def test_every_dead_letter_queue_has_an_alarm(cfn: dict[str, Any]) -> None:
    alarmed = set()
    for alarm in resources(cfn, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        if p.get("Namespace") == "AWS/SQS" and p["MetricName"] == "ApproximateNumberOfMessagesVisible":
            assert p["Threshold"] == 0
            assert p["ComparisonOperator"] == "GreaterThanThreshold"
            assert p["AlarmActions"], "an alarm nobody hears is useless"
            (dimension,) = p["Dimensions"]
            alarmed.add(dimension["Value"]["Fn::GetAtt"][0])
    assert alarmed == set(DEAD_LETTER_QUEUES.values()) | {"SweepDLQ"}


def test_sqs_event_sources_report_partial_batch_failures(cfn: dict[str, Any]) -> None:
    mappings = resources(cfn, "AWS::Lambda::EventSourceMapping")
    consumed = {}
    for mapping in mappings.values():
        p = mapping["Properties"]
        if p["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn":
            continue  # the change feed's stream: test_change_feed_stream_feeds_only_new_events_to_the_publisher
        assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 1 <= p["BatchSize"] <= 10
        consumed[p["FunctionName"]["Ref"]] = p["EventSourceArn"]["Fn::GetAtt"][0]
    assert consumed == CONSUMERS


def test_queue_visibility_timeout_is_at_least_six_times_the_consumer_timeout(cfn: dict[str, Any]) -> None:
    for function_id, queue in CONSUMERS.items():
        timeout = props(cfn, function_id)["Timeout"]
        assert props(cfn, queue)["VisibilityTimeout"] >= 6 * timeout, queue


def test_retention_sweep_runs_daily_at_two_jakarta_time_with_retries_and_dlq(cfn: dict[str, Any]) -> None:
    (schedule,) = resources(cfn, "AWS::Scheduler::Schedule").values()
    p = schedule["Properties"]
    assert p["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert p["ScheduleExpressionTimezone"] == "Asia/Jakarta"
    assert p["State"] == "ENABLED"
    assert mentions(p["Name"], "EnvironmentName"), "schedule names are unique per account and region"
    target = p["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["RetentionSweepFunction", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["SweepDLQ", "Arn"]}}

    # The scheduler's role must be able to invoke the sweep and write to the KMS-encrypted DLQ.
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    statements = [s for pol in props(cfn, role_id)["Policies"] for s in pol["PolicyDocument"]["Statement"]]

    def can(action: str, logical_id: str) -> bool:
        return any(action in as_list(s["Action"]) and mentions(s["Resource"], logical_id) for s in statements)

    assert can("lambda:InvokeFunction", "RetentionSweepFunction")
    assert can("sqs:SendMessage", "SweepDLQ")
    assert can("kms:GenerateDataKey", "DataKey")


# ------------------------------------------------------------------ least privilege


def test_no_function_policy_grants_wildcard_actions_or_deny_less_star_resources(cfn: dict[str, Any]) -> None:
    for function_id in FUNCTIONS:
        for statement in role_statements(cfn, function_id):
            for action in as_list(statement["Action"]):
                assert action != "*", function_id
                assert not action.endswith(":*"), f"{function_id}: {action}"
            assert statement["Resource"] != "*", f"{function_id}: {statement}"


def test_queue_sends_are_limited_to_each_function_s_producer_role(cfn: dict[str, Any]) -> None:
    may_send = {
        "WebhookReceiverFunction": {"WebhookQueue"},
        # The processor parks an inline delivery's last try in the DLQ as a pointer to its raw copy.
        "WebhookProcessorFunction": {"MediaQueue", "WebhookDLQ"},
        "SendApiFunction": {"BroadcastQueue"},
        "BroadcastWorkerFunction": {"BroadcastQueue"},
        # Erasure puts back a DLQ message without the erased person when it names others too.
        "ContactsApiFunction": {"ImportQueue", "WebhookDLQ", "MediaDLQ", "BroadcastDLQ", "ImportDLQ"},
        "ImportWorkerFunction": {"ImportQueue"},  # continues a long import in a fresh invocation
        # Outgoing webhooks: the stream consumer fans out, the worker re-enqueues a failed attempt with a delay.
        "RealtimePublisherFunction": {"OutgoingWebhookQueue"},
        "WebhookDeliveryFunction": {"OutgoingWebhookQueue"},
    }
    queues = resources(cfn, "AWS::SQS::Queue")
    for function_id in FUNCTIONS:
        sends = {
            q for q in queues if any(a.startswith("sqs:SendMessage") for a in allowed_actions_on(cfn, function_id, q))
        }
        assert sends == may_send.get(function_id, set()), function_id
        if sends:
            assert {"kms:GenerateDataKey", "kms:Decrypt"} <= allowed_actions_on(cfn, function_id, "DataKey")


def test_webhook_receiver_reads_its_secrets_writes_raw_payloads_and_cannot_read_the_table(cfn: dict[str, Any]) -> None:
    table_actions = allowed_actions_on(cfn, "WebhookReceiverFunction", "Table")
    assert table_actions == {"dynamodb:UpdateItem"}  # the security-log counter, nothing else
    [counter] = [
        s for s in role_statements(cfn, "WebhookReceiverFunction") if "dynamodb:UpdateItem" in as_list(s["Action"])
    ]
    assert counter["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SECURITY#*"]}}
    for parameter in ("AppSecretParameterName", "VerifyTokenParameterName"):
        assert "ssm:GetParameter" in allowed_actions_on(cfn, "WebhookReceiverFunction", parameter)
    statements = role_statements(cfn, "WebhookReceiverFunction")
    raw_puts = [s for s in statements if "s3:PutObject" in as_list(s["Action"])]
    assert raw_puts
    assert all("/raw-webhooks/*" in json.dumps(s["Resource"]) for s in raw_puts)
    # Only the receiver handles the Meta secrets.
    for function_id in set(FUNCTIONS) - {"WebhookReceiverFunction"}:
        assert not allowed_actions_on(cfn, function_id, "AppSecretParameterName"), function_id


def test_only_the_account_and_send_apis_can_encrypt_access_tokens(cfn: dict[str, Any]) -> None:
    for function_id in FUNCTIONS:
        kms = allowed_actions_on(cfn, function_id, "DataKey")
        can_encrypt = "kms:Encrypt" in kms
        assert can_encrypt == (function_id == "ContactsApiFunction"), function_id  # PUT /whatsapp only


def test_table_and_bucket_access_per_function(cfn: dict[str, Any]) -> None:
    # The $default route's function touches nothing: its role has no inline policy at all.
    assert role_statements(cfn, "NotFoundFunction") == []
    assert allowed_actions_on(cfn, "RealtimeConnectionFunction", "Table") == {"dynamodb:PutItem", "dynamodb:DeleteItem"}
    # Stream reads are the event source mapping's (SAM's AWSLambdaDynamoDBExecutionRole), not the code's.
    assert allowed_actions_on(cfn, "RealtimePublisherFunction", "Table") == {"dynamodb:Query", "dynamodb:DeleteItem"}
    realtime = {"RealtimeConnectionFunction", "RealtimePublisherFunction"}
    readers_only = {"ApiAuthorizerFunction"}  # test_the_authorizer_reads_api_key_lookups_and_nothing_else
    for function_id in set(FUNCTIONS) - {"WebhookReceiverFunction", "NotFoundFunction"} - realtime - readers_only:
        table_actions = allowed_actions_on(cfn, function_id, "Table")
        assert {"dynamodb:GetItem", "dynamodb:UpdateItem"} <= table_actions, function_id
        assert "dynamodb:Scan" not in table_actions, function_id  # nothing scans the table

    def s3_grants(function_id: str) -> set[tuple[str, str]]:
        grants = set()
        for statement in role_statements(cfn, function_id):
            for resource in as_list(statement["Resource"]):
                if mentions(resource, "MediaBucket"):
                    for action in as_list(statement["Action"]):
                        grants.add((action, json.dumps(resource)))
        return grants

    def prefixes(function_id: str, action: str) -> set[str]:
        return {
            prefix
            for a, resource in s3_grants(function_id)
            if a == action
            for prefix in ("media/", "raw-webhooks/", "imports/", "exports/")
            if f"/{prefix}*" in resource
        }

    assert prefixes("MediaWorkerFunction", "s3:PutObject") == {"media/"}
    assert prefixes("ImportWorkerFunction", "s3:GetObject") == {"imports/"}
    # Exports are written by the worker; raw-webhooks/: erasure's copy of a dead letter without the person.
    assert prefixes("ContactsApiFunction", "s3:PutObject") == {"imports/", "raw-webhooks/"}
    assert prefixes("ContactsApiFunction", "s3:GetObject") == {"imports/", "exports/", "raw-webhooks/"}
    assert "media/" in prefixes("ContactsApiFunction", "s3:DeleteObject"), "erasure removes media at once"
    # Raw webhook payloads expire by the bucket's lifecycle rule; the processor discards them sooner.
    assert prefixes("RetentionSweepFunction", "s3:DeleteObject") == {"media/", "imports/", "exports/"}
    # Media: presigned POSTs of uploads only under media/<ws>/uploads/; reads of media/ (links, sends of uploads).
    assert s3_grants("SendApiFunction") == {
        ("s3:PutObject", json.dumps({"Fn::Sub": "${MediaBucket.Arn}/media/*/uploads/*"})),
        ("s3:GetObject", json.dumps({"Fn::Sub": "${MediaBucket.Arn}/media/*"})),
    }
    assert not s3_grants("BroadcastWorkerFunction")


# ------------------------------------------------------------------ outputs and deploy config


def test_outputs_expose_what_the_frontend_and_operators_need(cfn: dict[str, Any]) -> None:
    assert {"ApiUrl", "WebhookUrl", "TableName", "MediaBucketName", "UserPoolId", "UserPoolClientId"} <= set(
        cfn["Outputs"]
    )


def test_samconfig_deploys_to_jakarta_with_lint_and_known_parameters(sam_template: dict[str, Any]) -> None:
    config = tomllib.loads(SAMCONFIG_PATH.read_text())
    assert config["version"] == 0.1
    template_parameters = set(sam_template["Parameters"])
    for environment in ("default", "prod"):
        section = config[environment]
        assert section["global"]["parameters"]["region"] == "ap-southeast-3"
        assert section["build"]["parameters"] == {"cached": True, "parallel": True}
        assert section["validate"]["parameters"]["lint"] is True
        deploy = section["deploy"]["parameters"]
        assert "CAPABILITY_IAM" in deploy["capabilities"].split()
        assert deploy["resolve_s3"] is True
        overrides = dict(item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))
        assert set(overrides) <= template_parameters, set(overrides) - template_parameters
        assert "GoogleClientSecret" not in overrides, "secrets never go into samconfig.toml"
        assert overrides["EnvironmentName"] == ("dev" if environment == "default" else "prod")


def test_only_the_job_worker_writes_export_files(cfn: dict[str, Any]) -> None:
    """The contacts API hands out export downloads and erases them; writing them is the worker's."""

    def actions_on_prefix(function_id: str, prefix: str) -> set[str]:
        found: set[str] = set()
        for statement in role_statements(cfn, function_id):
            if statement["Effect"] == "Allow" and any(prefix in json.dumps(r) for r in as_list(statement["Resource"])):
                found.update(as_list(statement["Action"]))
        return found

    assert actions_on_prefix("ContactsApiFunction", "/exports/*") == {"s3:GetObject", "s3:DeleteObject"}
    assert "s3:PutObject" in actions_on_prefix("ImportWorkerFunction", "/exports/*")
    assert "s3:PutObject" in actions_on_prefix("ContactsApiFunction", "/imports/*")  # presigned uploads


def test_signing_keys_come_from_ssm_and_only_their_users_read_them(cfn: dict[str, Any]) -> None:
    """Cursor signing and erasure hashing keys are SSM SecureStrings (never template values or plain
    environment), readable by the functions that use them and no other."""
    parameters = cfn["Parameters"]
    assert "ErasureHashKey" not in parameters
    assert "CursorSigningKey" not in parameters
    readers = {"CursorSigningKeyParameterName": set(), "ErasureHashKeyParameterName": set()}
    for function_id in FUNCTIONS:
        for statement in role_statements(cfn, function_id):
            if statement["Effect"] == "Allow" and "ssm:GetParameter" in as_list(statement["Action"]):
                for name in readers:
                    if any(mentions(r, name) for r in as_list(statement["Resource"])):
                        readers[name].add(function_id)
    # The broadcast worker continues a tag audience past one page from a signed cursor.
    assert readers["CursorSigningKeyParameterName"] == {
        "ContactsApiFunction",
        "SendApiFunction",
        "BroadcastWorkerFunction",
    }
    # The send API's role guard signs callers in, which reads account-deletion markers (HMACs under the key).
    assert readers["ErasureHashKeyParameterName"] == {
        "ContactsApiFunction",
        "SendApiFunction",
        "WebhookProcessorFunction",
    }


def test_only_the_account_api_deletes_cognito_users_and_only_in_its_own_pool(cfn: dict[str, Any]) -> None:
    """DELETE /v1/me removes the caller's Cognito user: ListUsers (to find them by sub) and
    AdminDeleteUser on the template's user pool, for the account API only, nothing else in Cognito."""
    for function_id in FUNCTIONS:
        cognito = [
            statement
            for statement in role_statements(cfn, function_id)
            if any(str(action).startswith("cognito-idp:") for action in as_list(statement["Action"]))
        ]
        if function_id != "ContactsApiFunction":
            assert not cognito, function_id
            assert "USER_POOL_ID" not in env_of(cfn, function_id), function_id
            continue
        assert len(cognito) == 1, cognito
        assert cognito[0]["Effect"] == "Allow"
        assert sorted(as_list(cognito[0]["Action"])) == ["cognito-idp:AdminDeleteUser", "cognito-idp:ListUsers"]
        assert as_list(cognito[0]["Resource"]) == [{"Fn::GetAtt": ["UserPool", "Arn"]}]
        assert mentions(env_of(cfn, function_id)["USER_POOL_ID"], "UserPool")


def test_data_key_policy_lets_cloudwatch_use_the_key_only_for_this_account(cfn: dict[str, Any]) -> None:
    """Confused deputy: a service principal without an aws:SourceAccount condition would let another
    account's CloudWatch alarms encrypt and decrypt with the data key."""
    statements = props(cfn, "DataKey")["KeyPolicy"]["Statement"]
    service_statements = [s for s in statements if "Service" in s["Principal"]]
    assert service_statements
    for statement in service_statements:
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, statement


# ------------------------------------------------------------------ real-time (SPEC 5b)


def test_change_feed_stream_feeds_only_new_events_to_the_publisher(cfn: dict[str, Any]) -> None:
    assert props(cfn, "Table")["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    streams = [
        m["Properties"]
        for m in resources(cfn, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"]["Fn::GetAtt"] == ["Table", "StreamArn"]
    ]
    assert len(streams) == 1
    (mapping,) = streams
    assert mapping["FunctionName"] == {"Ref": "RealtimePublisherFunction"}
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    # New items only (a TTL delete is a REMOVE), and only change-feed items.
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "CHG#"}]}}}}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] >= 1


def test_websocket_api_routes_connect_and_disconnect_to_the_connection_function(cfn: dict[str, Any]) -> None:
    api = props(cfn, "RealtimeApi")
    assert api["ProtocolType"] == "WEBSOCKET"
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in resources(cfn, "AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == {"$connect", "$disconnect"}
    integration = props(cfn, "RealtimeIntegration")
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert "${RealtimeConnectionFunction.Arn}" in integration["IntegrationUri"]["Fn::Sub"]
    permission = props(cfn, "RealtimeConnectionPermission")
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert "${RealtimeApi}/*" in permission["SourceArn"]["Fn::Sub"]


def test_publisher_manages_connections_of_its_own_api_stage_only(cfn: dict[str, Any]) -> None:
    statements = [
        st
        for policy in props(cfn, "RealtimePublisherFunctionRole")["Policies"]
        for st in policy["PolicyDocument"]["Statement"]
        if "execute-api:ManageConnections" in st["Action"]
    ]
    (statement,) = statements
    assert statement["Action"] == ["execute-api:ManageConnections"]
    assert statement["Resource"]["Fn::Sub"].endswith(":${RealtimeApi}/${RealtimeStage}/POST/@connections/*")


def test_webhook_processor_parks_the_last_try_on_the_queue_s_last_receive(cfn: dict[str, Any]) -> None:
    """The processor parks an inline delivery's last try in the DLQ itself (with a 90-day raw copy):
    it must know the receive on which SQS would move the message, and be allowed to park it."""
    redrive = props(cfn, "WebhookQueue")["RedrivePolicy"]
    assert int(env_of(cfn, "WebhookProcessorFunction")["WEBHOOK_MAX_RECEIVES"]) == redrive["maxReceiveCount"]
    assert "sqs:SendMessage" in allowed_actions_on(cfn, "WebhookProcessorFunction", "WebhookDLQ")
    statements = role_statements(cfn, "WebhookProcessorFunction")
    raw_puts = [s for s in statements if "s3:PutObject" in as_list(s["Action"])]
    assert raw_puts
    assert all("/raw-webhooks/*" in json.dumps(s["Resource"]) for s in raw_puts)


def test_webhook_processor_batches_within_a_one_second_window(cfn: dict[str, Any]) -> None:
    """Latency vs invocations (the comment in template.yaml): batches of 10 gathered for at most 1 s."""
    (mapping,) = [
        p
        for p in (r["Properties"] for r in resources(cfn, "AWS::Lambda::EventSourceMapping").values())
        if p["FunctionName"] == {"Ref": "WebhookProcessorFunction"}
    ]
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
