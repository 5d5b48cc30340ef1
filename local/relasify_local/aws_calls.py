"""Records the AWS calls each local function makes, as the IAM actions and resources they need.

With `RELASIFY_RECORD_AWS_CALLS=<path>` the local stack appends one JSON line per AWS request a
function makes (and per presigned URL or POST form it signs, and per SQS batch its event source delivers):
`{"function": "BroadcastWorkerFunction", "call": "ssm.GetParameter", "action": "ssm:GetParameter",
"resource": "arn:aws:ssm:...:parameter/relasify/cursor-signing-key", "context": {}}`.
`tests/e2e/test_iam_policies_e2e.py` compares these lines with each function's policy in
template.yaml. moto checks no IAM, so without this a missing permission shows only in AWS.

All functions share one process here, so the calling function travels in a context variable set
around each invocation; `ThreadPoolExecutor.submit` is made to carry it into worker threads (in
Lambda every function is its own process, so a pool thread can only act for its own function).
Calls made outside any invocation (the stack's own bootstrap and pollers) are not recorded.

IAM action names follow the Service Authorization Reference: most API operations are the action
of the same name; the exceptions are mapped below (an S3 `ListObjectsV2` is `s3:ListBucket`, the
parts of a multipart upload are `s3:PutObject`, a DynamoDB transaction needs the action of each
item it contains, `TransactGetItems` needs `dynamodb:GetItem`, ...).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RECORD_ENV = "RELASIFY_RECORD_AWS_CALLS"
ACCOUNT_ID = "123456789012"

current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("relasify_function", default=None)

_installed = False
_write_lock = threading.Lock()
_path: Path | None = None

# S3 operations whose IAM action has another name.
_S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "DeleteObjects": "DeleteObject",
}
# DynamoDB transaction item kind -> the IAM action it needs (there is no TransactWriteItems action).
_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "ap-southeast-3"


def _table_arn(table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{_region()}:{ACCOUNT_ID}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _queue_arn(queue_url: str) -> str:
    return f"arn:aws:sqs:{_region()}:{ACCOUNT_ID}:{queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def _key_arn(key_id: str) -> str:
    if key_id.startswith("arn:"):
        return key_id
    if key_id.startswith("alias/"):
        return f"arn:aws:kms:{_region()}:{ACCOUNT_ID}:{key_id}"
    return f"arn:aws:kms:{_region()}:{ACCOUNT_ID}:key/{key_id}"


def iam_requests(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(IAM action, resource ARN, condition context) for each permission one API call needs."""
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            needed = []
            for item in params.get("TransactItems") or []:
                for kind, body in item.items():
                    action = "GetItem" if kind == "Get" else _TRANSACT_ITEM_ACTIONS.get(kind, kind)
                    pk = ((body.get("Key") or body.get("Item") or {}).get("PK") or {}).get("S")
                    context = {"dynamodb:LeadingKeys": pk} if pk else {}
                    needed.append((f"dynamodb:{action}", _table_arn(body["TableName"]), context))
            return needed
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{operation}", _table_arn(table), {}) for table in params.get("RequestItems") or {}]
        # The partition key, for policies conditioned on dynamodb:LeadingKeys (single-item operations).
        item_key = params.get("Key") or params.get("Item") or {}
        context = {"dynamodb:LeadingKeys": item_key["PK"]["S"]} if "S" in (item_key.get("PK") or {}) else {}
        return [(f"dynamodb:{operation}", _table_arn(params["TableName"], params.get("IndexName")), context)]
    if service == "s3":
        action = "s3:" + _S3_ACTIONS.get(operation, operation)
        bucket = params.get("Bucket", "")
        if operation in ("ListObjectsV2", "ListObjects"):
            return [(action, f"arn:aws:s3:::{bucket}", {"s3:prefix": str(params.get("Prefix", ""))})]
        if operation == "DeleteObjects":
            objects = (params.get("Delete") or {}).get("Objects") or []
            return [(action, f"arn:aws:s3:::{bucket}/{obj['Key']}", {}) for obj in objects]
        if "Key" in params:
            return [(action, f"arn:aws:s3:::{bucket}/{params['Key']}", {})]
        return [(action, f"arn:aws:s3:::{bucket}", {})]
    if service == "sqs":
        action = "sqs:SendMessage" if operation == "SendMessageBatch" else f"sqs:{operation}"
        if "QueueUrl" in params:
            return [(action, _queue_arn(params["QueueUrl"]), {})]
        return [(action, f"arn:aws:sqs:{_region()}:{ACCOUNT_ID}:{params.get('QueueName', '*')}", {})]
    if service == "ssm":
        names = params.get("Names") or [params.get("Name", "*")]
        return [(f"ssm:{operation}", f"arn:aws:ssm:{_region()}:{ACCOUNT_ID}:parameter{name}", {}) for name in names]
    if service == "kms":
        return [(f"kms:{operation}", _key_arn(str(params.get("KeyId") or "*")), {})]
    if service == "execute-api":  # the WebSocket API's management API (local: api id and stage "local")
        connection = str(params.get("ConnectionId", "*"))
        method = {"PostToConnection": "POST", "DeleteConnection": "DELETE"}.get(operation, "GET")
        arn = f"arn:aws:execute-api:{_region()}:{ACCOUNT_ID}:local/local/{method}/@connections/{connection}"
        return [("execute-api:ManageConnections", arn, {})]
    if service == "cognito-idp":
        pool = params.get("UserPoolId", "*")
        return [(f"cognito-idp:{operation}", f"arn:aws:cognito-idp:{_region()}:{ACCOUNT_ID}:userpool/{pool}", {})]
    return [(f"{service}:{operation}", "*", {})]


