"""AWS for the local stack: moto in server mode, and the template's resources created in it.

Tables, queues (with their dead-letter queues and redrive policies), buckets and the KMS key
are read from template.yaml, so local resources match what `sam deploy` creates. The Meta
app secret and verify token are seeded as SSM SecureString parameters, as in the cloud.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

from relasify_local import moto_expressions, moto_queries, moto_serialization, moto_sqs_limits, moto_transactions
from relasify_local.cfn import create_tables, resources_of_type
from relasify_local.runtime import REGION

logger = logging.getLogger("relasify_local")

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
KMS_ALIAS = "alias/relasify"
# Local values of the keys deployments keep in SSM (documented dev defaults, never used in the cloud).
LOCAL_KEYS = {
    "CURSOR_SIGNING_KEY_PARAMETER": "local-cursor-signing-key",
    "ERASURE_HASH_KEY_PARAMETER": "local-erasure-hash-key",
}
DEFAULT_APP_SECRET_PARAMETER = "/relasify/whatsapp/app-secret"  # noqa: S105 - a parameter name, not a secret
DEFAULT_VERIFY_TOKEN_PARAMETER = "/relasify/whatsapp/verify-token"  # noqa: S105 - a parameter name
# Physical names match Settings' defaults, so code run without the full environment still agrees.
_KNOWN_NAMES = {"Table": "relasify-table", "MediaBucket": "relasify-media"}
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "ContentBasedDeduplication",
)


_dynamodb_request_lock = threading.RLock()


def make_dynamodb_requests_atomic() -> None:
    """DynamoDB executes each request atomically (a TransactWriteItems checks every condition and
    writes every item as one step); moto's threaded server lets requests interleave. Serialising
    DynamoDB requests restores that guarantee, so concurrent API calls on the local stack see the
    same conditional-write outcomes as in the cloud. Idempotent."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_relasify_atomic", False):
        return
    original = DynamoHandler.call_action

    def atomic_call_action(self: Any) -> Any:
        with _dynamodb_request_lock:
            return original(self)

    atomic_call_action._relasify_atomic = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]


