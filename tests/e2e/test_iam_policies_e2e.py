"""Each function's IAM policy in template.yaml is exactly what its code does: checked against the AWS
calls the functions really make on the local stack.

moto checks no IAM, so a missing permission would show only in AWS (the BroadcastWorker once read the
cursor signing key without `ssm:GetParameter`: a tag audience over one expansion page of 100 contacts
failed in the cloud and passed every local test). A dedicated stack runs with
`RELASIFY_RECORD_AWS_CALLS` (relasify_local.aws_calls): every AWS request, presigned URL and SQS
delivery is recorded with the function it was made for, as the IAM action and resource it needs. A
scenario drives every function through its paths over HTTP: workspace and WhatsApp connection, an API key,
inline and presigned imports, a template approved by the sandbox, an inbound text and image (media
copy and its link), a send, a document uploaded with a presigned POST and sent, a broadcast to a
120-contact tag (two expansion pages: the signed cursor), a CSV export and its download, a personal-
data export and erasure, a closed workspace stamped by the retention sweep, account deletion.

Then both directions are compared:
- every recorded action on every recorded resource (plus the KMS actions the service performs with
  the caller's permissions, `IMPLIED_KMS` below) is allowed by the function's own statements,
  resource ARNs and conditions included;
- every (statement, action, resource) the function's policy grants was used, or is in `UNUSED_ALLOWED`
  with the reason it cannot be reached here.

Policies must be explicit statements: SAM policy templates (DynamoDBCrudPolicy, ...) grant more than
their names say and cannot be compared exactly.
"""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from relasify_local.aws import LocalQueue, LocalResources, kebab
from relasify_local.aws_calls import RECORD_ENV
from relasify_local.cfn import REPO_ROOT, load_template, resources_of_type

from tests.e2e.conftest import LocalStackProcess, start_local_stack
from tests.e2e.polling import wait_for
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REGION = "ap-southeast-3"
ACCOUNT = "123456789012"
OWNER = "iam-owner@example.com"
MEMBER = "iam-member@example.com"
WABA_ID = "102345678901234"
APP_SECRET = "dev-app-secret"
TAG_AUDIENCE = 120  # > one expansion page (100): the worker signs and reads a cursor
SWEEP_INTERVAL_SECONDS = 4

# KMS actions a service performs with the caller's permissions when the resource is encrypted with a
# customer-managed key; they are no boto3 call of ours, so they are derived from the recorded call.
# - SQS SSE: "producers need kms:GenerateDataKey and kms:Decrypt; consumers need kms:Decrypt"
#   (Amazon SQS Developer Guide, "Key management" / "Allow a producer/consumer to use a KMS key");
#   Lambda's event source mapping receives with the function's role, so the consumer needs Decrypt.
# - S3 SSE-KMS: PutObject (and multipart parts) needs kms:GenerateDataKey, multipart also kms:Decrypt;
#   GetObject needs kms:Decrypt (Amazon S3 User Guide, "Using server-side encryption with AWS KMS
#   keys", permissions). Presigned URLs act with the signer's permissions.
# - SSM SecureString read with decryption needs kms:Decrypt on its key (AWS Systems Manager User
#   Guide, "Restricting access to Parameter Store parameters"); docs/DEPLOY.md creates them with DataKey.
# - DynamoDB with a customer-managed key: the key policy's AllowDynamoDBInThisAccount statement
#   (kms:ViaService dynamodb) covers table reads and writes; no IAM KMS permission is needed.
IMPLIED_KMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sqs", "SendMessage"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("sqs", "ReceiveMessage"): ("kms:Decrypt",),
    ("s3", "PutObject"): ("kms:GenerateDataKey",),
    ("s3", "PutObject multipart"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "GetObject"): ("kms:Decrypt",),
    ("ssm", "GetParameter"): ("kms:Decrypt",),
}

