"""Tenant isolation generated from the route table: two workspaces A and B, each with a contact, a message,
a template, a broadcast, an import job and members. Every `/v1/workspaces/<ws>/...` route with an id in its
path is called in workspace A with each of B's ids (and the other way round), and every cursor B's list
routes issue is replayed on A's list routes. Zero leaks: a 4xx, none of the other workspace's ids, names,
phones or emails anywhere in a body, and the other workspace's data unchanged afterwards. A new route is
covered automatically (an id parameter nobody knows how to fill fails the suite)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest
from relasify.services import media_copy
from relasify.settings import get_settings
from relasify.web.auth import ROUTE_POLICIES, RoutePolicy

from tests.integration.api.test_send_support import PHONE_NUMBER_ID, SendingEnv, sending_environment
from tests.support.api import ApiClient, load_api_modules

load_api_modules()
POLICIES = sorted(set(ROUTE_POLICIES), key=lambda p: (p.path, p.method))
ID_PARAMS = (
    "contact_id",
    "message_id",
    "broadcast_id",
    "import_id",
    "export_id",
    "name",
    "user",
    "reply_id",
    "key_id",
    "webhook_id",
)
# Bodies that pass validation, so the request reaches the lookup (a 422 before it would prove nothing).
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/contacts/<contact_id>"): {"name": "Renamed By Other Tenant"},
    ("POST", "/contacts/<contact_id>/consent"): {"status": "opted_out"},
    ("POST", "/contacts/<contact_id>/erase"): {},
    ("PATCH", "/members/<user>"): {"role": "agent"},
    ("PATCH", "/conversations/<contact_id>"): {"status": "resolved", "assignee": None},
    ("POST", "/conversations/<contact_id>/read"): {"receipt": True, "typing": True},
    ("POST", "/conversations/<contact_id>/notes"): {"body": "A note planted by the other tenant"},
    ("PATCH", "/canned-replies/<reply_id>"): {"body": "Changed by the other tenant"},
    ("PATCH", "/webhooks/<webhook_id>"): {"enabled": False},
}
LIST_ROUTES = (
    "/contacts",
    "/broadcasts",
    "/templates",
    "/members",
    "/audit",
    "/contacts/<contact_id>/messages",
    "/conversations",
    "/conversations/<contact_id>/messages",
    "/canned-replies",
    "/webhooks",
)


@dataclass
class Tenant:
    env: SendingEnv
    owner: str
    ids: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # strings that must never reach the other tenant
    api_key: str = ""  # an admin API key of this workspace (SPEC 5c)

    @property
    def ws(self) -> str:
        return self.env.ws

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.env.api.request(method, f"/v1/workspaces/{self.ws}{path}", json_body=body, as_user=self.owner, **kw)

    def snapshot(self) -> list[Any]:
        """What the tenant's own owner sees: must be the same before and after the other tenant's attempts."""
        views = [
            self.call("GET", f"/contacts/{self.ids['contact_id']}").json,
            self.call("GET", f"/messages/{self.ids['message_id']}").json,
            self.call("GET", f"/broadcasts/{self.ids['broadcast_id']}").json,
            self.call("GET", f"/contacts/imports/{self.ids['import_id']}").json,
            self.call("GET", f"/contacts/exports/{self.ids['export_id']}").json,
            self.call("GET", f"/canned-replies/{self.ids['reply_id']}").json,
            self.call("GET", f"/webhooks/{self.ids['webhook_id']}").json,
            sorted(t["name"] for t in self.call("GET", "/templates").json["items"]),
            sorted(m["user_id"] for m in self.call("GET", "/members").json["items"]),
            [k["id"] for k in self.call("GET", "/api-keys").json["items"]],
            self.call("GET", f"/conversations/{self.ids['contact_id']}").json,
            [i["id"] for i in self.call("GET", f"/conversations/{self.ids['contact_id']}/messages").json["items"]],
        ]
        for view in [*views[:7], views[9]]:
            if isinstance(view, dict):
                view.pop("updated_at", None)
                view.pop("counts", None)  # a broadcast's counts move while its worker runs; not ours to freeze
                view.pop("url", None)  # an export's download URL is signed anew on every read
                view.pop("expires_at", None)
        return views


def _copy_queued_media() -> None:
    sqs = boto3.client("sqs")
    url = get_settings().media_queue_url
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []:
        for message in messages:
            job = json.loads(message["Body"])
            media_copy.copy_media(job["ws"], job["message_id"], job["media_id"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _populate(env: SendingEnv, owner: str, tag: str, digits: str, phone_number_id: str) -> Tenant:
    tenant = Tenant(env, owner)
    phone = f"+62812{digits}"
    name = f"Isolde {tag} Secretname"
    email = f"isolde.{tag.lower()}@tenant-{tag.lower()}.example"
    contact = env.contact(phone, name=name, tags=["vip"])
    assert tenant.call("PATCH", f"/contacts/{contact.id}", {"email": email}).status == 200
    env.approved_template(f"offer_{tag.lower()}_only")
    message_text = f"Private note for tenant {tag} zebra"
    sent = tenant.call(
        "POST",
        "/messages",
        {"contact_id": contact.id, "type": "text", "text": {"body": message_text}},
        headers={"idempotency-key": f"iso-{tag}"},
    )
    assert sent.status in (200, 201, 202), sent.body
    broadcast = tenant.call(
        "POST",
        "/broadcasts",
        {
            "template": f"offer_{tag.lower()}_only",
            "language": "id",
            "audience": {"contact_ids": [contact.id]},
            "parameters": [{"field": "name"}],
        },
    )
    assert broadcast.status in (200, 201, 202), broadcast.body
    import_phone = f"+62813{digits}"
    csv = f"phone,name\n{import_phone},Importa {tag} Rowname\n".encode()
    imported = env.api.request(
        "POST",
        f"/v1/workspaces/{env.ws}/contacts/imports",
        body=csv,
        headers={"content-type": "text/csv"},
        as_user=owner,
    )
    assert imported.status in (200, 201, 202), imported.body
    exported = tenant.call("GET", "/contacts/export?format=json")
    assert exported.status == 202, exported.body
    reply_text = f"Canned secret of tenant {tag}"
    replies = [
        tenant.call("POST", "/canned-replies", {"shortcut": f"{tag.lower()}-{n}", "body": f"{reply_text} {n}"})
        for n in (1, 2)
    ]
    assert all(r.status == 201 for r in replies), replies[0].body
    hook_url = f"https://hooks.tenant-{tag.lower()}.example/relasify"
    hook = tenant.call("POST", "/webhooks", {"url": hook_url, "events": ["contact.created"]})
    assert hook.status == 201, hook.body
    # An inbound image with its media copied: GET .../messages/<id>/media serves a link to it.
    media_id = env.sandbox.add_media(b"\xff\xd8 " + tag.encode(), "image/jpeg")
    image = {"type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}
    env.sandbox.post_inbound_message(phone_number_id, phone.lstrip("+"), image)
    env.sandbox.wait_until_idle()
    _copy_queued_media()
    thread = tenant.call("GET", f"/contacts/{contact.id}/messages").json["items"]
    image_id = next(m["id"] for m in thread if m["type"] == "image")
    assert tenant.call("GET", f"/messages/{image_id}/media").status == 200
    member_email = f"member-{tag.lower()}@tenant-{tag.lower()}.example"
    env.api.add_member(env.ws, owner, member_email, "agent")
    members = tenant.call("GET", "/members").json["items"]
    api_key = tenant.call("POST", "/api-keys", {"name": f"Key {tag}", "role": "admin"})
    assert api_key.status == 201, api_key.body
    tenant.api_key = api_key.json["key"]
    tenant.ids = {
        "contact_id": contact.id,
        "message_id": image_id,
        "broadcast_id": broadcast.json["id"],
        "import_id": imported.json["id"],
        "export_id": exported.json["id"],
        "name": f"offer_{tag.lower()}_only",
        "user": next(m["user_id"] for m in members if m["email"] == owner),
        "reply_id": replies[0].json["id"],
        "key_id": api_key.json["id"],
        "webhook_id": hook.json["id"],
    }
    tenant.secrets = [
        *tenant.ids.values(),
        sent.json["id"],
        phone,
        phone.lstrip("+"),
        digits,
        name,
        email,
        message_text,
        reply_text,
        hook_url,
        hook.json["secret"],
        import_phone.lstrip("+"),
        f"Importa {tag} Rowname",
        owner,
        member_email,
        tenant.api_key,
    ]
    return tenant


@pytest.fixture
def tenants(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Tenant, Tenant]]:
    # The tenants' webhook hosts resolve to a public address (no DNS in tests).
    monkeypatch.setattr("relasify.data.webhook_http.resolve", lambda host, port: ["93.184.216.34"])
    for env_a in sending_environment(api, monkeypatch):
        a = _populate(env_a, "owner@example.com", "Alpha", "11112222", PHONE_NUMBER_ID)
        ws_b = api.create_workspace("owner-b@example.com", name="Bravo Shop")
        # Bravo's own account at the sandbox: connecting proves ownership with Graph.
        env_a.sandbox.register_number(
            "109876543219999",
            waba_id="102345678909999",
            display_phone_number="6281234509999",
            token="EAAG-sandbox-token-B",
        )
        connect = {
            "waba_id": "102345678909999",
            "phone_number_id": "109876543219999",
            "display_phone_number": "6281234509999",
            "access_token": "EAAG-sandbox-token-B",
        }
        assert api.put(f"/v1/workspaces/{ws_b}/whatsapp", connect, as_user="owner-b@example.com").status == 200
        env_b = SendingEnv(api=api, sandbox=env_a.sandbox, sink=env_a.sink, ws=ws_b)
        b = _populate(env_b, "owner-b@example.com", "Bravo", "33334444", connect["phone_number_id"])
        env_a.sandbox.wait_until_idle()
        yield a, b


def _params(policy: RoutePolicy) -> list[str]:
    return [p for p in re.findall(r"<(\w+)>", policy.path) if p != "ws"]


def _suffix(policy: RoutePolicy) -> str:
    return policy.path.removeprefix("/v1/workspaces/<ws>")


def _assert_no_leak(response: Any, other: Tenant, context: str) -> None:
    text = response.body.decode("utf-8", errors="replace")
    for secret in other.secrets:
        assert secret not in text, f"{context}: {secret!r} of the other workspace leaked: {text[:500]}"


def test_every_id_parameter_is_known() -> None:
    """A new route with an unknown id parameter must be taught to this suite, not silently skipped."""
    unknown = {p for policy in POLICIES for p in _params(policy)} - set(ID_PARAMS)
    assert not unknown, f"route parameters this suite cannot fill: {unknown}"


def _foreign_id_requests(caller: Tenant, other: Tenant) -> int:
    checked = 0
    for policy in POLICIES:
        params = _params(policy)
        if not params:
            continue
        path = _suffix(policy)
        for param in params:
            path = path.replace(f"<{param}>", other.ids[param])
        body = BODIES.get((policy.method, _suffix(policy)), {} if policy.method in ("POST", "PUT", "PATCH") else None)
        response = caller.call(policy.method, path, body)
        context = f"{policy.method} {policy.path} with the other workspace's {params}"
        assert response.status in (400, 404), f"{context}: {response.status} {response.body[:300]!r}"
        assert response.content_type == "application/problem+json", context
        _assert_no_leak(response, other, context)
        checked += 1
    return checked


# Over 40 requests by one caller in a second or two: about isolation, not the budgets (test_rate_limits.py).
@pytest.mark.usefixtures("unlimited_budgets")
def test_ids_of_the_other_workspace_are_404_on_every_route(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    before = (a.snapshot(), b.snapshot())
    checked = _foreign_id_requests(a, b) + _foreign_id_requests(b, a)
    assert checked >= 2 * 15
    assert (a.snapshot(), b.snapshot()) == before, "a cross-tenant request changed the other workspace"
    # and nothing was sent on anyone's behalf by those attempts
    a.env.sandbox.wait_until_idle()
    bodies = [m.get("text", {}).get("body") for m in a.env.sends()]
    assert sorted(b for b in bodies if b) == sorted(
        ["Private note for tenant Alpha zebra", "Private note for tenant Bravo zebra"]
    )


def _cursors(tenant: Tenant) -> dict[str, str]:
    cursors = {}
    for route in LIST_ROUTES:
        path = route.replace("<contact_id>", tenant.ids["contact_id"])
        response = tenant.call("GET", f"{path}?limit=1")
        assert response.status == 200, (route, response.body)
        if response.json.get("next_cursor"):
            cursors[route] = response.json["next_cursor"]
    return cursors


# Some 200 requests by one user in a few seconds: about cursors, not the budgets (test_rate_limits.py).
@pytest.mark.usefixtures("unlimited_budgets")
def test_cursors_of_the_other_workspace_are_400_on_every_list_route(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    list_routes = [p for p in POLICIES if p.method == "GET" and _suffix(p) in LIST_ROUTES]
    assert {_suffix(p) for p in list_routes} == set(LIST_ROUTES)
    checked = 0
    for caller, other in ((a, b), (b, a)):
        foreign = _cursors(other)
        assert {"/contacts", "/audit"} <= set(foreign), foreign  # members and templates are not paginated
        own_cursors = _cursors(caller)
        for policy in list_routes:
            path = _suffix(policy).replace("<contact_id>", caller.ids["contact_id"])
            for source, cursor in foreign.items():
                response = caller.call("GET", f"{path}?limit=1&cursor={cursor}")
                context = f"GET {policy.path} with a cursor of the other workspace's {source}"
                # a listing without pagination (members, templates) ignores the parameter; one with it refuses
                ignored = response.status == 200 and "next_cursor" not in response.json
                assert ignored or response.status == 400, f"{context}: {response.status} {response.body[:300]!r}"
                _assert_no_leak(response, other, context)
                checked += 1
            # the caller's own cursors still work, and never show the other workspace either
            if _suffix(policy) in own_cursors:
                own = caller.call("GET", f"{path}?limit=1&cursor={own_cursors[_suffix(policy)]}")
                assert own.status == 200, own.body
                _assert_no_leak(own, other, f"own cursor on {policy.path}")
    assert checked >= 2 * len(LIST_ROUTES) * 2


def test_list_routes_never_show_the_other_workspace(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    for caller, other in ((a, b), (b, a)):
        for policy in POLICIES:
            if policy.method != "GET":
                continue
            path = _suffix(policy)
            for param in _params(policy):
                path = path.replace(f"<{param}>", caller.ids[param])
            response = caller.call("GET", path)
            assert response.status < 500, (policy, response.body)
            _assert_no_leak(response, other, f"GET {policy.path} with the caller's own ids")


def test_change_feed_seqs_of_the_other_workspace_give_nothing_of_it(
    tenants: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`GET .../changes?since=` is scoped to the path's workspace: a seq read from the other
    workspace's feed (or none) only positions the caller in its own feed."""
    from relasify.data import changes as feed

    monkeypatch.setattr(feed, "SETTLE", timedelta(0))
    a, b = tenants
    for caller, other in ((a, b), (b, a)):
        theirs = other.call("GET", "/changes").json["items"]
        assert theirs, "the populated workspace has events"
        assert {e["workspace_id"] for e in theirs} == {other.env.ws}
        for since in ["", f"?since={theirs[0]['seq']}"]:
            response = caller.call("GET", f"/changes{since}")
            assert response.status == 200, response.body
            assert {e["workspace_id"] for e in response.json["items"]} <= {caller.env.ws}
            other_conversations = {e["conversation_id"] for e in theirs}
            assert not other_conversations & {e["conversation_id"] for e in response.json["items"]}
            _assert_no_leak(response, other, "GET /changes with the other workspace's seq")


