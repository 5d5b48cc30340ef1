"""The parallel Scan of the one-off table migrations (`inbox_backfill`, `timeline_backfill`): an
operator's tool run once after a deploy, never an access pattern of the application."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from relasify.data.base import connection
from relasify.settings import get_settings


def scan(request: dict[str, Any], segment: int, segments: int) -> Iterator[dict[str, Any]]:
    """Every item of one Scan segment that `request` (filter, projection) selects, page by page."""
    request = {**request, "TableName": get_settings().table_name, "Segment": segment, "TotalSegments": segments}
    while True:
        response = connection().dispatch("Scan", request)
        yield from response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if not start:
            return
        request["ExclusiveStartKey"] = start


def run_segments(segment: Callable[[int, int], Counter[str]], segments: int) -> Counter[str]:
    """`segment(s, segments)` for every segment in parallel threads; their outcome counts added up."""
    total: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=segments) as pool:
        for done in pool.map(lambda s: segment(s, segments), range(segments)):
            total.update(done)
    return total


def refused(exc: ClientError) -> bool:
    """A conditional write's condition failed (the item changed or went meanwhile)."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def command_line(description: str | None, backfill: Callable[..., Counter[str]], argv: list[str] | None) -> None:
    """A migration's `python -m` entry: `--segments N`, then its outcome counts printed."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=4, help="parallel Scan segments")
    args = parser.parse_args(argv)
    print(dict(backfill(segments=max(1, args.segments))))