# (function, action, resource as written in the template after resolution, with the local names)
# -> why it is granted although the scenario cannot make the call.
_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/relasify-table"
_BUCKET = "arn:aws:s3:::relasify-media"
_SWEEP_LATER = (
    "the sweep deletes data only once it expires (days after it is written); tests/integration/test_sweep_retention.py"
)
# Erasure reads a dead-letter queue only when GetQueueAttributes says it holds messages; the scenario's
# DLQs are empty. The purge itself: tests/integration/api/test_erasure_reaches_every_copy.py.
_DLQ_PURGE = "erasure purges a dead-letter queue only when it holds messages (none here): tested under moto"
UNUSED_ALLOWED: dict[tuple[str, str, str], str] = {
    (
        "SendApiFunction",
        "dynamodb:DeleteItem",
        _TABLE,
    ): "deletes an early status once applied (a status that beat the send's response) and the wamid pointer of a "
    "message erased while its send was in flight: tests/integration/test_webhook_statuses.py",
    (
        "BroadcastWorkerFunction",
        "dynamodb:DeleteItem",
        _TABLE,
    ): "as the send API's: early statuses and the pointer of an erased message; tests/integration",
    (
        "SendApiFunction",
        "ssm:GetParameter",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/relasify/cursor-signing-key",
    ): "signs the next-page cursor of GET /broadcasts and /templates listings longer than one page",
    (
        "ContactsApiFunction",
        "cognito-idp:ListUsers",
        f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_LocalPool",
    ): "the local stack has no Cognito pool (local issuer); DELETE /v1/me under moto: tests/integration",
    (
        "ContactsApiFunction",
        "cognito-idp:AdminDeleteUser",
        f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_LocalPool",
    ): "the local stack has no Cognito pool (local issuer); DELETE /v1/me under moto: tests/integration",
    (
        "ImportWorkerFunction",
        "sqs:SendMessage",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:relasify-import-queue",
    ): "a job longer than one invocation (~100,000 rows) re-enqueues itself: tests/e2e/test_import_e2e.py at full size",
    (
        "ImportWorkerFunction",
        "s3:AbortMultipartUpload",
        f"{_BUCKET}/exports/*",
    ): "a failed multipart export upload is aborted (error path)",
    **{
        ("ContactsApiFunction", action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:relasify-{queue}-dlq"): _DLQ_PURGE
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage")
        for queue in ("webhook", "media", "broadcast", "import")
    },
    ("ContactsApiFunction", "s3:GetObject", f"{_BUCKET}/raw-webhooks/*"): _DLQ_PURGE,
    ("ContactsApiFunction", "s3:PutObject", f"{_BUCKET}/raw-webhooks/*"): _DLQ_PURGE,
    ("ContactsApiFunction", "s3:DeleteObject", f"{_BUCKET}/raw-webhooks/*"): _DLQ_PURGE,
    (
        "WebhookProcessorFunction",
        "sqs:SendMessage",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:relasify-webhook-dlq",
    ): "an inline delivery failing its 5th receive is parked in the DLQ as a pointer: "
    "tests/integration/test_webhook_raw_retention.py",
    ("WebhookDeliveryFunction", "dynamodb:BatchGetItem", _TABLE): "a conversation.updated event's data "
    "(the conversation view reads its contact): tests/integration/api/test_outgoing_webhooks_api.py",
    ("WebhookDeliveryFunction", "dynamodb:UpdateItem", _TABLE): "an endpoint failing for 24 h is disabled: "
    "tests/integration/api/test_outgoing_webhooks_api.py",
    ("RetentionSweepFunction", "dynamodb:BatchGetItem", _TABLE): _SWEEP_LATER,
    ("RetentionSweepFunction", "dynamodb:BatchWriteItem", _TABLE): _SWEEP_LATER,
    ("RetentionSweepFunction", "s3:DeleteObject", f"{_BUCKET}/media/*"): _SWEEP_LATER,
    ("RetentionSweepFunction", "s3:DeleteObject", f"{_BUCKET}/imports/*"): _SWEEP_LATER,
    ("RetentionSweepFunction", "s3:DeleteObject", f"{_BUCKET}/exports/*"): _SWEEP_LATER,
    ("RetentionSweepFunction", "s3:ListBucket", _BUCKET): _SWEEP_LATER,
}


@dataclass(frozen=True)
class Need:
    function: str
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    because: str = ""  # the recorded call, for messages

    def describe(self) -> str:
        where = f" with {dict(self.context)}" if self.context else ""
        return f"{self.function}: {self.action} on {self.resource}{where} (from {self.because})"


@dataclass
class Grant:
    function: str
    sid: str
    action: str
    resource: str
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str]:
        return (self.function, self.action, self.resource)

    def allows(self, need: Need) -> bool:
        if need.function != self.function or not fnmatch.fnmatchcase(need.action, self.action):
            return False
        if not fnmatch.fnmatchcase(need.resource, self.resource):
            return False
        context = dict(need.context)
        for operator, keys in self.conditions.items():
            for key, expected in keys.items():
                if key not in context:
                    return False  # a condition this call does not satisfy (fail closed)
                patterns = expected if isinstance(expected, list) else [expected]
                if operator in ("StringLike", "ForAllValues:StringLike"):
                    ok = any(fnmatch.fnmatchcase(context[key], str(p)) for p in patterns)
                elif operator == "StringEquals":
                    ok = context[key] in [str(p) for p in patterns]
                else:
                    raise AssertionError(f"{self.function}/{self.sid}: condition operator {operator} not modelled")
                if not ok:
                    return False
        return True


