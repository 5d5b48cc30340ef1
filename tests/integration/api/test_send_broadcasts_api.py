"""Broadcasts through the API and the worker (jobs drained from the moto queue) against the sandbox:
audience by tags and ids, dedupe, skips with reasons, parameters, cancel, schedule, counts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from relasify import clock
from relasify.data import broadcast_recipients
from relasify.data import broadcasts as broadcast_store
from relasify.data import templates as template_store
from relasify.services import broadcast_pipeline
from relasify.settings import get_settings
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.runtime import functions_from_template

from tests.integration.api.test_send_support import (
    AGENT,
    OWNER,
    SendingEnv,
    drain_broadcast_queue,
    problem_slug,
    sending_environment,
)
from tests.support.api import ApiClient


@pytest.fixture
def env(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendingEnv]:
    yield from sending_environment(api, monkeypatch)


def _create(env: SendingEnv, **overrides: Any) -> Any:
    body = {
        "template": "promo",
        "language": "id",
        "audience": {"tags": ["vip"]},
        "parameters": [{"field": "name"}],
        **overrides,
    }
    return env.api.post(f"/v1/workspaces/{env.ws}/broadcasts", body, as_user=OWNER)


def _get(env: SendingEnv, broadcast_id: str) -> dict[str, Any]:
    response = env.api.get(f"/v1/workspaces/{env.ws}/broadcasts/{broadcast_id}", as_user=OWNER)
    assert response.status == 200, response.body
    return response.json


def _take_jobs() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    url = get_settings().broadcast_queue_url
    jobs = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return jobs
        for message in messages:
            jobs.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_broadcast_to_tags_dedupes_skips_and_counts(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    a = env.contact("+6281234567801", tags=["vip"], name="Ani", inbound_hours_ago=None)
    b = env.contact("+6281234567802", tags=["vip", "promo"], name="Budi", inbound_hours_ago=None)
    c = env.contact("+6281234567803", tags=["promo"], name="Citra", inbound_hours_ago=None)
    env.contact("+6281234567804", tags=["vip"], opted_out=True, inbound_hours_ago=None)
    env.contact("+6281234567805", tags=["promo"], restricted=True, inbound_hours_ago=None)
    env.contact("+6281234567806", tags=["other"], inbound_hours_ago=None)

    created = _create(env, audience={"tags": ["vip", "promo"]})
    assert created.status == 202, created.body
    assert created.json["status"] == "queued"
    drain_broadcast_queue()

    sends = env.sends()
    assert sorted(s["to"] for s in sends) == sorted(x.wa_id for x in (a, b, c))  # b once, though in both tags
    names = {s["to"]: s["template"]["components"][0]["parameters"][0]["text"] for s in sends}
    assert names == {a.wa_id: "Ani", b.wa_id: "Budi", c.wa_id: "Citra"}
    assert all(s["template"]["name"] == "promo" for s in sends)

    view = _get(env, created.json["id"])
    assert view["status"] == "completed"
    assert view["total"] == 5
    counts = view["counts"]
    assert (counts["queued"], counts["sent"], counts["failed"], counts["skipped"]) == (0, 3, 0, 2)
    assert counts["skipped_reasons"] == {"contact-opted-out": 1, "contact-restricted": 1}

    # The sandbox's status webhooks (sent, delivered, read) feed the counters through the processor.
    assert env.sandbox.wait_until_idle(15)
    counts = _get(env, created.json["id"])["counts"]
    assert (counts["sent"], counts["delivered"], counts["read"]) == (3, 3, 3)


def test_broadcast_to_ids_sends_each_contact_once_even_when_jobs_are_redelivered(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    x = env.contact("+6281234567811", inbound_hours_ago=None)
    y = env.contact("+6281234567812", inbound_hours_ago=None)
    created = _create(env, audience={"contact_ids": [x.id, y.id, x.id]})
    assert created.status == 202, created.body
    # start, expand, then a send chunk handled twice (an SQS redelivery)
    for job in _take_jobs():
        broadcast_pipeline.handle_job(job)
    for job in _take_jobs():
        broadcast_pipeline.handle_job(job)
    send_jobs = _take_jobs()
    assert [j["kind"] for j in send_jobs] == ["send"]
    broadcast_pipeline.handle_job(send_jobs[0])
    broadcast_pipeline.handle_job(send_jobs[0])
    assert sorted(s["to"] for s in env.sends()) == sorted([x.wa_id, y.wa_id])
    listed = env.api.get(f"/v1/workspaces/{env.ws}/broadcasts", as_user=OWNER)
    assert listed.status == 200
    assert [b["id"] for b in listed.json["items"]] == [created.json["id"]]
    view = _get(env, created.json["id"])
    assert view["total"] == 2
    counts = view["counts"]
    assert counts["sent"] == 2
    assert counts["queued"] == 0


def test_missing_parameter_skips_the_contact(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    env.contact("+6281234567821", tags=["vip"], attributes={"city": "Bandung"}, inbound_hours_ago=None)
    env.contact("+6281234567822", tags=["vip"], inbound_hours_ago=None)
    created = _create(env, parameters=[{"attribute": "city"}])
    drain_broadcast_queue()
    [send] = env.sends()
    assert send["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Bandung"}]
    counts = _get(env, created.json["id"])["counts"]
    assert counts["skipped_reasons"] == {"missing-parameter": 1}


def test_a_media_header_template_is_broadcast_with_its_media_and_a_wrong_header_is_refused(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING", header={"type": "HEADER", "format": "IMAGE"})
    contact = env.contact("+6281234567823", tags=["vip"], name="Ani", inbound_hours_ago=None)
    image = {"type": "image", "link": "https://cdn.example.com/promo.jpg"}
    for header, problem in (
        (None, "takes a header parameter of type image; got none"),
        ({"type": "video", "link": "https://cdn.example.com/promo.mp4"}, "got type video"),
        ({"field": "name"}, "got type text"),
    ):
        refused = _create(env, **({"header": header} if header else {}))
        assert (refused.status, problem_slug(refused)) == (422, "template-not-approved"), refused.body
        assert problem in refused.json["detail"]
    for invalid in (
        {**image, "id": "123"},  # both sources
        {"type": "image", "link": "https://cdn.example.com/a.jpg", "filename": "a.jpg"},  # documents only
        {"type": "sticker", "id": "1"},
    ):
        assert _create(env, header=invalid).status == 422
    assert env.api.get(f"/v1/workspaces/{env.ws}/broadcasts", as_user=OWNER).json["items"] == []

    created = _create(env, header=image)
    assert created.status == 202, created.body
    assert created.json["header"] == image
    drain_broadcast_queue()
    [send] = env.sends()
    assert send["to"] == contact.wa_id
    assert send["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/promo.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ani"}]},
    ]
    assert _get(env, created.json["id"])["header"] == image


def test_a_text_header_parameter_comes_from_each_contact(env: SendingEnv) -> None:
    env.approved_template(
        "promo", category="MARKETING", header={"type": "HEADER", "format": "TEXT", "text": "Promo {{1}}"}
    )
    bandung = env.contact(
        "+6281234567824", tags=["vip"], name="Ani", attributes={"city": "Bandung"}, inbound_hours_ago=None
    )
    env.contact("+6281234567825", tags=["vip"], name="Budi", inbound_hours_ago=None)  # no city, no default
    created = _create(env, header={"attribute": "city"})
    assert created.status == 202, created.body
    drain_broadcast_queue()
    [send] = env.sends()
    assert send["to"] == bandung.wa_id
    assert send["template"]["components"][0] == {"type": "header", "parameters": [{"type": "text", "text": "Bandung"}]}
    assert _get(env, created.json["id"])["counts"]["skipped_reasons"] == {"missing-parameter": 1}


def test_a_header_for_a_template_without_one_is_refused(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    env.approved_template(  # a text header without a placeholder takes no parameter either
        "fixed", category="MARKETING", header={"type": "HEADER", "format": "TEXT", "text": "Promo"}
    )
    for template in ("promo", "fixed"):
        refused = _create(env, template=template, header={"text": "Diskon"})
        assert (refused.status, problem_slug(refused)) == (422, "template-not-approved"), refused.body
        assert "takes no header parameter; got type text" in refused.json["detail"]
        assert _create(env, template=template).status == 202


def test_cancel_skips_what_is_still_queued(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    for i in range(3):
        env.contact(f"+62812345678{30 + i}", tags=["vip"], inbound_hours_ago=None)
    created = _create(env)
    broadcast_id = created.json["id"]
    for job in _take_jobs():  # start
        broadcast_pipeline.handle_job(job)
    for job in _take_jobs():  # expand
        broadcast_pipeline.handle_job(job)
    pending_sends = _take_jobs()
    cancel = env.api.post(f"/v1/workspaces/{env.ws}/broadcasts/{broadcast_id}/cancel", {}, as_user=OWNER)
    assert cancel.status == 200, cancel.body
    assert cancel.json["status"] == "cancelled"
    for job in pending_sends:
        broadcast_pipeline.handle_job(job)
    assert env.sends() == []
    view = _get(env, broadcast_id)
    assert view["status"] == "cancelled"
    assert view["counts"]["skipped_reasons"] == {"cancelled": 3}
    assert view["counts"]["queued"] == 0
    again = env.api.post(f"/v1/workspaces/{env.ws}/broadcasts/{broadcast_id}/cancel", {}, as_user=OWNER)
    assert again.status == 409


def test_scheduled_broadcast_waits(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    env.contact("+6281234567841", tags=["vip"], inbound_hours_ago=None)
    later = clock.now() + timedelta(hours=2)
    created = _create(env, scheduled_at=later.isoformat())
    assert created.status == 202, created.body
    assert created.json["status"] == "scheduled"
    stored = broadcast_store.get_broadcast(env.ws, created.json["id"])
    assert stored is not None
    assert stored.scheduled_at is not None
    outcome = broadcast_pipeline.handle_job({"kind": "start", "ws": env.ws, "broadcast_id": created.json["id"]})
    assert outcome == "waiting"
    assert env.sends() == []
    # once due, the re-enqueued start runs it
    clock.set_clock(lambda: later + timedelta(seconds=1))
    try:
        assert (
            broadcast_pipeline.handle_job({"kind": "start", "ws": env.ws, "broadcast_id": created.json["id"]})
            == "started"
        )
    finally:
        clock.set_clock(None)


def test_scheduled_at_in_the_past_or_beyond_90_days_is_refused_and_nothing_is_queued(env: SendingEnv) -> None:
    env.approved_template("promo", category="MARKETING")
    env.contact("+6281234567842", tags=["vip"], inbound_hours_ago=None)
    now = clock.now()
    for when, detail in (
        (now - timedelta(hours=1), "scheduled_at lies in the past."),  # a wrong year or offset: not "send now"
        (now + timedelta(days=91), "scheduled_at is too far ahead."),
    ):
        refused = _create(env, scheduled_at=when.isoformat())
        assert refused.status == 422, refused.body
        assert problem_slug(refused) == "validation-error"
        assert refused.json["detail"] == detail
        assert refused.json["errors"][0]["location"] == "/scheduled_at"
    assert env.api.get(f"/v1/workspaces/{env.ws}/broadcasts", as_user=OWNER).json["items"] == []
    assert _take_jobs() == []
    skewed = _create(env, scheduled_at=(now - timedelta(minutes=2)).isoformat())  # clock skew: sent now
    assert (skewed.status, skewed.json["status"]) == (202, "queued")
    far = _create(env, scheduled_at=(now + timedelta(days=89)).isoformat())
    assert (far.status, far.json["status"]) == (202, "scheduled")


def test_broadcast_refusals_and_roles(env: SendingEnv) -> None:
    not_approved = _create(env)
    assert (not_approved.status, problem_slug(not_approved)) == (409, "template-not-approved")
    env.approved_template("promo", category="MARKETING", body_params=2)
    wrong_count = _create(env)
    assert (wrong_count.status, problem_slug(wrong_count)) == (422, "template-not-approved")
    both = _create(env, audience={"tags": ["vip"], "contact_ids": ["c1"]})
    assert both.status == 422
    agent = env.api.post(
        f"/v1/workspaces/{env.ws}/broadcasts",
        {"template": "promo", "language": "id", "audience": {"tags": ["vip"]}},
        as_user=AGENT,
    )
    assert agent.status == 403


def _expand_once(env: SendingEnv, contacts: int) -> list[dict[str, Any]]:
    """Create a broadcast to `contacts` tagged contacts, run its start job and ONE expand job; returns
    the jobs that expand job enqueued."""
    env.approved_template("promo", category="MARKETING")
    for i in range(contacts):
        env.contact(f"+628124400{i:04d}", tags=["vip"], name=f"Pelanggan {i}", inbound_hours_ago=None)
    assert _create(env).status == 202
    (start,) = _take_jobs()
    broadcast_pipeline.handle_job(start)
    (expand,) = _take_jobs()
    assert expand["kind"] == "expand"
    broadcast_pipeline.handle_job(expand)
    return _take_jobs()


def test_one_expand_job_queues_the_whole_audience(env: SendingEnv) -> None:
    """Pages follow each other in the same invocation: the sends of every page are queued at once, so all
    containers share them (a page per invocation left the next page behind its own sends)."""
    contacts = broadcast_pipeline.EXPAND_PAGE_SIZE * 2 + 30
    jobs = _expand_once(env, contacts)
    assert {j["kind"] for j in jobs} == {"send"}
    assert sum(len(j["contact_ids"]) for j in jobs) == contacts
    assert max(len(j["contact_ids"]) for j in jobs) <= broadcast_pipeline.SEND_CHUNK_SIZE


def test_an_expand_job_past_its_budget_hands_the_rest_to_a_continuation(
    env: SendingEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broadcast_pipeline, "EXPAND_BUDGET_SECONDS", 0.0)
    contacts = broadcast_pipeline.EXPAND_PAGE_SIZE + 10
    jobs = _expand_once(env, contacts)
    continuation = [j for j in jobs if j["kind"] == "expand"]
    sends = [j for j in jobs if j["kind"] == "send"]
    assert len(continuation) == 1
    assert sum(len(j["contact_ids"]) for j in sends) == broadcast_pipeline.EXPAND_PAGE_SIZE
    broadcast_pipeline.handle_job(continuation[0])
    rest = _take_jobs()
    assert {j["kind"] for j in rest} == {"send"}
    assert sum(len(j["contact_ids"]) for j in rest) == 10


def test_a_batch_reads_the_next_chunk_while_the_previous_one_is_sending(
    env: SendingEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send jobs of one worker batch overlap: the next chunk is read and queued while the previous
    chunk's messages are in flight, so the container never stops asking for tokens between chunks."""
    jobs = _expand_once(env, broadcast_pipeline.SEND_CHUNK_SIZE * 2 + 10)
    assert [len(j["contact_ids"]) for j in jobs] == [broadcast_pipeline.SEND_CHUNK_SIZE] * 2 + [10]
    done_at_each_read: list[set[str]] = []  # the contacts whose send had finished when a chunk was read
    done: set[str] = set()
    lock = threading.Lock()
    read_recipients, send_one = broadcast_recipients.get_recipients, broadcast_pipeline._send_one

    def timed_read(*args: Any, **kwargs: Any) -> Any:
        with lock:
            done_at_each_read.append(set(done))
        return read_recipients(*args, **kwargs)

    def slow_send(*args: Any) -> str:
        outcome = send_one(*args)
        time.sleep(0.5)  # a slow Graph call: the chunk stays in flight long enough to tell
        with lock:
            done.add(args[5].id)  # the contact
        return outcome

    monkeypatch.setattr(broadcast_recipients, "get_recipients", timed_read)
    monkeypatch.setattr(broadcast_pipeline, "_send_one", slow_send)
    outcomes = broadcast_pipeline.run_jobs([json.dumps(job) for job in jobs])

    assert outcomes == [f"sent {len(job['contact_ids'])}" for job in jobs]
    assert len(done_at_each_read) == 3
    # Each next chunk was read while the previous one still had messages in flight.
    assert not set(jobs[0]["contact_ids"]) <= done_at_each_read[1]
    assert not set(jobs[1]["contact_ids"]) <= done_at_each_read[2]
    assert sorted(s["to"] for s in env.sends()) == sorted(set(s["to"] for s in env.sends()))
    assert len(env.sends()) == sum(len(job["contact_ids"]) for job in jobs)
    view = _get(env, _only_broadcast_id(env))
    assert (view["status"], view["counts"]["sent"], view["counts"]["queued"]) == ("completed", 60, 0)


