"""In-process API harness (client and helpers): requests go through the local gateway (routes, JWT authorizer and
payload format 2.0 events exactly as in the local stack) into the real handlers, against moto."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.gateway import Gateway, caller_authorizer_function
from relasify_local.gateway_events import HttpRequest
from relasify_local.gateway_routes import routes_from_functions
from relasify_local.jwt_local import LocalKeyPair, mint_token
from relasify_local.runtime import functions_from_template

# Request budgets far above anything a test or bench sends, for the ones that fire requests as fast
# as the harness answers (fuzzing, benches); every other test runs with the production budgets.
# The budgets are still taken (one UpdateItem each per request), so request counts stay as deployed.
UNLIMITED_BUDGETS = {
    "API_USER_RATE_PER_SECOND": "1000000",
    "API_USER_BURST": "1000000",
    "API_WORKSPACE_RATE_PER_SECOND": "1000000",
    "API_WORKSPACE_BURST": "1000000",
}
QUEUES = (
    "WEBHOOK_QUEUE_URL",
    "MEDIA_QUEUE_URL",
    "BROADCAST_QUEUE_URL",
    "IMPORT_QUEUE_URL",
    "OUTGOING_WEBHOOK_QUEUE_URL",
)
DEAD_LETTER_QUEUES = (
    "WEBHOOK_DLQ_URL",
    "MEDIA_DLQ_URL",
    "BROADCAST_DLQ_URL",
    "IMPORT_DLQ_URL",
    "OUTGOING_WEBHOOK_DLQ_URL",
)
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"


@lru_cache(maxsize=1)
def gateway_and_key() -> tuple[Gateway, LocalKeyPair]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = LocalKeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    template = load_template()
    functions = functions_from_template(template, REPO_ROOT)
    gateway = Gateway(
        routes_from_functions(functions), key, caller_authorizer=caller_authorizer_function(template, functions)
    )
    return gateway, key


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class ApiClient:
    gateway: Gateway
    key: LocalKeyPair
    default_headers: dict[str, str] = field(default_factory=dict)

    def token(self, email: str, **kwargs: Any) -> str:
        """A token for `email`, verified unless `email_verified=False` (or None: no claim). An
        impostor's token also needs its own `sub=`: the default is derived from the e-mail."""
        return mint_token(email, key=self.key, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        token: str | None = None,
        as_user: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        all_headers = {"content-type": "application/json", **self.default_headers, **(headers or {})}
        if as_user is not None:
            token = self.token(as_user)
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        raw = body if body is not None else (json.dumps(json_body).encode() if json_body is not None else b"")
        response = self.gateway.handle(HttpRequest(method, path, list(all_headers.items()), raw))
        return ApiResponse(response.status, {k.lower(): v for k, v in response.headers}, response.body)

    def get(self, path: str, **kw: Any) -> ApiResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> ApiResponse:
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path: str, json_body: Any = None, **kw: Any) -> ApiResponse:
        return self.request("PUT", path, json_body=json_body, **kw)

    def patch(self, path: str, json_body: Any = None, **kw: Any) -> ApiResponse:
        return self.request("PATCH", path, json_body=json_body, **kw)

    def delete(self, path: str, **kw: Any) -> ApiResponse:
        return self.request("DELETE", path, **kw)

    def create_workspace(self, owner: str, name: str = "Toko Budi") -> str:
        response = self.post("/v1/workspaces", {"name": name}, as_user=owner)
        assert response.status == 201, response.body
        return response.json["id"]

    def export_contacts(self, ws: str, fmt: str, as_user: str) -> dict[str, Any]:
        """Request an export (202 + Location), run the queued job as the worker would, and return the finished job."""
        response = self.get(f"/v1/workspaces/{ws}/contacts/export?format={fmt}", as_user=as_user)
        assert response.status == 202, response.body
        assert response.json["status"] == "queued"
        assert response.json["url"] is None
        location = response.headers["location"]
        assert location == f"/v1/workspaces/{ws}/contacts/exports/{response.json['id']}"
        run_import_worker()
        job = self.get(location, as_user=as_user)
        assert job.status == 200, job.body
        return job.json

    def add_member(self, ws: str, owner: str, email: str, role: str) -> None:
        """Invite `email` and let them join: adding always invites, and the person (already signed in
        on this warm container) becomes a member on their next request to the workspace."""
        self.get("/v1/me", as_user=email)  # the user signs in once, so they exist
        response = self.post(f"/v1/workspaces/{ws}/members", {"email": email, "role": role}, as_user=owner)
        assert response.status == 201, response.body
        assert response.json["status"] == "invited", response.body
        joined = self.get(f"/v1/workspaces/{ws}", as_user=email)
        assert joined.status == 200, joined.body
        assert joined.json["role"] == role, joined.body


def reset_warm_state() -> None:
    """Per-container caches: a new test is a new container."""
    from relasify.data import kms_tokens, request_budget
    from relasify.services import workspaces

    workspaces._seen_claims.clear()
    kms_tokens.reset_for_tests()
    request_budget.reset_for_tests()


API_FUNCTIONS = ("ContactsApiFunction", "SendApiFunction")


def api_functions() -> list[Any]:
    """The loaded modules of every API function that exists (each holds a Powertools `app`)."""
    gateway, _ = gateway_and_key()
    modules = []
    seen = set()
    for route in gateway.table.routes:
        fn = route.function
        if fn.logical_id in API_FUNCTIONS and fn.logical_id not in seen:
            seen.add(fn.logical_id)
            module = fn.try_load()
            if module is not None:
                modules.append(module)
    return modules


def load_api_modules() -> None:
    """Every API route registered (relasify.web.auth.ROUTE_POLICIES complete): an API function loads
    its route groups on first use (relasify.web.route_groups), so they are all included here."""
    for module in api_functions():
        route_groups = getattr(module, "routes", None)
        if route_groups is not None:
            route_groups.include_all()


def run_import_worker(queue_url: str | None = None) -> None:
    """Deliver the queued import messages one by one to the worker handler, as the SQS event source would."""
    import os

    import boto3

    worker = functions_from_template(load_template(), REPO_ROOT)["ImportWorkerFunction"]
    sqs, url = boto3.client("sqs"), queue_url or os.environ["IMPORT_QUEUE_URL"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages") or []:
        record = {
            "messageId": messages[0]["MessageId"],
            "receiptHandle": messages[0]["ReceiptHandle"],
            "body": messages[0]["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:ap-southeast-3:123456789012:import",
            "awsRegion": "ap-southeast-3",
        }
        result = worker.invoke({"Records": [record]})
        assert result == {"batchItemFailures": []}, result
        sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