# ---------------------------------------------------------------------------------------- scenario


def _sign(body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def _inbound(phone_number_id: str, wa_id: str, message: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281234500000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Pelanggan"}, "wa_id": wa_id}],
        "messages": [
            {"from": wa_id, "id": f"wamid.iam{uuid.uuid4().hex}", "timestamp": str(int(time.time())), **message}
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(payload).encode()


def _post_webhook(stack: LocalStackProcess, body: bytes) -> None:
    posted = httpx.post(
        f"{stack.base_url}/webhooks/whatsapp",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": _sign(body)},
    )
    assert posted.status_code == 200, posted.text


def _sweep_runs(stack: LocalStackProcess) -> int:
    return stack.log_path.read_text(errors="replace").count("scheduled run of RetentionSweepFunction finished")


def run_scenario(stack: LocalStackProcess) -> None:
    # The receiver of an outgoing webhook (SPEC 5c): it answers 500 once, so the worker retries.
    with stack.client(headers=stack.auth_headers(OWNER)) as http, WebhookReceiver(statuses=[500]) as receiver:
        verify = http.get(
            "/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "dev-verify-token", "hub.challenge": "42"},
        )
        assert verify.status_code == 200, verify.text
        ws = http.post("/v1/workspaces", json={"name": "Toko IAM"}).json()["id"]
        phone_number_id = str(100000000000000 + uuid.uuid4().int % 10**14)
        connect = {
            "waba_id": WABA_ID,
            "phone_number_id": phone_number_id,
            "display_phone_number": "6281234500000",
            "access_token": "EAAG-iam-token",
        }
        stack.register_whatsapp_account(WABA_ID, phone_number_id, connect["access_token"])
        assert http.put(f"/v1/workspaces/{ws}/whatsapp", json=connect).status_code == 200, stack.log_tail()
        member = http.post(f"/v1/workspaces/{ws}/members", json={"email": MEMBER, "role": "agent"})
        assert member.status_code == 201, member.text
        # An API key (SPEC 5c), used once: the authorizer's GetItem of its lookup item.
        api_key = http.post(f"/v1/workspaces/{ws}/api-keys", json={"name": "iam", "role": "agent"})
        assert api_key.status_code == 201, api_key.text
        keyed = httpx.get(
            f"{stack.base_url}/v1/workspaces/{ws}/contacts",
            headers={"authorization": f"Bearer {api_key.json()['key']}"},
        )
        assert keyed.status_code == 200, keyed.text

        # Presigned import of the tag audience, and a small inline one.
        rows = "".join(f"+62813777{n:05d},Pelanggan {n},,vip,yes,\r\n" for n in range(TAG_AUDIENCE))
        upload = http.post(f"/v1/workspaces/{ws}/contacts/imports", json={"filename": "audience.csv"})
        assert upload.status_code in (201, 202), upload.text
        put = httpx.put(
            upload.json()["upload_url"],
            content=("phone,name,email,tags,opt_in,segment\r\n" + rows).encode(),
            headers={"content-type": "text/csv"},
        )
        assert put.status_code == 200, put.text
        started = http.post(f"/v1/workspaces/{ws}/contacts/imports/{upload.json()['id']}/start")
        assert started.status_code in (200, 202), started.text
        inline = http.post(
            f"/v1/workspaces/{ws}/contacts/imports",
            content=b"phone,name\n+6285700011122,Inline\n",
            headers={"content-type": "text/csv"},
        )
        assert inline.status_code in (201, 202), inline.text
        for job_id in (upload.json()["id"], inline.json()["id"]):
            job = wait_for(
                lambda job_id=job_id: http.get(f"/v1/workspaces/{ws}/contacts/imports/{job_id}").json(),
                lambda j: j["status"] in ("completed", "failed"),
                timeout=180,  # a loaded 2-core machine
            )
            assert job["status"] == "completed", (job, stack.log_tail())

        contact = http.post(f"/v1/workspaces/{ws}/contacts", json={"phone": "+6281299988877", "name": "Sari"})
        assert contact.status_code == 201, contact.text
        contact_id = contact.json()["id"]
        assert http.get(f"/v1/workspaces/{ws}/contacts", params={"limit": 2}).status_code == 200

        # A real-time client (ticket, $connect) is pushed the inbound message's event (publisher, management
        # API); a connection lost without $disconnect answers 410 and the publisher deletes its item.
        realtime = _RealtimeClient(stack)
        # Outgoing webhooks: the publisher fans the inbound messages out, the worker delivers them.
        hook = http.post(f"/v1/workspaces/{ws}/webhooks", json={"url": receiver.url, "events": ["message.created"]})
        assert hook.status_code == 201, hook.text

        # Inbound text and image: receiver -> processor -> media worker.
        wa_id = "6281299988877"
        _post_webhook(stack, _inbound(phone_number_id, wa_id, {"type": "text", "text": {"body": "Halo"}}))
        media_id = httpx.post(
            f"{stack.sandbox_url}/_sandbox/media", content=b"\xff\xd8jpeg", headers={"content-type": "image/jpeg"}
        ).json()["id"]
        _post_webhook(
            stack,
            _inbound(phone_number_id, wa_id, {"type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}),
        )
        conversation = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/messages").json()["items"],
            lambda items: len(items) == 2 and all(m.get("media", {}).get("stored", True) for m in items),
        )
        assert len(conversation) == 2, stack.log_tail()
        realtime.finish(http, ws, contact_id)
        # Two inbound messages, the first delivery refused once: three POSTs (one a retry).
        assert len(receiver.wait_for(3, timeout=60)) == 3, stack.log_tail()
        # The inbox: its listing and counts query InboxByStatus (assignee as a filter).
        inbox = http.get(f"/v1/workspaces/{ws}/conversations", params={"assignee": "me"})
        assert inbox.status_code == 200, inbox.text
        image = next(m for m in conversation if m["type"] == "image")
        # The media link (HeadObject and a presigned GET of the copy), downloaded.
        link = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/messages/{image['id']}/media"), lambda r: r.status_code != 409
        )
        assert link.status_code == 200, (link.text, stack.log_tail())
        assert httpx.get(link.json()["url"]).content == b"\xff\xd8jpeg"

        # A send inside the service window, and a template approved through the sandbox's webhook.
        sent = http.post(
            f"/v1/workspaces/{ws}/messages",
            json={"contact_id": contact_id, "type": "text", "text": {"body": "Terima kasih"}},
            headers={"idempotency-key": "iam-1"},
        )
        assert sent.status_code == 201, sent.text
        replay = http.post(
            f"/v1/workspaces/{ws}/messages",
            json={"contact_id": contact_id, "type": "text", "text": {"body": "Terima kasih"}},
            headers={"idempotency-key": "iam-1"},
        )
        assert replay.json()["id"] == sent.json()["id"]
        # A document uploaded with the presigned POST and sent (read from S3, uploaded to Graph).
        pdf = b"%PDF-1.7 iam"
        upload = http.post(f"/v1/workspaces/{ws}/media", json={"mime_type": "application/pdf", "size": len(pdf)})
        assert upload.status_code == 201, upload.text
        form = upload.json()["upload"]
        posted = httpx.post(form["url"], data=form["fields"], files={"file": ("a.pdf", pdf, "application/pdf")})
        assert posted.status_code in (200, 201, 204), posted.text
        document = http.post(
            f"/v1/workspaces/{ws}/messages",
            json={"contact_id": contact_id, "type": "document", "document": {"id": upload.json()["id"]}},
            headers={"idempotency-key": "iam-document"},
        )
        assert document.status_code == 201, document.text
        # A first request of a user without a record reads the account-deletion marker (erasure key).
        stranger = http.get(
            f"/v1/workspaces/{ws}/templates",
            headers={"authorization": f"Bearer {stack.token('iam-stranger@example.com')}"},
        )
        assert stranger.status_code in (403, 404)
        template = http.post(
            f"/v1/workspaces/{ws}/templates",
            json={
                "name": "promo_iam",
                "language": "id",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "Halo {{1}}, ada promo."}],
            },
        )
        assert template.status_code == 201, template.text
        approved = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/templates").json()["items"],
            lambda items: items and items[0]["status"] == "APPROVED",
        )
        assert approved[0]["status"] == "APPROVED", stack.log_tail()

        broadcast = http.post(
            f"/v1/workspaces/{ws}/broadcasts",
            json={
                "template": "promo_iam",
                "language": "id",
                "audience": {"tags": ["vip"]},
                "parameters": [{"field": "name"}],
            },
        )
        assert broadcast.status_code == 202, broadcast.text
        view = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/broadcasts/{broadcast.json()['id']}").json(),
            lambda v: v["status"] == "completed",
            timeout=120,
        )
        assert view["status"] == "completed", (view, stack.log_tail())
        assert view["total"] == TAG_AUDIENCE
        assert http.get(f"/v1/workspaces/{ws}/broadcasts").status_code == 200

        # Exports: the worker writes the CSV, the API hands out its presigned download.
        listing = http.get(f"/v1/workspaces/{ws}/contacts/export", params={"format": "csv"})
        assert listing.status_code == 202, listing.text
        export = wait_for(
            lambda: http.get(listing.headers["location"]).json(),
            lambda e: e["status"] not in ("queued", "running"),
            timeout=60,
        )
        assert export["status"] == "completed", export
        assert httpx.get(export["url"]).status_code == 200
        assert http.get(f"/v1/workspaces/{ws}/contacts/{contact_id}/export").status_code == 200
        assert http.post(f"/v1/workspaces/{ws}/contacts/{contact_id}/erase", json={}).status_code == 200
        # The erased person writes again (the processor checks the erasure tombstone: erasure key);
        # a payload over the queue's inline limit (read back from S3); a forged signature (security log).
        _post_webhook(stack, _inbound(phone_number_id, wa_id, {"type": "text", "text": {"body": "Halo lagi"}}))
        large = json.loads(_inbound(phone_number_id, "6281200000001", {"type": "text", "text": {"body": "Besar"}}))
        large["padding"] = "x" * (300 * 1024)  # past the SQS message limit: the queue carries an S3 pointer
        _post_webhook(stack, json.dumps(large).encode())
        # A field we do not handle yet: the processor copies the inline delivery to S3 (kept 90 days).
        future = {"field": "some_future_field", "value": {"x": 1}}
        _post_webhook(
            stack,
            json.dumps(
                {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [future]}]}
            ).encode(),
        )
        forged = httpx.post(
            f"{stack.base_url}/webhooks/whatsapp",
            content=b'{"object": "whatsapp_business_account", "entry": []}',
            headers={"content-type": "application/json", "x-hub-signature-256": "sha256=" + "0" * 64},
        )
        assert forged.status_code in (401, 403), forged.text
        # Wait for the processor rather than a fixed 2 s (a loaded machine took longer, and the tombstone
        # read went unrecorded): the large payload's sender, unknown until now, becomes a contact.
        found = wait_for(
            lambda: http.get(f"/v1/workspaces/{ws}/contacts", params={"q": "6281200000001"}).json()["items"],
            lambda items: len(items) == 1,
            timeout=60,
        )
        assert len(found) == 1, stack.log_tail()

        # Close the workspace: the next sweep stamps its items; the member deletes their account.
        runs_before = _sweep_runs(stack)
        closed = http.post(f"/v1/workspaces/{ws}/close", json={"confirm": "Toko IAM"})
        assert closed.status_code in (200, 202), closed.text
        member_http = {"authorization": f"Bearer {stack.token(MEMBER)}"}
        assert http.delete("/v1/me", headers=member_http).status_code in (200, 204)
    # Two more runs after the closure; the first run of a fresh stack can take several intervals on a
    # loaded machine (it once overlapped a 30-second wait of the scenario), so the bound is generous.
    swept = wait_for(lambda: _sweep_runs(stack), lambda runs: runs > runs_before + 1, timeout=90)
    assert swept > runs_before + 1, stack.log_tail()


