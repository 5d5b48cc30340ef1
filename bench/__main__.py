"""Run the benchmarks and write docs/PERFORMANCE.md.

python -m bench               # every benchmark
python -m bench cold_start    # only the named ones
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

from bench.report import Section

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = ["cold_start", "request_counts", "webhook_throughput", "broadcast_rate", "sweep_cost", "cost_model"]
OUTPUT = REPO / "docs" / "PERFORMANCE.md"


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    sections: list[Section] = []
    started = time.time()
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"[bench] {name}: not present, skipped", file=sys.stderr)
                continue
            raise
        print(f"[bench] running {name} ...", file=sys.stderr, flush=True)
        section = module.run()
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
