"""Broadcast throughput: a broadcast to N contacts at a cap of R msg/s against the WhatsApp sandbox
with Graph latency L, run by C concurrent worker "containers" (processes, like concurrent Lambda
invocations, each running the template's BroadcastWorker handler on SQS batches of the template's
size) behind the shared DynamoDB slot limiter.

Reports the achieved send rate (first to last Graph send) against the cap, duplicates (sends per
recipient beyond one), the most tokens the limiter handed out and the most sends the sandbox
received in any 1-second window, and, for context, the per-request cost of the emulated DynamoDB
measured in the same run.

python -m bench broadcast_rate                                   # 2,000 contacts, 80 msg/s, 150 ms
python -m bench.broadcast_rate --contacts 300 --rate 20          # a quick run
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.payloads import APP_SECRET
from bench.report import Section
from bench.stack import bench_stack, moto_server_process

COMMAND = "python -m bench broadcast_rate"
PHONE_NUMBER_ID = "109876543210987"
TAG = "bench"
WORKER = "BroadcastWorkerFunction"
TARGET_RATIO = 0.9
FINAL_STATUSES = frozenset({"completed", "cancelled", "failed"})


@dataclass
class Result:
    contacts: int
    cap: float
    latency: float
    containers: int
    sends: int
    unique_recipients: int
    duplicates: int
    send_seconds: float
    total_seconds: float
    counts: dict[str, Any]
    emulator_ops_per_second: float
    peak_sends_in_a_second: int = 0
    peak_tokens_in_a_second: int = 0

    @property
    def achieved_rate(self) -> float:
        return self.sends / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.achieved_rate / self.cap


def _seed(ws: str, contacts: int) -> None:
    """Contacts with the tag, written in batches (the broadcast path reads tag items + contacts)."""
    from relasify.data import models as m

    with m.ContactModel.batch_write() as batch:
        for i in range(contacts):
            contact_id = f"c{i:06d}"
            phone = f"+62812{i:07d}"
            item = m.ContactModel(
                m.ws_pk(ws),
                f"{m.ContactModel.SK_PREFIX}{contact_id}",
                ws_id=ws,
                contact_id=contact_id,
                phone=phone,
                wa_id=phone[1:],
                name=f"Kontak {i}",
                tags=[TAG],
            )
            batch.save(item)
            batch.save(
                m.ContactTagModel(
                    m.contact_tag_pk(ws, TAG), f"CONTACT#{contact_id}", ws_id=ws, tag=TAG, contact_id=contact_id
                )
            )


def _container(queue_url: str, ready: Any, finished: Any, deadline: float) -> None:
    """One worker container: the template's BroadcastWorker handler fed by the local stack's SQS poller
    with the template's event source settings (batch size, partial batch failures), as Lambda runs it.
    Like Lambda's pollers it polls until the broadcast is over, whoever took the earlier messages (an
    idle container does not retire while jobs may still come).

    Its handler is imported (the cold start's init) before the broadcast is created: on Lambda each
    container starts on a host of its own, here four imports at once would take this machine's two
    cores from the emulated DynamoDB during the first seconds of sending (cold start is measured by
    `bench.cold_start`)."""
    import boto3
    from relasify_local.aws import LocalQueue
    from relasify_local.cfn import TEMPLATE_PATH, load_template
    from relasify_local.pollers import SqsPoller
    from relasify_local.runtime import functions_from_template

    function = functions_from_template(load_template(), TEMPLATE_PATH.parent)[WORKER]
    (event,) = function.events_of_type("SQS").values()
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    poller = SqsPoller(
        function,
        LocalQueue(logical_id="BroadcastQueue", name=queue_url.rsplit("/", 1)[-1], url=queue_url, arn=arn),
        sqs,
        batch_size=int(event["BatchSize"]),
        report_batch_item_failures="ReportBatchItemFailures" in event.get("FunctionResponseTypes", []),
    )
    function.handler_callable()  # init: imports the handler module, as a cold start does
    ready.release()
    while not finished.is_set() and time.time() < deadline:
        if poller.poll_once().received == 0:
            time.sleep(0.1)


def _most_tokens_in_a_second(phone_number_id: str, rate: float) -> int:
    """The most tokens the limiter handed out in any second of whole slots (5 slots of 200 ms at 80
    msg/s), read from its slot items: granted = used, capped at the slot's budget (a claim that
    crossed it got only the part below). The limiter guarantees at most the rate."""
    from relasify.data.rate_limit import RateSlotModel, limiter_for

    limiter = limiter_for(phone_number_id, rate)
    slots_per_second = round(1 / limiter.slot_seconds)
    prefix = f"RATE#{phone_number_id}#"
    granted: dict[int, int] = {}
    for item in RateSlotModel.scan(RateSlotModel.pk.startswith(prefix)):
        slot = int(item.pk.removeprefix(prefix).split("#")[0])
        granted[slot] = granted.get(slot, 0) + min(int(item.used), limiter.shard_budget(0))
    return max((sum(granted.get(slot + n, 0) for n in range(slots_per_second)) for slot in granted), default=0)


def _most_in_a_second(times: list[float]) -> int:
    """The most events in any 1-second window of sorted `times`."""
    peak, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def _emulator_ops_per_second(samples: int = 200, threads: int = 8) -> float:
    from relasify.data.rate_limit import RateSlotModel

    model = RateSlotModel

    def op(i: int) -> None:
        model(f"BENCH#probe#{i}", model.SK_VALUE).update(actions=[model.used.add(1)])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(op, range(samples)))
    return samples / (time.perf_counter() - started)


def measure(contacts: int = 2000, rate: float = 80.0, latency: float = 0.15, containers: int = 4) -> Result:
    from relasify.data import broadcasts as broadcast_store
    from relasify.data import kms_tokens
    from relasify.data import templates as template_store
    from relasify.data.identity import identity_repository
    from relasify.services import broadcasts
    from relasify.settings import get_settings
    from relasify.whatsapp.graph import reset_graph_client
    from relasify_local.sandbox import Sandbox

    with moto_server_process() as emulator_url, bench_stack(emulator_url):
        # Status webhooks are not part of this measurement: scheduled far beyond the run, dropped on stop.
        sandbox = Sandbox(
            webhook_url="http://127.0.0.1:9/unused",
            app_secret=APP_SECRET,
            latency_seconds=latency,
            status_delay_seconds=3600,
        ).start()
        try:
            os.environ["GRAPH_API_BASE_URL"] = sandbox.base_url
            os.environ["DEFAULT_SEND_RATE_PER_SECOND"] = str(rate)
            get_settings.cache_clear()
            reset_graph_client()
            broadcast_store.reset_for_tests()
            ws = "ws_bench"
            identity_repository().put_whatsapp_connection(
                ws,
                waba_id="102345678901234",
                phone_number_id=PHONE_NUMBER_ID,
                encrypted_access_token=kms_tokens.encrypt_token(ws, "EAAG-bench-token"),
            )
            template_store.put_submitted(
                ws,
                name="promo",
                language="id",
                category="MARKETING",
                components=[{"type": "BODY", "text": "Halo {{1}}"}],
                meta_template_id="1",
                status="APPROVED",
            )
            _seed(ws, contacts)
            emulator_ops = _emulator_ops_per_second()

            sent_times: list[float] = []
            monitor_stop = threading.Event()

            def monitor() -> None:
                seen = 0
                while not monitor_stop.is_set():
                    count = len(sandbox.sent_messages)
                    now = time.perf_counter()
                    sent_times.extend([now] * (count - seen))
                    seen = count
                    time.sleep(0.02)

            url = get_settings().broadcast_queue_url
            deadline = time.time() + max(600.0, 5 * contacts / rate)
            # Each container is a process of its own, as Lambda's are (the environment, with the
            # emulator's and the sandbox's addresses, is inherited); all are initialised before the
            # broadcast is created (see _container).
            spawn = multiprocessing.get_context("spawn")
            ready, finished = spawn.Semaphore(0), spawn.Event()
            workers = [
                spawn.Process(target=_container, args=(url, ready, finished, deadline)) for _ in range(containers)
            ]
            for worker in workers:
                worker.start()
            for _ in workers:
                if not ready.acquire(timeout=120):
                    finished.set()
                    for worker in workers:
                        worker.terminate()
                    raise RuntimeError("a worker container did not initialise within 120 s")
            started = time.perf_counter()
            view = broadcasts.create_broadcast(
                ws,
                template="promo",
                language="id",
                audience={"tags": [TAG]},
                parameters=[{"field": "name"}],
                scheduled_at=None,
                actor_id="bench",
            )
            watcher = threading.Thread(target=monitor)
            watcher.start()
            while time.time() < deadline:
                if broadcasts.get_broadcast(ws, view.broadcast.id).broadcast.status in FINAL_STATUSES:
                    break
                time.sleep(0.25)
            finished.set()
            for worker in workers:
                worker.join()
            total = time.perf_counter() - started
            time.sleep(0.05)
            monitor_stop.set()
            watcher.join()
            recipients = [s["to"] for s in sandbox.sent_messages]
            arrivals = sorted(
                r["at"] for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith("/messages")
            )
            final = broadcasts.get_broadcast(ws, view.broadcast.id)
            peak_tokens = _most_tokens_in_a_second(PHONE_NUMBER_ID, rate)
        finally:
            sandbox.stop()
            reset_graph_client()
    per_recipient = Counter(recipients)
    send_seconds = (sent_times[-1] - sent_times[0]) if len(sent_times) > 1 else 0.0
    return Result(
        contacts=contacts,
        cap=rate,
        latency=latency,
        containers=containers,
        sends=len(recipients),
        unique_recipients=len(per_recipient),
        duplicates=sum(n - 1 for n in per_recipient.values()),
        send_seconds=send_seconds,
        total_seconds=total,
        counts={**final.counts.model_dump(), "status": final.broadcast.status},
        emulator_ops_per_second=emulator_ops,
        peak_sends_in_a_second=_most_in_a_second(arrivals),  # as "Meta" received them
        peak_tokens_in_a_second=peak_tokens,
    )


def _row(result: Result, target: str) -> list[str]:
    return [
        str(result.contacts),
        f"{result.cap:g}",
        f"{result.latency * 1000:.0f} ms",
        str(result.containers),
        str(result.sends),
        str(result.duplicates),
        f"{result.achieved_rate:.1f}",
        f"{result.ratio:.2f}",
        f"{result.peak_tokens_in_a_second} / {result.peak_sends_in_a_second}",
        target,
    ]


def section(result: Result, command: str = COMMAND, ceiling: Result | None = None) -> Section:
    met = (
        result.duplicates == 0
        and result.unique_recipients == result.contacts
        and result.ratio >= TARGET_RATIO
        and result.peak_tokens_in_a_second <= result.cap  # the limiter never hands out more than the cap
    )
    return Section(
        title="Broadcast rate",
        command=command,
        headers=[
            "contacts",
            "cap msg/s",
            "Graph latency",
            "containers",
            "sends",
            "duplicates",
            "achieved msg/s",
            "ratio to cap",
            "most tokens / sends in 1 s",
            "target",
        ],
        rows=[
            _row(result, f">= {TARGET_RATIO}, 0 duplicates, tokens <= cap {'met' if met else 'NOT met'}"),
            *([_row(ceiling, "diagnosis: no latency, no binding cap")] if ceiling else []),
        ],
        notes=[
            f"achieved rate = sends / (last Graph send - first Graph send) = {result.sends} / "
            f"{result.send_seconds:.1f} s; whole run incl. audience expansion {result.total_seconds:.1f} s",
            f"broadcast after the run: {result.counts}",
            "every container is a process of its own (like Lambda's), initialised before the broadcast is created "
            "(on Lambda each cold start has a host of its own; here it would take CPU from the emulator), running "
            "the template's BroadcastWorker "
            "handler, fed by the local stack's SQS poller with the template's batch size, until the broadcast "
            "ends; DynamoDB, SQS and KMS are one moto server in another process (`bench/moto_process.py`: the "
            "local stack's, with no log line per request, update expressions parsed once per distinct "
            "string, attribute values copied into responses, backends found once per host and short collector "
            "pauses); the WhatsApp sandbox answers each send after the Graph latency",
            "most tokens / sends in 1 s: the most tokens the limiter handed out in any second of whole slots "
            "(5 consecutive 200 ms slots, all containers, read from its slot items: at most the cap) / the most "
            "sends the sandbox received in any sliding second (a sliding second overlaps 6 slots, so up to 6 x "
            "16 = 96, plus the jitter between a token and its request's arrival on this loaded machine)",
            f"emulated DynamoDB in this run: {result.emulator_ops_per_second:.0f} limiter-slot updates/s with 8 "
            "threads alone; a sent message costs ~2.2 DynamoDB requests (outbox put; a share of a batched "
            "limiter claim; one transaction with the wamid, its pointer, the pending-status marker check, the "
            "recipient and a counter shard) plus a share of its chunk's reads and its page's claim",
            *(
                [
                    f"ceiling: the same pipeline with Graph latency 0 and a cap it cannot reach sends "
                    f"{ceiling.achieved_rate:.1f} msg/s ({ceiling.duplicates} duplicates): the moto server, one "
                    "process under one GIL with DynamoDB requests serialised, is the bottleneck of this 2-core "
                    "machine (it runs at ~75-100% of a core while the containers use ~10% each); on DynamoDB the "
                    "limiter, not the emulator, sets the rate"
                ]
                if ceiling
                else []
            ),
        ],
        targets_met=met,
    )


def run() -> Section:
    result = measure()
    return section(result, ceiling=measure(contacts=500, rate=10_000.0, latency=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--containers", type=int, default=4)
    args = parser.parse_args()
    command = (
        f"python -m bench.broadcast_rate --contacts {args.contacts} --rate {args.rate:g} "
        f"--latency {args.latency:g} --containers {args.containers}"
    )
    print(section(measure(args.contacts, args.rate, args.latency, args.containers), command).markdown())


if __name__ == "__main__":
    main()