class _RealtimeClient:
    def __init__(self, stack: LocalStackProcess) -> None:
        from websockets.sync.client import connect

        self.stack = stack
        ticket = httpx.post(f"{stack.base_url}/v1/realtime/tickets", headers=stack.auth_headers(OWNER), timeout=10)
        assert ticket.status_code == 201, ticket.text
        self.socket = connect(f"{stack.realtime_url}/?ticket={ticket.json()['ticket']}", open_timeout=10)

    def finish(self, http: httpx.Client, ws: str, contact_id: str) -> None:
        import boto3

        event = json.loads(self.socket.recv(timeout=10))
        assert event["workspace_id"] == ws
        self.socket.close()  # $disconnect
        # A connection the server no longer knows (lost without $disconnect): its item comes back by hand.
        table = boto3.resource(
            "dynamodb",
            endpoint_url=self.stack.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).Table(self.stack.environment["TABLE_NAME"])
        sub = http.get("/v1/me").json()["id"]
        stale = {"PK": "RTCONN#stale=", "SK": "CONN", "GSI1PK": f"RTUSER#{sub}", "GSI1SK": "stale=", "sub": sub}
        table.put_item(Item={**stale, "connection_id": "stale=", "expires_at": int(time.time()) + 600})
        note = http.post(f"/v1/workspaces/{ws}/conversations/{contact_id}/notes", json={"body": "410"})
        assert note.status_code == 201, note.text
        gone = wait_for(lambda: table.get_item(Key={"PK": "RTCONN#stale=", "SK": "CONN"}), lambda r: "Item" not in r)
        assert "Item" not in gone, self.stack.log_tail()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[dict[str, Any]], LocalStackProcess]]:
    tmp = tmp_path_factory.mktemp("iam-recording")
    calls = tmp / "aws-calls.jsonl"
    stack = start_local_stack(
        tmp,
        {
            RECORD_ENV: str(calls),
            "RELASIFY_SWEEP_INITIAL_DELAY_SECONDS": "1",
            "RELASIFY_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL_SECONDS),
        },
    )
    try:
        run_scenario(stack)
        time.sleep(1.0)  # the last status webhooks and usage-log writes
    finally:
        stack.stop()
    return [json.loads(line) for line in calls.read_text().splitlines()], stack