# Over 40 requests by one caller in a second or two: about isolation, not the budgets (test_rate_limits.py).
@pytest.mark.usefixtures("unlimited_budgets")
def test_a_key_of_one_workspace_gets_404_on_every_route_of_the_other(tenants: tuple[Tenant, Tenant]) -> None:
    """An admin API key of A, on every route of B with B's own ids (SPEC 5c: its one workspace only)."""
    a, b = tenants
    before = (a.snapshot(), b.snapshot())
    for caller, other in ((a, b), (b, a)):
        for policy in POLICIES:
            path = _suffix(policy)
            for param in _params(policy):
                path = path.replace(f"<{param}>", other.ids[param])
            body = BODIES.get(
                (policy.method, _suffix(policy)), {} if policy.method in ("POST", "PUT", "PATCH") else None
            )
            response = other.env.api.request(
                policy.method, f"/v1/workspaces/{other.ws}{path}", json_body=body, token=caller.api_key
            )
            context = f"{policy.method} {policy.path} of the other workspace with a key"
            assert response.status == 404, f"{context}: {response.status} {response.body[:300]!r}"
            assert response.json["detail"] == "Workspace not found", context
            _assert_no_leak(response, other, context)
    assert (a.snapshot(), b.snapshot()) == before, "a key changed the other workspace"
