"""Polling the local stack until something it does asynchronously has happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    """Call `fetch` until `done` holds for its value or `timeout` seconds pass; returns the last value
    (the caller asserts on it, so a timeout fails with what was last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.25)
