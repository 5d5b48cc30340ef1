"""Cold start: importing and initialising each handler in a fresh interpreter, against
`import boto3; boto3.client("dynamodb")` measured in the same run (median of N runs each).

Runs are interleaved (baseline, handler A, handler B, ..., repeat) so machine noise hits all
of them alike. Peak memory is the child's max RSS.

Code is imported as Lambda loads it: the layer's relasify package and each function's folder built
by their Makefiles (compiled to bytecode) into temporary directories.

Work a handler defers to its first use (lazy imports, validators built on first use, clients
created on first call) is not hidden: the "first request" column times import + init + one
representative invocation in a fresh interpreter, against a moto server in this process holding
a seeded workspace, and compares it with a bare boto3 script that makes the same AWS requests
(recorded from the handler's own invocation: service, operation and parameters) to the same server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Section

REPO = Path(__file__).resolve().parents[1]

HANDLERS = {
    "webhook receiver": ("functions/webhook", "receiver"),
    "webhook processor": ("functions/webhook", "processor"),
    "media worker": ("functions/webhook", "media"),
    "send API": ("functions/send", "send_api"),
    "broadcast worker": ("functions/send", "broadcast_worker"),
    "contacts API": ("functions/contacts", "contacts_api"),
    "import worker": ("functions/contacts", "import_worker"),
    "retention sweep": ("functions/retention", "sweep"),
}
TARGETS = {"webhook receiver": 1.05}
DEFAULT_TARGET = 1.2

_PROBE = """
import time, resource, sys, json, os
{setup}
t0, c0 = time.perf_counter(), time.process_time()
{body}
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
def _peak_kb():
    # VmHWM is this process's own peak; ru_maxrss keeps the parent's from before exec (fork + exec).
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "cpu_seconds": cpu, "max_rss_kb": _peak_kb()}}))
"""

BASELINE_BODY = "import boto3\nboto3.client('dynamodb')"

# Records every AWS request the handler makes (every botocore client's operations go through
# `BaseClient._make_api_call`: pynamodb's, boto3's, Powertools') and writes them when the probe exits.
_RECORDING_SETUP = """
import atexit, copy, pickle, botocore, botocore.client
_calls = []
_original_make_api_call = botocore.client.BaseClient._make_api_call
def _recording_make_api_call(self, operation_name, api_params):
    _calls.append((self.meta.service_model.service_name, botocore.xform_name(operation_name),
                   copy.deepcopy(api_params)))
    return _original_make_api_call(self, operation_name, api_params)
botocore.client.BaseClient._make_api_call = _recording_make_api_call
def _write_calls():
    with open({calls_path!r}, "wb") as f:
        pickle.dump(_calls, f)
atexit.register(_write_calls)
"""

# The bare boto3 script: one client per service, the recorded requests in order. A refused request
# (a conditional write the handler's second run also saw refused) still made its round trip.
_REPLAY_SETUP = """
import pickle
with open({calls_path!r}, "rb") as f:
    CALLS = pickle.load(f)
"""
_REPLAY_BODY = """
import boto3
from botocore.exceptions import ClientError
clients = {}
for service, method, params in CALLS:
    if service not in clients:
        clients[service] = boto3.client(service)
    try:
        getattr(clients[service], method)(**params)
    except ClientError:
        pass
"""

# The representative first invocation per handler (the others are not measured: see NOT_MEASURED).
FIRST_REQUESTS = {
    "webhook receiver": "a signed status webhook POST (SSM secret, SQS send with the body inline)",
    "webhook processor": "that webhook from the queue: a delivered status of a stored outbound message",
    "send API": "GET /v1/workspaces/{ws}/messages/{message_id}",
    "contacts API": "GET /v1/workspaces/{ws}/contacts/{contact_id}",
    "retention sweep": "a scheduled run over the seeded workspace",
}
NOT_MEASURED = (
    "media, broadcast and import workers (a representative job is not re-runnable: it calls Graph or completes)"
)

_FIRST_REQUEST_SETUP = """
class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-southeast-3:123456789012:function:bench"
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 60_000
with open({event_path!r}) as f:
    EVENT = json.load(f)
