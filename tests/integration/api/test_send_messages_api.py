"""POST /messages through the API harness against the WhatsApp sandbox: happy paths, every refusal,
idempotency (sequential and concurrent), Graph faults and error codes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from relasify import clock
from relasify.data import messages as message_store
from relasify.data import outbox, status_routes
from relasify.data import templates as template_store
from relasify.data.contacts import contact_repository
from relasify.data.identity import identity_repository
from relasify.errors import SendInProgress
from relasify.services import sending
from relasify.services.delivery import Delivery, connection_for_sending, deliver

from tests.integration.api.test_send_support import (
    AGENT,
    PHONE_NUMBER_ID,
    SendingEnv,
    problem_slug,
    sending_environment,
    template_body,
)
from tests.support.api import ApiClient


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _wait_for_status(env: SendingEnv, message_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = env.api.get(f"/v1/workspaces/{env.ws}/messages/{message_id}", as_user=AGENT)
        assert got.status == 200, got.body
        if got.json["status"] == status or time.monotonic() > deadline:
            return got.json
        time.sleep(0.05)


def test_template_send_reaches_read_and_shows_in_conversation(env: SendingEnv) -> None:
    contact = env.contact(inbound_hours_ago=None)  # no window needed for a template
    env.approved_template()
    response = env.post_message(template_body(contact.id), "key-1")
    assert response.status == 201, response.body
    sent = response.json
    assert sent["status"] in ("accepted", "sent", "delivered", "read")
    assert sent["wamid"].startswith("wamid.")
    assert sent["contact_id"] == contact.id
    assert sent["direction"] == "out"

    [graph_send] = env.sends()
    assert graph_send["to"] == "6281234567890"
    assert graph_send["phone_number_id"] == PHONE_NUMBER_ID
    assert graph_send["template"]["name"] == "order_update"
    # The status webhooks' route: workspace, message, contact, no broadcast, the message's month.
    route = status_routes.parse_status_callback(graph_send["biz_opaque_callback_data"])
    month = message_store.get_message(env.ws, sent["id"]).message_at.strftime("%Y-%m")
    assert route == status_routes.StatusRoute(env.ws, sent["id"], contact.id, None, month)

    final = _wait_for_status(env, sent["id"], "read")
    assert final["status"] == "read", final
    assert final["delivered_at"]
    assert final["read_at"]

    conversation = env.api.get(f"/v1/workspaces/{env.ws}/contacts/{contact.id}/messages", as_user=AGENT)
    assert conversation.status == 200, conversation.body
    assert [m["id"] for m in conversation.json["items"]] == [sent["id"]]


FREE_FORM: list[tuple[str, dict[str, Any]]] = [
    ("text", {"body": "Pesanan Anda sudah dikirim", "preview_url": False}),
    ("image", {"link": "https://example.com/a.jpg", "caption": "Foto"}),
    ("document", {"link": "https://example.com/a.pdf", "filename": "invoice.pdf"}),
    ("audio", {"id": "1234567890"}),
    ("video", {"link": "https://example.com/a.mp4"}),
    (
        "interactive",
        {
            "type": "button",
            "body": {"text": "Konfirmasi pesanan?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Ya"}}]},
        },
    ),
    (
        "interactive",
        {
            "type": "list",
            "body": {"text": "Pilih jadwal"},
            "action": {
                "button": "Jadwal",
                "sections": [{"title": "Besok", "rows": [{"id": "pagi", "title": "Pagi"}]}],
            },
        },
    ),
]


def test_every_free_form_type_is_sent_in_the_cloud_api_shape(env: SendingEnv) -> None:
    contact = env.contact()
    for i, (message_type, content) in enumerate(FREE_FORM):
        body = {"contact_id": contact.id, "type": message_type, message_type: content}
        response = env.post_message(body, f"type-{i}")
        assert response.status == 201, response.body
        assert response.json["content"] == content
        graph_send = env.sends()[-1]
        assert graph_send["type"] == message_type
        assert graph_send[message_type] == content
    assert len(env.sends()) == len(FREE_FORM)


def test_send_by_phone_creates_the_contact_then_reuses_it(env: SendingEnv) -> None:
    env.approved_template()
    body = {
        "to": "0812-3456-7890",
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "id"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Budi"}]}],
        },
    }
    first = env.post_message(body, "phone-1")
    assert first.status == 201, first.body
    contact = contact_repository().find_by_phone(env.ws, "+6281234567890")
    assert contact is not None
    assert first.json["contact_id"] == contact.id
    second = env.post_message(body, "phone-2")
    assert second.status == 201
    assert second.json["contact_id"] == contact.id
    assert [s["to"] for s in env.sends()] == ["6281234567890", "6281234567890"]


def test_missing_idempotency_key_is_a_400_and_sends_nothing(env: SendingEnv) -> None:
    contact = env.contact()
    response = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "x"}}, None)
    assert response.status == 400
    assert problem_slug(response) == "idempotency-key-required"
    assert env.sends() == []


def test_same_key_returns_the_first_result_and_another_body_is_422(env: SendingEnv) -> None:
    contact = env.contact()
    body = {"contact_id": contact.id, "type": "text", "text": {"body": "Halo"}}
    first = env.post_message(body, "same")
    again = env.post_message(body, "same")
    assert first.status == again.status == 201
    assert again.json["id"] == first.json["id"]
    assert again.json["wamid"] == first.json["wamid"]
    other = env.post_message({**body, "text": {"body": "Halo lagi"}}, "same")
    assert other.status == 422
    assert problem_slug(other) == "idempotency-key-reused"
    assert len(env.sends()) == 1


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")
def test_five_concurrent_requests_with_one_key_send_once(env: SendingEnv) -> None:
    """Through the service layer (the in-process gateway serialises calls to one function)."""
    env.sandbox.latency_seconds = 0.3  # keep the first request in flight while the others arrive
    contact = env.contact()
    body = {"contact_id": contact.id, "type": "text", "text": {"body": "Sekali saja"}}
    results: list[Any] = []
    barrier = threading.Barrier(5)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(sending.send_message(env.ws, body, "concurrent-key", actor_sub="agent"))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.id for r in results}) == 1
    assert len({r.wamid for r in results}) == 1
    assert len(env.sends()) == 1


def test_contact_refusals(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    cases = [
        ("restricted", "contact-restricted"),
        ("opted_out", "contact-opted-out"),
        ("unreachable", "recipient-unreachable"),
    ]
    for i, (setup, slug) in enumerate(cases):
        contact = env.contact(f"+62812345679{i}", **{setup: True})
        response = env.post_message(template_body(contact.id, "promo"), setup)
        assert response.status == 409, response.body
        assert problem_slug(response) == slug
        assert response.content_type == "application/problem+json"
    assert env.sends() == []


def test_opted_out_contact_still_gets_utility_templates(env: SendingEnv) -> None:
    contact = env.contact(opted_out=True)
    env.approved_template()
    assert env.post_message(template_body(contact.id), "k").status == 201


def test_refusal_order_restricted_before_opted_out_before_unreachable(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    everything = env.contact(restricted=True, opted_out=True, unreachable=True)
    assert problem_slug(env.post_message(template_body(everything.id, "promo"), "a")) == "contact-restricted"
    two = env.contact("+6281234567891", opted_out=True, unreachable=True)
    assert problem_slug(env.post_message(template_body(two.id, "promo"), "b")) == "contact-opted-out"


def test_not_connected_comes_first(api: Any) -> None:
    ws = api.create_workspace("solo@example.com")
    response = api.post(
        f"/v1/workspaces/{ws}/messages",
        {"contact_id": "nobody", "type": "text", "text": {"body": "x"}},
        as_user="solo@example.com",
        headers={"idempotency-key": "k"},
    )
    assert response.status == 409
    assert problem_slug(response) == "whatsapp-not-connected"


def test_free_form_outside_the_service_window_is_refused(env: SendingEnv) -> None:
    stale = env.contact(inbound_hours_ago=25)
    never = env.contact("+6281234567892", inbound_hours_ago=None)
    for contact in (stale, never):
        response = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "x"}}, contact.id)
        assert response.status == 409
        assert problem_slug(response) == "outside-service-window"
    assert env.sends() == []


def test_template_must_be_approved_in_that_language_with_the_right_parameters(env: SendingEnv) -> None:
    contact = env.contact()
    env.approved_template(body_params=2)
    missing = env.post_message(template_body(contact.id, "unknown_template"), "a")
    assert (missing.status, problem_slug(missing)) == (409, "template-not-approved")
    other_language = template_body(contact.id, params=("a", "b"))
    other_language["template"]["language"]["code"] = "en"
    wrong_language = env.post_message(other_language, "b")
    assert (wrong_language.status, problem_slug(wrong_language)) == (409, "template-not-approved")
    wrong_count = env.post_message(template_body(contact.id, params=("only one",)), "c")
    assert (wrong_count.status, problem_slug(wrong_count)) == (422, "template-not-approved")
    assert env.sends() == []
    ok = env.post_message(template_body(contact.id, params=("a", "b")), "d")
    assert ok.status == 201, ok.body


def test_a_template_known_only_from_its_webhook_sends_with_parameters(env: SendingEnv) -> None:
    """Created in Meta's UI and approved: the status webhook tells us its name and status but not its
    definition, so the parameter count is left to Meta instead of refusing every send."""
    contact = env.contact()
    template_store.apply_template_webhook(env.ws, "ui_made", "id", at=clock.now(), status="APPROVED")
    sent = env.post_message(template_body(contact.id, "ui_made", params=("Budi", "4471")), "ui")
    assert sent.status == 201, sent.body
    assert [s["template"]["name"] for s in env.sends()] == ["ui_made"]


def test_invalid_bodies_are_422(env: SendingEnv) -> None:
    contact = env.contact()
    bad = [
        {"contact_id": contact.id, "to": "+6281234567890", "type": "text", "text": {"body": "x"}},
        {"contact_id": contact.id, "type": "text", "image": {"link": "https://e.com/a.jpg"}},
        {"contact_id": contact.id, "type": "image", "image": {"caption": "no source"}},
        {
            "contact_id": contact.id,
            "type": "interactive",
            "interactive": {"type": "button", "body": {"text": "x"}, "action": {"buttons": []}},
        },
        {"to": "not a phone", "type": "text", "text": {"body": "x"}},
    ]
    for i, body in enumerate(bad):
        response = env.post_message(body, f"bad-{i}")
        assert response.status == 422, (body, response.body)
    assert env.sends() == []


def test_transient_graph_faults_are_retried_and_succeed(env: SendingEnv) -> None:
    contact = env.contact()
    faults: list[tuple[str, dict[str, Any]]] = [
        ("429", {"retry_after": 1}),
        ("500", {}),
        ("timeout", {"seconds": 1.5}),
        ("reset", {}),
    ]
    for kind, options in faults:
        env.sandbox.inject_fault(kind, 1, **options)
        response = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": kind}}, kind)
        assert response.status == 201, (kind, response.body)
        assert response.json["wamid"]
        assert [r["fault"] for r in env.sandbox.requests].count(kind) == 1
    assert len(env.sends()) == len(faults)


def test_graph_error_codes_end_as_problems_and_failed_messages(env: SendingEnv) -> None:
    env.approved_template()
    cases = [
        (131047, "outside-service-window"),
        (131026, "recipient-unreachable"),
        (131050, "contact-opted-out"),
        (132001, "template-not-approved"),
    ]
    for i, (code, slug) in enumerate(cases):
        contact = env.contact(f"+62812345678{i}")
        env.sandbox.inject_fault("error_code", 1, code=code)
        key = f"code-{code}"
        response = env.post_message(template_body(contact.id), key)
        assert response.status == 409, response.body
        assert problem_slug(response) == slug
        assert response.json["meta_error_code"] == code
        message_id = response.json["message_id"]
        stored = env.api.get(f"/v1/workspaces/{env.ws}/messages/{message_id}", as_user=AGENT).json
        assert stored["status"] == "failed"
        assert stored["error"]["code"] == code
        after = contact_repository().get(env.ws, contact.id)
        assert after is not None
        assert after.unreachable is (code == 131026)
        assert (after.consent.status == "opted_out") is (code == 131050)
        # The key is spent: a repeat returns the same problem and calls Meta no more.
        calls = len(env.sandbox.requests)
        repeat = env.post_message(template_body(contact.id), key)
        assert (repeat.status, problem_slug(repeat), repeat.json["message_id"]) == (409, slug, message_id)
        assert len(env.sandbox.requests) == calls


def test_webhook_failure_131026_marks_the_contact_unreachable(env: SendingEnv) -> None:
    contact = env.contact()
    env.sandbox.fail_recipient("6281234567890", 131026)
    response = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "x"}}, "k")
    assert response.status == 201
    final = _wait_for_status(env, response.json["id"], "failed")
    assert final["error"]["code"] == 131026
    deadline = time.monotonic() + 5
    while not getattr(contact_repository().get(env.ws, contact.id), "unreachable", False):
        assert time.monotonic() < deadline, "the failed status did not mark the contact unreachable"
        time.sleep(0.05)


def test_token_expiry_marks_the_connection(env: SendingEnv) -> None:
    contact = env.contact()
    env.sandbox.inject_fault("error_code", 1, code=190)
    response = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "x"}}, "k")
    assert response.status == 409
    assert problem_slug(response) == "whatsapp-token-expired"
    connection = identity_repository().get_whatsapp_connection(env.ws)
    assert connection is not None
    assert connection.token_status == "expired"
    blocked = env.post_message({"contact_id": contact.id, "type": "text", "text": {"body": "y"}}, "k2")
    assert problem_slug(blocked) == "whatsapp-not-connected"


def test_a_crash_after_the_outbox_write_resends_under_the_same_message(env: SendingEnv) -> None:
    """The retry of a request whose first attempt died before Meta answered reuses the outbox item."""
    contact = env.contact()
    connection = connection_for_sending(env.ws)
    delivery = Delivery(
        ws=env.ws,
        connection=connection,
        contact=contact,
        message_id="msg_crash_test",
        type="text",
        content={"body": "x"},
    )

    def crash() -> None:
        raise RuntimeError("Lambda timed out")

    with pytest.raises(RuntimeError):
        deliver(delivery, before_graph_call=crash)
    assert message_store.get_message(env.ws, "msg_crash_test").status == "accepted"  # type: ignore[union-attr]
    first = deliver(delivery)
    again = deliver(delivery)
    assert first.id == again.id == "msg_crash_test"
    assert first.wamid == again.wamid
    assert len(env.sends()) == 1


def test_get_unknown_message_is_404(env: SendingEnv) -> None:
    response = env.api.get(f"/v1/workspaces/{env.ws}/messages/msg_nope", as_user=AGENT)
    assert response.status == 404


def _delivery(env: SendingEnv, message_id: str) -> Delivery:
    return Delivery(
        ws=env.ws,
        connection=connection_for_sending(env.ws),
        contact=env.contact(),
        message_id=message_id,
        type="text",
        content={"body": "x"},
    )


def test_an_attempt_racing_a_running_one_does_not_send_again(env: SendingEnv) -> None:
    """An SQS redelivery or retried request arriving while the first attempt is still talking to Meta
    (outbox item without wamid, lease held) is refused with send-in-progress; Meta gets one send."""
    delivery = _delivery(env, "msg_race_test")
    first_in_graph = threading.Event()
    second_done = threading.Event()
    outcome: dict[str, Any] = {}

    def hold_until_second_tried() -> None:
        first_in_graph.set()
        assert second_done.wait(10)

    def first_attempt() -> None:
        outcome["first"] = deliver(delivery, before_graph_call=hold_until_second_tried)

    runner = threading.Thread(target=first_attempt)
    runner.start()
    assert first_in_graph.wait(10)
    with pytest.raises(SendInProgress) as refused:
        deliver(delivery)
    second_done.set()
    runner.join(10)

    assert refused.value.status == 409
    assert refused.value.type_slug == "send-in-progress"
    assert len(env.sends()) == 1
    again = deliver(delivery)  # once the first has its wamid: the same message, nothing sent
    assert again.wamid == outcome["first"].wamid
    assert len(env.sends()) == 1


def test_a_killed_attempt_blocks_retries_until_its_lease_runs_out(env: SendingEnv) -> None:
    """A process killed after the outbox write (no chance to give the lease back): a retry waits for the
    lease (longer than the function's timeout, so the dead attempt cannot still be running), then sends."""
    delivery = _delivery(env, "msg_killed_test")
    outbox.put_accepted(
        outbox.NewOutbound(
            ws=env.ws,
            message_id=delivery.message_id,
            contact_id=delivery.contact.id,
            type="text",
            content={"body": "x"},
        )
    )  # ... and the process died here
    with pytest.raises(SendInProgress):
        deliver(delivery)
    assert env.sends() == []

    later = clock.now() + timedelta(seconds=outbox.API_SEND_LEASE_SECONDS + 1)
    clock.set_clock(lambda: later)
    try:
        sent = deliver(delivery)
    finally:
        clock.set_clock(None)
    assert sent.id == "msg_killed_test"
    assert sent.wamid
    assert len(env.sends()) == 1


def test_send_leases_outlast_the_timeouts_of_the_functions_that_send() -> None:
    from relasify_local.cfn import load_template

    template = load_template()
    resources = template["Resources"]
    default_timeout = template["Globals"]["Function"]["Timeout"]

    def timeout(logical_id: str) -> int:
        return int(resources[logical_id]["Properties"].get("Timeout", default_timeout))

    assert timeout("SendApiFunction") < outbox.API_SEND_LEASE_SECONDS
    assert timeout("BroadcastWorkerFunction") < outbox.BROADCAST_SEND_LEASE_SECONDS


def test_a_contact_known_only_by_user_id_is_addressed_by_recipient(env: SendingEnv) -> None:
    """Users with a WhatsApp username may reach us with a business-scoped user id and no phone; the
    Cloud API takes that id as `recipient` instead of `to` (../shared/reference/whatsapp.md)."""
    env.approved_template()
    created = env.api.post(f"/v1/workspaces/{env.ws}/contacts", {"user_id": "US.13491208655302741918"}, as_user=AGENT)
    assert created.status == 201, created.body
    sent = env.post_message(template_body(created.json["id"]), "by-user-id")
    assert sent.status == 201, sent.body
    (payload,) = env.sends()
    assert payload["recipient"] == "US.13491208655302741918"
    assert "to" not in payload
    stored = env.api.get(f"/v1/workspaces/{env.ws}/contacts/{created.json['id']}", as_user=AGENT).json
    assert stored["wa_id"] is None  # no WhatsApp id invented from the user id


def test_a_repeat_is_answered_as_the_first_even_when_the_checks_now_refuse(env: SendingEnv) -> None:
    """The outbox item answers a repeated key: a contact restricted since (or any refusal that would
    now apply) does not turn the first request's 201 into a refusal, and Meta is not called again."""
    contact = env.contact()
    body = {"contact_id": contact.id, "type": "text", "text": {"body": "Halo"}}
    first = env.post_message(body, "answered")
    assert first.status == 201, first.body
    contact_repository().set_restricted(env.ws, contact.id, True)
    again = env.post_message(body, "answered")
    assert again.status == 201, again.body
    assert (again.json["id"], again.json["wamid"]) == (first.json["id"], first.json["wamid"])
    other = env.post_message({**body, "text": {"body": "Halo lagi"}}, "answered")
    assert (other.status, problem_slug(other)) == (422, "idempotency-key-reused")
    fresh = env.post_message(body, "new-key")
    assert (fresh.status, problem_slug(fresh)) == (409, "contact-restricted")
    assert len(env.sends()) == 1


def test_a_reused_key_with_another_body_is_refused_while_its_first_send_has_no_wamid(env: SendingEnv) -> None:
    """The first request ended after its outbox write without a wamid (Meta unavailable past the
    retries): the same key with another body is 422 and sends nothing (neither body); the same body
    then sends once, under the first request's message id."""
    contact = env.contact()
    body = {"contact_id": contact.id, "type": "text", "text": {"body": "Pertama"}}
    env.sandbox.inject_fault("500", 10)
    failed = env.post_message(body, "outage")
    assert failed.status == 503, failed.body
    env.sandbox.reset()
    other = env.post_message({**body, "text": {"body": "Kedua"}}, "outage")
    assert (other.status, problem_slug(other)) == (422, "idempotency-key-reused")
    assert env.sends() == []
    retry = env.post_message(body, "outage")
    assert retry.status == 201, retry.body
    assert retry.json["id"] == outbox.derived_message_id(env.ws, "api", "outage")
    assert [s["text"]["body"] for s in env.sends()] == ["Pertama"]


def test_a_duplicate_waits_for_the_first_and_sends_itself_when_the_first_gives_up(env: SendingEnv) -> None:
    """A duplicate that finds the first attempt's lease held polls; when the first attempt ends
    without a wamid (a transient failure gives the lease back) the duplicate sends, once."""
    contact = env.contact()
    body = {"contact_id": contact.id, "type": "text", "text": {"body": "Tunggu"}}
    message_id = outbox.derived_message_id(env.ws, "api", "waiting")
    outbox.put_accepted(
        outbox.NewOutbound(
            ws=env.ws,
            message_id=message_id,
            contact_id=contact.id,
            type="text",
            content={"body": "Tunggu"},
            request_hash=outbox.request_hash(body),
        )
    )  # the first attempt holds the lease ...
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:
            outbox.release_send_lease(env.ws, message_id)  # ... and gives it back without a wamid

    sent = sending.send_message(env.ws, body, "waiting", sleep=sleep)
    assert sent.id == message_id
    assert sent.wamid
    assert len(polls) == 3
    assert len(env.sends()) == 1