def record(call: str, needed: list[tuple[str, str, dict[str, str]]], function: str | None = None) -> None:
    function = function or current_function.get()
    if _path is None or function is None:
        return
    lines = [
        json.dumps({"function": function, "call": call, "action": action, "resource": resource, "context": context})
        for action, resource, context in needed
    ]
    with _write_lock, _path.open("a") as out:
        out.write("".join(line + "\n" for line in lines))


def _record_api_call(client: Any, operation: str, params: dict[str, Any], *, presigned: bool = False) -> None:
    if current_function.get() is None:
        return
    service = client.meta.service_model.signing_name
    call = f"{service}.{operation}" + (" (presigned URL)" if presigned else "")
    record(call, iam_requests(service, operation, params))


@contextlib.contextmanager
def invoking(logical_id: str, event: Any) -> Iterator[None]:
    """Attribute the AWS calls made during this invocation to the function; an SQS batch is
    recorded as the event source's receive on the function's role."""
    token = current_function.set(logical_id)
    if _path is not None:
        _forget_shared_caches()
    try:
        records = event.get("Records") if isinstance(event, dict) else None
        sources = {r.get("eventSourceARN") for r in records or [] if r.get("eventSource") == "aws:sqs"}
        for source in sorted(s for s in sources if s):
            record("event-source-mapping.sqs", [("sqs:ReceiveMessage", source, {"via": "event-source-mapping"})])
        yield
    finally:
        current_function.reset(token)


def _forget_shared_caches() -> None:
    """In Lambda each function caches SSM parameters and decrypted tokens in its own process; here
    they are shared, so one function's read would hide another's. Recording, every invocation
    starts without them and makes its own calls."""
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters.base")
    for provider in list(getattr(parameters, "DEFAULT_PROVIDERS", {}).values()):
        provider.clear_cache()  # keeps the provider and its client: only the values go
    tokens = sys.modules.get("relasify.data.kms_tokens")
    if tokens is not None:
        tokens.clear_cache()


def install(path: str | Path) -> None:
    """Start recording to `path` (appending). Call before any boto3 client is made: the presigned-URL
    method is copied into each client class when botocore builds it. Idempotent."""
    global _installed, _path
    _path = Path(path)
    if _installed:
        return
    _installed = True
    import botocore.client
    import botocore.signers

    original_call = botocore.client.BaseClient._make_api_call

    def recording_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        _record_api_call(self, operation_name, api_params)
        return original_call(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = recording_call  # type: ignore[method-assign]

    original_presign = botocore.signers.generate_presigned_url

    def recording_presign(self: Any, ClientMethod: str, Params: Any = None, **kwargs: Any) -> Any:  # noqa: N803 - botocore's names
        operation = self._PY_TO_OP_NAME.get(ClientMethod, ClientMethod)
        _record_api_call(self, operation, dict(Params or {}), presigned=True)
        return original_presign(self, ClientMethod, Params, **kwargs)

    botocore.signers.generate_presigned_url = recording_presign

    original_presign_post = botocore.signers.generate_presigned_post

    def recording_presign_post(self: Any, Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any:  # noqa: N803 - botocore's names
        # A browser form upload: the POST acts as PutObject with the signer's permissions.
        _record_api_call(self, "PutObject", {"Bucket": Bucket, "Key": Key}, presigned=True)
        return original_presign_post(self, Bucket, Key, *args, **kwargs)

    botocore.signers.generate_presigned_post = recording_presign_post

    original_submit = ThreadPoolExecutor.submit

    def submit_in_context(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign]


def install_from_environment() -> bool:
    path = os.environ.get(RECORD_ENV)
    if path:
        install(path)
    return bool(path)
