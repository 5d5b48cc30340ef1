"""Cold start: importing and initialising each handler in a fresh interpreter, against
`import boto3; boto3.client("dynamodb")` measured in the same run (median of N runs each).

Runs are interleaved (baseline, handler A, handler B, ..., repeat) so machine noise hits all
of them alike. Peak memory is the child's max RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

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
import time, resource, sys, json
t0 = time.perf_counter()
{body}
elapsed = time.perf_counter() - t0
print(json.dumps({{"seconds": elapsed, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""

BASELINE_BODY = "import boto3\nboto3.client('dynamodb')"


def _handler_body(directory: str, module: str) -> str:
    return f"sys.path.insert(0, {str(REPO / directory)!r})\nimport {module}\nassert callable({module}.handler)"


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
        }
    )
    return env


def _measure(body: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(runs: int = 9) -> Section:
    present = {name: spec for name, spec in HANDLERS.items() if (REPO / spec[0] / f"{spec[1]}.py").exists()}
    samples: dict[str, list[dict[str, float]]] = {"baseline": [], **{name: [] for name in present}}
    _measure(BASELINE_BODY)  # warm the OS file cache once for everyone
    for directory, module in present.values():
        _measure(_handler_body(directory, module))
    for _ in range(runs):
        samples["baseline"].append(_measure(BASELINE_BODY))
        for name, (directory, module) in present.items():
            samples[name].append(_measure(_handler_body(directory, module)))

    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    base_s = median("baseline", "seconds")
    base_mem = median("baseline", "max_rss_kb")
    rows = [
        ["baseline: boto3 + dynamodb client", f"{base_s * 1000:.0f}", "1.00", f"{base_mem / 1024:.1f}", "1.00", "-"]
    ]
    met = True
    for name in present:
        seconds = median(name, "seconds")
        ratio = seconds / base_s
        target = TARGETS.get(name, DEFAULT_TARGET)
        ok = ratio <= target
        met &= ok
        mem = median(name, "max_rss_kb")
        rows.append(
            [
                name,
                f"{seconds * 1000:.0f}",
                f"{ratio:.2f}",
                f"{mem / 1024:.1f}",
                f"{mem / base_mem:.2f}",
                f"<= {target:.2f} {'met' if ok else 'NOT met'}",
            ]
        )
    missing = sorted(set(HANDLERS) - set(present))
    notes = [
        f"median of {runs} fresh interpreters each, interleaved with the baseline; times include imports and "
        "module-level initialisation, not interpreter start-up"
    ]
    if missing:
        notes.append(f"handlers not present yet: {', '.join(missing)}")
    return Section(
        title="Cold start (import + init in a fresh interpreter)",
        command="python -m bench cold_start",
        headers=["handler", "median ms", "time ratio", "peak RSS MiB", "RSS ratio", "target"],
        rows=rows,
        notes=notes,
        targets_met=met,
    )
