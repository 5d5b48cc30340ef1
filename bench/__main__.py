"""Run the benchmarks and write docs/PERFORMANCE.md.

python -m bench               # every benchmark
python -m bench cold_start    # only the named ones
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Section

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = [
    "cold_start",
    "request_counts",
    "inbox_writes",
    "webhook_throughput",
    "broadcast_rate",
    "sweep_cost",
    "cost_model",
    "realtime_push",
]
OUTPUT = REPO / "docs" / "PERFORMANCE.md"


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def run_one(name: str, out: Path) -> None:
    """Run one benchmark in this interpreter and write its section as JSON (see main)."""
    section = importlib.import_module(f"bench.{name}").run()
    out.write_text(json.dumps(dataclasses.asdict(section)))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--section-json"]:
        run_one(argv[2], Path(argv[1]))
        return 0
    names = argv or BENCHMARKS
    sections: list[Section] = []
    started = time.time()
    for name in names:
        if not (REPO / "bench" / f"{name}.py").exists():
            print(f"[bench] {name}: not present, skipped", file=sys.stderr)
            continue
        print(f"[bench] running {name} ...", file=sys.stderr, flush=True)
        # Each benchmark in a fresh interpreter: none inherits another's in-process state (moto
        # backends, cached clients and settings, handler modules) or its memory high-water mark.
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "section.json"
            subprocess.run([sys.executable, "-m", "bench", "--section-json", str(out), name], check=True)
            section = Section(**json.loads(out.read_text()))
        sections.append(section)
        print(section.markdown(), flush=True)
    elapsed = time.time() - started
    header = [
        "# Performance",
        "",
        "Written by `python -m bench` (`make bench`). Every figure is a ratio against a baseline measured in",
        "the same run on the same machine, or a count. Re-run after changing a hot path.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {_machine()}",
        f"- command: `python -m bench {' '.join(argv)}`".rstrip() + f" ({elapsed:.0f} s)",
        "",
    ]
    if set(names) != set(BENCHMARKS) and OUTPUT.exists():
        # Partial run: replace only the sections that ran, keep the others.
        existing = OUTPUT.read_text()
        body = existing.split("\n## ", 1)[1] if "\n## " in existing else ""
        kept = {("## " + part).split("\n", 1)[0]: "## " + part for part in body.split("\n## ") if part}
        for section in sections:
            kept[f"## {section.title}"] = section.markdown()
        OUTPUT.write_text("\n".join(header) + "\n" + "\n".join(v.rstrip() + "\n" for v in kept.values()))
    else:
        OUTPUT.write_text("\n".join(header) + "\n" + "\n".join(s.markdown() for s in sections))
    failed = [s.title for s in sections if s.targets_met is False]
    if failed:
        print(f"[bench] targets not met: {failed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