class _HostCachingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, answering "which backend serves this host" once per host string.

    moto finds the backend on every request by listing its package directory (a stat per service)
    and matching hundreds of URL patterns, under one lock: the largest single cost of the emulator
    under the broadcast benchmark (py-spy: ~14% of the server's samples). The answer depends only on
    the host string (the directory and the patterns are fixed at install), so it is kept per host.
    """

    MAX_CACHED_HOSTS = 1_000

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backend_by_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        try:
            return self._backend_by_host[host]
        except KeyError:
            backend = super().get_backend_for_host(host)
            if len(self._backend_by_host) < self.MAX_CACHED_HOSTS:
                self._backend_by_host[host] = backend
            return backend


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that binds in the caller's thread, so a busy port raises instead of hanging."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)

    def start(self) -> None:
        make_dynamodb_requests_atomic()
        moto_transactions.install()  # transactions cost O(items written), not O(table), as in DynamoDB
        moto_queries.install()  # a table Query reads one partition, not the whole table
        moto_expressions.install()  # an update expression is parsed once per distinct string
        moto_serialization.install()  # attribute values copied into responses, not walked member by member
        moto_sqs_limits.install()  # SQS refuses messages over 256 KiB (bytes, attributes included); moto did not
        app = _HostCachingDispatcher(create_backend_app)
        try:
            self._server = make_server(self._ip_address, self._port, app, threaded=True)
        except SystemExit as exc:  # werkzeug exits the process when the port is taken
            raise OSError(errno.EADDRINUSE, f"moto port {self._port} is in use") from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="relasify-moto", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Empty every moto backend. moto keeps state per process (shared by all servers and mocks),
        so a stack started after another one in the same process would otherwise see its resources."""
        httpx.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def aws_client(service: str, endpoint_url: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=REGION, **DUMMY_CREDENTIALS)


def kebab(logical_id: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", logical_id).lower()


def env_name(logical_id: str) -> str:
    return kebab(logical_id).replace("-", "_").upper()


@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str
    max_receive_count: int | None = None
    dead_letter_logical_id: str | None = None


@dataclass
class LocalResources:
    endpoint_url: str
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    queues: dict[str, LocalQueue] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    kms_keys: dict[str, str] = field(default_factory=dict)  # logical id -> key id
    parameters: dict[str, str] = field(default_factory=dict)  # template Parameters -> default values

    def ref(self, logical_id: str) -> str | None:
        """`!Ref` of a resource or parameter, as CloudFormation resolves it."""
        if logical_id in self.tables:
            return self.tables[logical_id]
        if logical_id in self.queues:
            return self.queues[logical_id].url
        if logical_id in self.buckets:
            return self.buckets[logical_id]
        if logical_id in self.kms_keys:
            return self.kms_keys[logical_id]
        if logical_id == "AWS::Region":
            return REGION
        return self.parameters.get(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> str | None:
        if logical_id in self.queues:
            queue = self.queues[logical_id]
            return {"Arn": queue.arn, "QueueName": queue.name, "QueueUrl": queue.url}.get(attribute)
        if logical_id in self.tables and attribute == "Arn":
            return f"arn:aws:dynamodb:{REGION}:123456789012:table/{self.tables[logical_id]}"
        if logical_id in self.buckets and attribute == "Arn":
            return f"arn:aws:s3:::{self.buckets[logical_id]}"
        if logical_id in self.kms_keys and attribute == "Arn":
            return f"arn:aws:kms:{REGION}:123456789012:key/{self.kms_keys[logical_id]}"
        return None

    def resolve(self, value: Any) -> str | None:
        """A template value with intrinsic functions resolved, or None when it cannot be resolved locally."""
        if isinstance(value, str | int | float | bool):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, dict) and "Ref" in value:
            return self.ref(str(value["Ref"]))
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            parts = target if isinstance(target, list) else str(target).split(".", 1)
            return self.get_att(str(parts[0]), str(parts[1])) if len(parts) == 2 else None
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            return self._substitute(value["Fn::Sub"])
        return None

    def _substitute(self, text: str) -> str | None:
        """`!Sub` in its string form; None if any `${...}` cannot be resolved locally."""
        unresolved = False

        def replace(match: re.Match[str]) -> str:
            nonlocal unresolved
            name = match.group(1)
            pseudo = {"AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
            if name in pseudo:
                return pseudo[name]
            logical_id, _, attribute = name.partition(".")
            resolved = self.get_att(logical_id, attribute) if attribute else self.ref(logical_id)
            if resolved is None:
                unresolved = True
                return ""
            return resolved

        result = re.sub(r"\$\{([^}!]+)\}", replace, text)
        return None if unresolved else result

    def queue_by_arn_reference(self, value: Any) -> LocalQueue | None:
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            logical_id = str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
            return self.queues.get(logical_id)
        if isinstance(value, dict) and "Ref" in value:
            return self.queues.get(str(value["Ref"]))
        return next((q for q in self.queues.values() if value in (q.arn, q.url)), None)

    def function_environment(self, template: dict[str, Any]) -> dict[str, str]:
        """Environment variables the functions read: conventional names, then the template's own, resolved."""
        env: dict[str, str] = {
            "POWERTOOLS_SERVICE_NAME": "relasify",
            "POWERTOOLS_METRICS_NAMESPACE": "Relasify",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "APP_SECRET_PARAMETER": DEFAULT_APP_SECRET_PARAMETER,
            "VERIFY_TOKEN_PARAMETER": DEFAULT_VERIFY_TOKEN_PARAMETER,
            "KMS_KEY_ID": KMS_ALIAS,
        }
        if "Table" in self.tables:
            env["TABLE_NAME"] = self.tables["Table"]
        if self.buckets:
            env["MEDIA_BUCKET"] = self.buckets.get("MediaBucket") or next(iter(self.buckets.values()))
        for queue in self.queues.values():
            env[f"{env_name(queue.logical_id)}_URL"] = queue.url
        declared: list[dict[str, Any]] = [
            ((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables") or {}
        ]
        for resource in resources_of_type("AWS::Serverless::Function", template).values():
            props = resource.get("Properties") or {}
            declared.append((props.get("Environment") or {}).get("Variables") or {})
        for variables in declared:
            for name, value in variables.items():
                resolved = self.resolve(value)
                if resolved is not None:
                    env[name] = resolved
        return env


def bootstrap_resources(
    template: dict[str, Any],
    endpoint_url: str,
    *,
    app_secret: str,
    verify_token: str,
    visibility_timeout_seconds: int | None = None,
) -> LocalResources:
    """Create the template's tables, queues, buckets and key in moto, and seed the WhatsApp secrets."""
    resources = LocalResources(endpoint_url=endpoint_url)
    for name, spec in (template.get("Parameters") or {}).items():
        if "Default" in spec:
            resources.parameters[name] = str(spec["Default"])

    _create_kms_keys(template, resources)
    _create_tables(template, resources)
    _create_queues(template, resources, visibility_timeout_seconds)
    _create_buckets(template, resources)

    env = resources.function_environment(template)
    ssm = aws_client("ssm", endpoint_url)
    seeded = [(env["APP_SECRET_PARAMETER"], app_secret), (env["VERIFY_TOKEN_PARAMETER"], verify_token)]
    # The signing and erasure keys, under the names the template gives the functions (dev values).
    for variable, value in LOCAL_KEYS.items():
        if env.get(variable):
            seeded.append((env[variable], value))
    for parameter_name, value in seeded:
        ssm.put_parameter(Name=parameter_name, Value=value, Type="SecureString", Overwrite=True)
    return resources


def _create_kms_keys(template: dict[str, Any], resources: LocalResources) -> None:
    kms = aws_client("kms", resources.endpoint_url)
    for logical_id, resource in resources_of_type("AWS::KMS::Key", template).items():
        description = str((resource.get("Properties") or {}).get("Description") or logical_id)
        resources.kms_keys[logical_id] = kms.create_key(Description=description)["KeyMetadata"]["KeyId"]
    if not resources.kms_keys:
        resources.kms_keys["DataKey"] = kms.create_key(Description="Relasify local data key")["KeyMetadata"]["KeyId"]
    aliases = {KMS_ALIAS: resources.kms_keys.get("DataKey") or next(iter(resources.kms_keys.values()))}
    for resource in resources_of_type("AWS::KMS::Alias", template).values():
        props = resource.get("Properties") or {}
        alias, target = resources.resolve(props.get("AliasName")), resources.resolve(props.get("TargetKeyId"))
        if alias and target:
            aliases[alias] = target
    for alias, key_id in aliases.items():
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)


def _create_tables(template: dict[str, Any], resources: LocalResources) -> None:
    logical_ids = resources_of_type("AWS::DynamoDB::Table", template)
    names = {logical_id: _KNOWN_NAMES.get(logical_id, f"relasify-{kebab(logical_id)}") for logical_id in logical_ids}
    create_tables(aws_client("dynamodb", resources.endpoint_url), names, template)
    resources.tables.update(names)


def _create_queues(template: dict[str, Any], resources: LocalResources, visibility_timeout: int | None) -> None:
    sqs = aws_client("sqs", resources.endpoint_url)
    pending = dict(resources_of_type("AWS::SQS::Queue", template))
    # Dead-letter queues first: a redrive policy names its DLQ's ARN.
    while pending:
        progressed = False
        for logical_id, resource in list(pending.items()):
            props = resource.get("Properties") or {}
            redrive = props.get("RedrivePolicy") or {}
            dlq = resources.queue_by_arn_reference(redrive.get("deadLetterTargetArn")) if redrive else None
            dlq_logical_id = _referenced_logical_id(redrive.get("deadLetterTargetArn")) if redrive else None
            if redrive and dlq is None and dlq_logical_id in pending:
                continue
            fifo = bool(props.get("FifoQueue"))
            name = f"relasify-{kebab(logical_id)}" + (".fifo" if fifo else "")
            attributes = {
                key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
                for key in _QUEUE_ATTRIBUTES
                if key in props
            }
            if fifo:
                attributes["FifoQueue"] = "true"
            if visibility_timeout is not None:
                attributes["VisibilityTimeout"] = str(visibility_timeout)
            max_receive = int(redrive["maxReceiveCount"]) if redrive and "maxReceiveCount" in redrive else None
            if dlq is not None and max_receive is not None:
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive}
                )
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            resources.queues[logical_id] = LocalQueue(
                logical_id, name, url, arn, max_receive, dlq.logical_id if dlq else None
            )
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise ValueError(f"unresolvable dead-letter references among queues {sorted(pending)}")


def _referenced_logical_id(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    return None


def _create_buckets(template: dict[str, Any], resources: LocalResources) -> None:
    s3 = aws_client("s3", resources.endpoint_url)
    buckets = resources_of_type("AWS::S3::Bucket", template) or {"MediaBucket": {}}
    for logical_id, resource in buckets.items():
        default_name = f"relasify-{kebab(logical_id.removesuffix('Bucket') or logical_id)}"
        name = _KNOWN_NAMES.get(logical_id, default_name)
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        resources.buckets[logical_id] = name
        cors_rules = ((resource.get("Properties") or {}).get("CorsConfiguration") or {}).get("CorsRules")
        if cors_rules:
            # Browsers use presigned URLs against the bucket: keep the template's CORS rules.
            s3.put_bucket_cors(
                Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(rule, resources) for rule in cors_rules]}
            )


def _cors_rule(rule: dict[str, Any], resources: LocalResources) -> dict[str, Any]:
    renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
    converted: dict[str, Any] = {}
    for key, value in rule.items():
        if isinstance(value, list):
            converted[renamed.get(key, key)] = [v for v in (resources.resolve(item) for item in value) if v is not None]
        elif key == "MaxAge":
            converted["MaxAgeSeconds"] = int(value)
        else:
            converted[renamed.get(key, key)] = resources.resolve(value)
    return converted