# ---------------------------------------------------------------------------------------- template


def local_resources(template: dict[str, Any], environment: dict[str, str]) -> LocalResources:
    """The template's resources under the local stack's names (relasify_local.aws), to resolve ARNs."""
    resources = LocalResources(endpoint_url="")
    for name, spec in (template.get("Parameters") or {}).items():
        if "Default" in spec:
            resources.parameters[name] = str(spec["Default"])
    resources.tables = {"Table": environment["TABLE_NAME"]}
    resources.buckets = {"MediaBucket": environment["MEDIA_BUCKET"]}
    resources.kms_keys = {"DataKey": environment["KMS_KEY_ID"].rsplit("/", 1)[-1]}
    for logical_id in resources_of_type("AWS::SQS::Queue", template):
        name = f"relasify-{kebab(logical_id)}"
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        resources.queues[logical_id] = LocalQueue(logical_id, name, f"http://queue/{name}", arn)
    resources.parameters["UserPool"] = f"{REGION}_LocalPool"
    # The local WebSocket API has no id or stage of its own (relasify_local.aws_calls records "local").
    resources.parameters["RealtimeApi"] = "local"
    resources.parameters["RealtimeStage"] = "local"
    return resources


def resolve(value: Any, resources: LocalResources) -> str:
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), list):
        text, variables = value["Fn::Sub"]
        for name, inner in variables.items():
            text = text.replace("${" + name + "}", resolve(inner, resources))
        value = {"Fn::Sub": text}
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        logical_id, attribute = target if isinstance(target, list) else str(target).split(".", 1)
        if logical_id == "UserPool" and attribute == "Arn":
            return f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{resources.parameters['UserPool']}"
    resolved = resources.resolve(value)
    assert resolved is not None, f"cannot resolve {value!r} in a policy"
    return resolved