"""


def _handler_body(directory: str, module: str) -> str:
    folder = _built_functions.get(directory, REPO / directory)
    return f"sys.path.insert(0, {str(folder)!r})\nimport {module}\nassert callable({module}.handler)"


def _first_request_body(directory: str, module: str) -> str:
    # The invocation must succeed: a 4xx/5xx or a failed record would time an error path instead.
    return (
        f"{_handler_body(directory, module)}\nresult = {module}.handler(EVENT, _Context())\n"
        "assert not isinstance(result, dict) or result.get('statusCode', 200) == 200, result\n"
        "assert not isinstance(result, dict) or not result.get('batchItemFailures'), result"
    )


def _import_self_ms(body: str) -> dict[str, float]:
    """Milliseconds of import time spent in each package's own module code (python -X importtime,
    self column), by top-level package (relasify by its second level)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", body],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    spent: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if not own.isdigit():
            continue
        parts = name.split(".")
        package = ".".join(parts[:2]) if parts[0] in ("relasify", "aws_lambda_powertools") else parts[0]
        spent[package] = spent.get(package, 0.0) + int(own) / 1000
    return spent


def _where_the_time_goes(name: str, location: tuple[str, str], baseline_seconds: float) -> str:
    """Why a handler is over its target: its import time by package, beside the baseline's."""
    directory, module = location
    folder = _built_functions.get(directory, REPO / directory)
    handler = _import_self_ms(f"import sys; sys.path.insert(0, {str(folder)!r}); import {module}")
    baseline = _import_self_ms(BASELINE_BODY)
    extra = {package: ms - baseline.get(package, 0.0) for package, ms in handler.items()}
    top = sorted(extra.items(), key=lambda item: -item[1])[:8]
    listed = ", ".join(f"{package} {ms:.0f}" for package, ms in top if ms >= 1)
    return (
        f"where the slowest ({name}) spends its import time beyond the baseline's ({baseline_seconds * 1000:.0f} "
        f"ms), ms of module code by package (python -X importtime, one run): {listed}. botocore is the "
        "baseline's too; the rest is the web framework (Powertools event handler with its OpenAPI/pydantic "
        "validation; its package also loads the AppSync resolver and asyncio), pydantic models, pynamodb and "
        "our domain modules (class creation: pynamodb models, pydantic schemas)"
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_DEFAULT_REGION": "ap-southeast-3",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_METRICS_NAMESPACE": "Bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
            # Lambda sets it in every container; relasify.cold_start freezes the imported objects only
            # where it is set (without it, the collector's first pass after the imports walks them all).
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
        }
    )
    if _built_layer is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_built_layer), env.get("PYTHONPATH")]))
    return env


# The relasify package as the layer ships it (layers/domain/Makefile `sources`: compiled to bytecode),
# found ahead of the editable install; None until `run` builds it.
_built_layer: Path | None = None
# Each function folder as its Makefile ships it (functions/*/Makefile `sources`), by folder.
_built_functions: dict[str, Path] = {}


def _make_sources(folder: Path, artifacts: Path) -> None:
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(folder),
            "sources",
            f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}",
            "ALLOW_OTHER_PYTHON=1",
        ],
        check=True,
    )


@contextlib.contextmanager
def _as_deployed() -> Iterator[None]:
    """Build the layer's and the functions' sources (with this Python, so their bytecode is valid here)
    into temporary directories that every probe imports from, as a Lambda container imports them from
    /opt and /var/task."""
    global _built_layer
    with tempfile.TemporaryDirectory() as artifacts:
        _make_sources(REPO / "layers" / "domain", Path(artifacts))
        for directory in sorted({directory for directory, _ in HANDLERS.values()}):
            if (REPO / directory / "Makefile").exists():
                built = Path(artifacts) / "functions" / Path(directory).name
                _make_sources(REPO / directory, built)
                _built_functions[directory] = built
        _built_layer = Path(artifacts) / "python"
        try:
            yield
        finally:
            _built_layer = None
            _built_functions.clear()