def test_the_worker_reports_only_the_failed_jobs_of_a_batch(env: SendingEnv) -> None:
    """A job that fails (here: a body that is not a job) is reported alone in `batchItemFailures`; the
    batch's other jobs ran and their messages are deleted."""
    jobs = _expand_once(env, 3)
    worker = functions_from_template(load_template(), REPO_ROOT)["BroadcastWorkerFunction"]
    records = [
        {"messageId": "bad", "receiptHandle": "r0", "body": "not json", "eventSource": "aws:sqs"},
        *(
            {"messageId": f"job{i}", "receiptHandle": f"r{i + 1}", "body": json.dumps(job), "eventSource": "aws:sqs"}
            for i, job in enumerate(jobs)
        ),
    ]
    result = worker.invoke({"Records": records})
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert len(env.sends()) == 3
    assert _get(env, _only_broadcast_id(env))["status"] == "completed"


def _only_broadcast_id(env: SendingEnv) -> str:
    listed = env.api.get(f"/v1/workspaces/{env.ws}/broadcasts", as_user=OWNER)
    (broadcast,) = listed.json["items"]
    return str(broadcast["id"])


def test_a_contact_in_two_tags_is_queued_once_and_a_redelivered_expansion_queues_it_once_again(
    env: SendingEnv,
) -> None:
    """The page that claimed a contact queues it; another tag's page that meets it again does not (two
    send jobs for one contact would race each other). A redelivered expansion re-queues each page's
    still-queued recipients once (its sends may never have been enqueued)."""
    env.approved_template("promo", category="MARKETING")
    both = env.contact("+6281234567851", tags=["vip", "promo"], inbound_hours_ago=None)
    only_promo = env.contact("+6281234567852", tags=["promo"], inbound_hours_ago=None)
    assert _create(env, audience={"tags": ["vip", "promo"]}).status == 202
    (start,) = _take_jobs()
    broadcast_pipeline.handle_job(start)
    (expand,) = _take_jobs()

    def queued_ids() -> list[str]:
        return sorted(cid for job in _take_jobs() for cid in job["contact_ids"])

    broadcast_pipeline.handle_job(expand)
    assert queued_ids() == sorted([both.id, only_promo.id])
    broadcast_pipeline.handle_job(expand)  # SQS delivers the expansion again
    assert queued_ids() == sorted([both.id, only_promo.id])