def policy_documents(resource: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, policy document) of each entry of a function's Policies; SAM policy templates expanded
    as `sam deploy` would (the test that they are absent is separate, so a missing permission still
    shows under a template that uses them)."""
    from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

    processor = PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())
    for number, policy in enumerate((resource.get("Properties") or {}).get("Policies") or []):
        if isinstance(policy, dict) and set(policy) == {"Statement"}:
            yield f"#{number}", policy
        else:
            assert isinstance(policy, dict), f"policy #{number} {policy!r} is not modelled"
            assert len(policy) == 1, f"policy #{number} {policy!r} is not modelled"
            [(name, parameters)] = policy.items()
            yield name, processor.convert(name, parameters)


def grants(template: dict[str, Any], resources: LocalResources) -> dict[str, list[Grant]]:
    by_function: dict[str, list[Grant]] = {}
    for function, resource in resources_of_type("AWS::Serverless::Function", template).items():
        granted: list[Grant] = []
        for label, policy in policy_documents(resource):
            for statement in policy["Statement"]:
                assert statement.get("Effect") == "Allow", f"{function}: only Allow statements are modelled"
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                conditions = statement.get("Condition") or {}
                sid = statement.get("Sid", label)
                granted += [
                    Grant(function, sid, action, resolve(target, resources), conditions)
                    for action in actions
                    for target in targets
                ]
        by_function[function] = granted
    return by_function


def test_function_policies_are_explicit_statements_not_sam_policy_templates() -> None:
    """SAM policy templates grant more than their names say (DynamoDBCrudPolicy includes Scan,
    SQSSendMessagePolicy `sqs:SendMessage*`); explicit statements keep the comparison exact."""
    template = load_template(REPO_ROOT / "template.yaml")
    templated = [
        f"{function}: {next(iter(policy))}"
        for function, resource in resources_of_type("AWS::Serverless::Function", template).items()
        for policy in (resource.get("Properties") or {}).get("Policies") or []
        if not (isinstance(policy, dict) and set(policy) == {"Statement"})
    ]
    assert not templated, templated


def sqs_event_queues(template: dict[str, Any], resources: LocalResources) -> dict[str, set[str]]:
    """function -> ARNs of the queues its SQS event sources poll (SAM grants the receive itself)."""
    queues: dict[str, set[str]] = defaultdict(set)
    for function, resource in resources_of_type("AWS::Serverless::Function", template).items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") == "SQS":
                queues[function].add(resolve(event["Properties"]["Queue"], resources))
    return queues


def encrypted_with(template: dict[str, Any], resources: LocalResources) -> list[tuple[str, str]]:
    """(ARN pattern, key ARN) of every queue and bucket encrypted with a customer-managed key."""
    encrypted = []
    for logical_id, resource in resources_of_type("AWS::SQS::Queue", template).items():
        key = (resource.get("Properties") or {}).get("KmsMasterKeyId")
        if key is not None:
            encrypted.append((resources.queues[logical_id].arn, resources.get_att(str(key["Ref"]), "Arn") or ""))
    for logical_id, resource in resources_of_type("AWS::S3::Bucket", template).items():
        rules = ((resource.get("Properties") or {}).get("BucketEncryption") or {}).get(
            "ServerSideEncryptionConfiguration"
        ) or []
        for rule in rules:
            default = rule.get("ServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") == "aws:kms":
                encrypted.append(
                    (f"arn:aws:s3:::{resources.buckets[logical_id]}/*", resolve(default["KMSMasterKeyID"], resources))
                )
    return encrypted


def needs(calls: list[dict[str, Any]], template: dict[str, Any], resources: LocalResources) -> set[Need]:
    encrypted = encrypted_with(template, resources)
    data_key = resources.get_att("DataKey", "Arn") or ""
    needed: set[Need] = set()
    for call in calls:
        context = tuple(sorted((k, v) for k, v in call["context"].items() if k != "via"))
        need = Need(call["function"], call["action"], call["resource"], context, call["call"])
        if call["context"].get("via") != "event-source-mapping":
            needed.add(need)  # the event source's own receive is SAM's SQSPollerPolicy
        service, _, action = call["action"].partition(":")
        multipart = "Multipart" in call["call"] or "UploadPart" in call["call"]
        implied = IMPLIED_KMS.get((service, action + (" multipart" if multipart else "")), ())
        if service == "ssm":
            keys = [data_key] if implied else []  # SecureStrings are created with DataKey (docs/DEPLOY.md)
        else:
            keys = [key for pattern, key in encrypted if fnmatch.fnmatchcase(call["resource"], pattern)]
        for key in keys:
            for kms_action in implied:
                needed.add(
                    Need(
                        call["function"],
                        kms_action,
                        key,
                        (),
                        f"{call['call']} on {call['resource']} (SSE with the key)",
                    )
                )
    return needed


@pytest.fixture(scope="module")
def comparison(recording: Any) -> tuple[set[Need], dict[str, list[Grant]], dict[str, set[str]]]:
    calls, stack = recording
    template = load_template(REPO_ROOT / "template.yaml")
    resources = local_resources(template, stack.environment)
    return needs(calls, template, resources), grants(template, resources), sqs_event_queues(template, resources)


def test_every_function_made_aws_calls_in_the_scenario(recording: Any) -> None:
    calls, _ = recording
    template = load_template(REPO_ROOT / "template.yaml")
    functions = resources_of_type("AWS::Serverless::Function", template)
    # A function without policies (the $default route's NotFoundFunction) must make no AWS call at all.
    with_policies = {f for f, r in functions.items() if (r.get("Properties") or {}).get("Policies")}
    assert {c["function"] for c in calls} == with_policies
    assert with_policies < set(functions)
    # The BroadcastWorker expanded the 120-contact tag in two pages: it read the cursor signing key.
    assert any(
        c["function"] == "BroadcastWorkerFunction"
        and c["action"] == "ssm:GetParameter"
        and c["resource"].endswith("/relasify/cursor-signing-key")
        for c in calls
    )


def test_every_aws_call_a_function_makes_is_allowed_by_its_own_policy(comparison: Any) -> None:
    needed, granted, _event_queues = comparison
    missing = sorted(n.describe() for n in needed if not any(g.allows(n) for g in granted.get(n.function, [])))
    assert not missing, f"{len(missing)} AWS calls the template does not allow:\n" + "\n".join(missing[:40])


def test_every_permission_a_function_is_granted_is_used_or_allow_listed(comparison: Any) -> None:
    needed, granted, _ = comparison
    unused = []
    for function, function_grants in granted.items():
        for grant in function_grants:
            if any(grant.allows(n) for n in needed):
                continue
            if grant.key() in UNUSED_ALLOWED:
                continue
            unused.append(f"{function}/{grant.sid}: {grant.action} on {grant.resource}")
    assert not unused, f"{len(unused)} granted permissions no recorded call used:\n" + "\n".join(unused)


def test_the_unused_allow_list_names_only_grants_that_exist_and_stay_unused(comparison: Any) -> None:
    needed, granted, _ = comparison
    keys = {g.key(): g for gs in granted.values() for g in gs}
    stale = [key for key in UNUSED_ALLOWED if key not in keys or any(keys[key].allows(n) for n in needed)]
    assert not stale, f"allow-list entries that are no longer granted, or are used now: {stale}"


def test_sqs_consumers_can_decrypt_their_queue(comparison: Any) -> None:
    """The event source mapping receives with the function's role: with SSE-KMS that needs kms:Decrypt."""
    needed, _granted, event_queues = comparison
    for function, queues in event_queues.items():
        assert queues, function
        assert any(n.function == function and n.action == "kms:Decrypt" for n in needed), function