def _measure(body: str, *, setup: str = "", extra_env: dict[str, str] | None = None) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body, setup=setup)],
        check=False,
        capture_output=True,
        text=True,
        env={**_env(), **(extra_env or {})},
        cwd=REPO,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold start probe failed: {out.stderr.strip()[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _first_request_world() -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """A moto server with the template's resources and a seeded workspace; yields the functions'
    environment and, per handler name, a file holding its representative event."""
    from relasify_local.aws import DUMMY_CREDENTIALS, MotoServer, bootstrap_resources
    from relasify_local.cfn import load_template
    from relasify_local.runtime import REGION, LocalFunction

    from bench.payloads import APP_SECRET, VERIFY_TOKEN
    from bench.stack import reset_caches

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = MotoServer("127.0.0.1", 0)
    server.start()
    saved = dict(os.environ)
    captured: dict[str, dict[str, Any]] = {}
    original_invoke = LocalFunction.invoke
    try:
        server.reset()
        template = load_template()
        resources = bootstrap_resources(template, server.url, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
        env = {
            **resources.function_environment(template),
            "AWS_ENDPOINT_URL": server.url,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(env)
        reset_caches()

        def capturing_invoke(function: LocalFunction, event: dict[str, Any]) -> Any:
            captured[function.logical_id] = event
            return original_invoke(function, event)

        LocalFunction.invoke = capturing_invoke  # type: ignore[method-assign]
        events = _seed_and_capture(captured)
        with tempfile.TemporaryDirectory(prefix="relasify-cold-start-") as directory:
            paths = {}
            for name, event in events.items():
                path = Path(directory) / f"{name.replace(' ', '_')}.json"
                path.write_text(json.dumps(event))
                paths[name] = str(path)
            yield env, paths
    finally:
        LocalFunction.invoke = original_invoke  # type: ignore[method-assign]
        os.environ.clear()
        os.environ.update(saved)
        with contextlib.suppress(Exception):
            reset_caches()
        server.stop()


def _seed_and_capture(captured: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Seed one workspace (connected number, a contact, an outbound message) through the real code and
    capture the events the local gateway hands the handlers; the processor gets the receiver's queue message."""
    import boto3
    from relasify.data import outbound_messages
    from relasify_local.pollers import sqs_record

    from bench.payloads import customer_wa_id, signature, status_item, status_payload
    from bench.stack import connected_workspace
    from tests.support.api import ApiClient, gateway_and_key

    owner = "owner@bench.example"
    api = ApiClient(*gateway_and_key())
    ws = connected_workspace(api, owner)
    wa_id = customer_wa_id(1)
    created = api.post(f"/v1/workspaces/{ws}/contacts", {"phone": f"+{wa_id}", "name": "Budi"}, as_user=owner)
    assert created.status == 201, created.body
    contact_id = created.json["id"]
    wamid = "wamid.bench-cold-start-1"
    message = outbound_messages.record_outbound(ws, contact_id, "template", {"name": "order_update"}, wamid=wamid)

    def capture(logical_id: str, request: Callable[[], Any]) -> dict[str, Any]:
        captured.pop(logical_id, None)
        response = request()
        assert response.status == 200, (logical_id, response.status, response.body[:300])
        return captured[logical_id]

    events = {
        "contacts API": capture(
            "ContactsApiFunction", lambda: api.get(f"/v1/workspaces/{ws}/contacts/{contact_id}", as_user=owner)
        ),
        "send API": capture(
            "SendApiFunction", lambda: api.get(f"/v1/workspaces/{ws}/messages/{message.id}", as_user=owner)
        ),
    }
    raw = json.dumps(
        status_payload([status_item(wamid, "delivered", wa_id, callback=message.biz_opaque_callback_data)])
    ).encode()
    events["webhook receiver"] = capture(
        "WebhookReceiverFunction",
        lambda: api.request("POST", "/webhooks/whatsapp", body=raw, headers={"x-hub-signature-256": signature(raw)}),
    )
    sqs = boto3.client("sqs")
    url = os.environ["WEBHOOK_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queued = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    events["webhook processor"] = {"Records": [sqs_record(queued[0], arn)]}
    events["retention sweep"] = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
    return events


@dataclass(frozen=True)
class FirstRequest:
    """Median seconds of import + init + one invocation, and of the bare boto3 script making the same
    AWS requests (recorded from the handler's invocation), with the number of those requests. The ratio
    is the median of each run's pair (the handler, then its replay right after it): on a shared machine
    a pair sees the same load, where the two medians may come from different moments."""

    handler_seconds: float
    replay_seconds: float
    requests: int
    ratio: float


def _first_requests(present: dict[str, tuple[str, str]], runs: int) -> tuple[dict[str, FirstRequest], str | None]:
    """Per handler with a representative event: the first request against its bare boto3 replay; the
    reason instead when the moto server or the seeding is not available."""
    try:
        world = _first_request_world()
        env, events = world.__enter__()
    except Exception as exc:  # moto or the local stack missing: report, do not guess
        return {}, f"first request not measured: {type(exc).__name__}: {str(exc)[:160]}"
    try:
        with tempfile.TemporaryDirectory(prefix="relasify-cold-start-calls-") as recordings:
            probes: dict[str, tuple[str, str]] = {}
            requests: dict[str, int] = {}
            for name, path in events.items():
                if name not in present:
                    continue
                setup = _FIRST_REQUEST_SETUP.format(event_path=path)
                body = _first_request_body(*present[name])
                # The first run changes state (a status applied, an object stored); the timed runs repeat
                # the second, so the replay is the second run's requests.
                _measure(body, setup=setup, extra_env=env)
                calls_path = str(Path(recordings) / f"{name.replace(' ', '_')}.pickle")
                _measure(body, setup=setup + _RECORDING_SETUP.format(calls_path=calls_path), extra_env=env)
                with open(calls_path, "rb") as recorded:
                    requests[name] = len(pickle.load(recorded))
                replay_setup = _REPLAY_SETUP.format(calls_path=calls_path)
                _measure(_REPLAY_BODY, setup=replay_setup, extra_env=env)  # warm-up: the replay must run too
                probes[name] = (body, setup)
                probes[f"replay: {name}"] = (_REPLAY_BODY, replay_setup)
            samples: dict[str, list[float]] = {name: [] for name in probes}
            for _ in range(runs):
                for name, (body, setup) in probes.items():
                    samples[name].append(_measure(body, setup=setup, extra_env=env)["seconds"])
        return {
            name: FirstRequest(
                handler_seconds=statistics.median(samples[name]),
                replay_seconds=statistics.median(samples[f"replay: {name}"]),
                requests=requests[name],
                ratio=statistics.median(
                    handler / replay for handler, replay in zip(samples[name], samples[f"replay: {name}"], strict=True)
                ),
            )
            for name in requests
        }, None
    finally:
        world.__exit__(None, None, None)


def run(runs: int = 9) -> Section:
    with _as_deployed():
        return _run(runs)


def _run(runs: int) -> Section:
    present = {name: spec for name, spec in HANDLERS.items() if (REPO / spec[0] / f"{spec[1]}.py").exists()}
    samples: dict[str, list[dict[str, float]]] = {"baseline": [], **{name: [] for name in present}}
    _measure(BASELINE_BODY)  # warm the OS file cache once for everyone
    for directory, module in present.values():
        _measure(_handler_body(directory, module))
    for _ in range(runs):
        samples["baseline"].append(_measure(BASELINE_BODY))
        for name, (directory, module) in present.items():
            samples[name].append(_measure(_handler_body(directory, module)))
    first, first_unavailable = _first_requests(present, runs)

    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    def paired_ratio(name: str) -> float:
        # Each round's handler against that round's baseline, so a slow spell of the shared machine
        # moves both sides of a pair instead of one side of a median.
        pairs = zip(samples[name], samples["baseline"], strict=True)
        return statistics.median(handler["cpu_seconds"] / baseline["cpu_seconds"] for handler, baseline in pairs)

    def first_request(name: str) -> tuple[list[str], bool]:
        if name not in first:
            return ["-", "-", "-"], True
        measured = first[name]
        ok = measured.ratio <= DEFAULT_TARGET
        return [
            f"{measured.handler_seconds * 1000:.0f} / {measured.replay_seconds * 1000:.0f}",
            str(measured.requests),
            f"{measured.ratio:.2f}",
        ], ok

    base_s = median("baseline", "cpu_seconds")
    base_mem = median("baseline", "max_rss_kb")
    rows = [
        [
            "baseline: boto3 + dynamodb client",
            f"{base_s * 1000:.0f}",
            "1.00",
            "-",
            "-",
            "-",
            f"{base_mem / 1024:.1f}",
            "1.00",
            "-",
        ]
    ]
    met = True
    for name in present:
        seconds = median(name, "cpu_seconds")
        ratio = paired_ratio(name)
        target = TARGETS.get(name, DEFAULT_TARGET)
        first_cells, first_ok = first_request(name)
        ok = ratio <= target and first_ok
        met &= ok
        mem = median(name, "max_rss_kb")
        rows.append(
            [
                name,
                f"{seconds * 1000:.0f}",
                f"{ratio:.2f}",
                *first_cells,
                f"{mem / 1024:.1f}",
                f"{mem / base_mem:.2f}",
                f"<= {target:.2f}, first <= {DEFAULT_TARGET:.2f}: {'met' if ok else 'NOT met'}",
            ]
        )
    missing = sorted(set(HANDLERS) - set(present))
    slowest = max(present, key=paired_ratio, default=None)
    notes = [
        f"median of {runs} fresh interpreters each, interleaved with the baseline; times are the probe's CPU time "
        "(user + system, time.process_time), so another job on this shared machine does not lengthen them, as on "
        "Lambda, where init has the function's CPU share to itself; the ratio is the median of each round's "
        "handler/baseline pair; times include imports and "
        "module-level initialisation, not interpreter start-up; code is imported as the layer and the functions "
        "ship it (`layers/domain/Makefile` and `functions/*/Makefile` `sources`: compiled to bytecode at build "
        "time; no .pyc is written at run time, as on Lambda's read-only /opt and /var/task)"
    ]
    notes.append(
        "first request: import + init + one invocation in a fresh interpreter against a moto server, beside a "
        "bare boto3 script (import boto3, one client per service) making the same AWS requests to the same "
        "server, recorded from the handler's own invocation (its second: the timed runs repeat it); medians of "
        f"{runs}, interleaved; the ratio is the median of each run's handler/replay pair, measured one after the "
        "other; a deferred import or client is paid here. Invocations: "
        + "; ".join(f"{name}: {what}" for name, what in FIRST_REQUESTS.items())
    )
    notes.append(first_unavailable or f"first request not measured for the {NOT_MEASURED}")
    if slowest is not None and not met:
        notes.append(_where_the_time_goes(slowest, present[slowest], base_s))
    if missing:
        notes.append(f"handlers not present yet: {', '.join(missing)}")
    return Section(
        title="Cold start (import + init in a fresh interpreter)",
        command="python -m bench cold_start",
        headers=[
            "handler",
            "median CPU ms",
            "time ratio",
            "first request ms / bare boto3 ms",
            "AWS requests",
            "first request ratio",
            "peak RSS MiB",
            "RSS ratio",
            "target",
        ],
        rows=rows,
        notes=notes,
        targets_met=met,
    )