def test_messages_without_a_token_before_the_invocation_runs_out_go_back_on_the_queue(env: SendingEnv) -> None:
    """A slow number (1 msg/s) and an invocation near its end: the messages that got no token in time
    stay queued and go out in a fresh send job (the job itself succeeds, so its receive count is not
    spent); the fresh job sends each of them once."""
    jobs = _expand_once(env, 4)
    path = f"/v1/workspaces/{env.ws}/whatsapp"
    assert env.api.patch(path, {"throughput_per_second": 1}, as_user=OWNER).status == 200

    [outcome] = broadcast_pipeline.run_jobs(jobs, seconds_left=broadcast_pipeline.INVOCATION_RESERVE_SECONDS + 2.0)

    assert isinstance(outcome, str)
    assert outcome.startswith("sent ")
    assert "deferred" in outcome, outcome
    sent_first = len(env.sends())
    assert sent_first <= 3  # one token a second, two seconds to wait: at least one message left over
    (fresh,) = _take_jobs()
    assert fresh["kind"] == "send"
    assert len(fresh["contact_ids"]) == 4 - sent_first
    view = _get(env, _only_broadcast_id(env))
    assert (view["status"], view["counts"]["queued"]) == ("running", 4 - sent_first)

    assert broadcast_pipeline.run_jobs([fresh]) == [f"sent {4 - sent_first}"]  # no deadline: waits for its tokens
    assert sorted(s["to"] for s in env.sends()) == sorted(set(s["to"] for s in env.sends()))
    assert len(env.sends()) == 4
    assert _get(env, _only_broadcast_id(env))["status"] == "completed"


