"""Short garbage-collector pauses for the emulator process.

moto keeps every table item as Python objects, so its heap grows with the data; CPython's full
(generation 2) collections walk all of it and stall every request the server is handling. Measured
in the broadcast benchmark's moto server: pauses grew from 60 ms to 330 ms over a 30 s run, about
2 s in all, each one delaying the rate limiter's slot claims past their slot. DynamoDB has no such
pauses, so they would make the benchmarks measure the emulator's collector instead of our code.

`freeze_long_lived_objects()` collects the young generations every `interval_seconds` and moves
the survivors to the permanent generation (`gc.freeze()`), so a full collection only walks what
was allocated since. Objects that live that long in the emulator are stored items and resources;
they are freed by reference counting when deleted (only cyclic garbage among frozen objects would
stay, which the emulator's data does not form).
"""

from __future__ import annotations

import gc
import threading

DEFAULT_INTERVAL_SECONDS = 1.0


def freeze_long_lived_objects(interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> threading.Event:
    """Start the freezing thread (a daemon); set the returned event to stop it."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_seconds):
            gc.collect(1)  # young garbage first, so only survivors are frozen
            gc.freeze()

    threading.Thread(target=run, name="relasify-gc-freeze", daemon=True).start()
    return stop