def test_a_job_the_invocation_has_no_time_left_for_goes_back_on_the_queue_untouched(env: SendingEnv) -> None:
    jobs = _expand_once(env, 3)
    assert broadcast_pipeline.run_jobs(jobs, seconds_left=broadcast_pipeline.INVOCATION_RESERVE_SECONDS - 1) == [
        "deferred"
    ]
    assert env.sends() == []
    assert _take_jobs() == jobs


def test_a_utility_broadcast_reaches_opted_out_contacts_a_marketing_one_skips_them(env: SendingEnv) -> None:
    """Opt-out withdraws consent to marketing, on broadcasts as on the messages API."""
    env.approved_template("promo", category="MARKETING")
    env.approved_template("notice", category="UTILITY")
    opted_out = env.contact("+6281234567861", tags=["vip"], opted_out=True, inbound_hours_ago=None)
    created = [_create(env, template=name).json["id"] for name in ("promo", "notice")]
    drain_broadcast_queue()
    promo, notice = (_get(env, broadcast_id)["counts"] for broadcast_id in created)
    assert (promo["sent"], promo["skipped_reasons"]) == (0, {"contact-opted-out": 1})
    assert (notice["sent"], notice["skipped_reasons"]) == (1, {})
    assert [s["to"] for s in env.sends()] == [opted_out.wa_id]


def test_a_broadcast_of_a_template_known_only_from_its_webhook_is_accepted(env: SendingEnv) -> None:
    template_store.apply_template_webhook(env.ws, "ui_made", "id", at=clock.now(), status="APPROVED")
    env.contact("+6281234567862", tags=["vip"], inbound_hours_ago=None)
    created = _create(env, template="ui_made")
    assert created.status == 202, created.body
    drain_broadcast_queue()
    assert len(env.sends()) == 1
