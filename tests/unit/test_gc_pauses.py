"""The emulator's collector tuning: survivors are frozen periodically, and the thread stops."""

from __future__ import annotations

import gc
import time

from relasify_local.gc_pauses import freeze_long_lived_objects


def test_long_lived_objects_are_frozen_until_stopped() -> None:
    gc.unfreeze()
    kept = [[n] for n in range(1000)]  # survivors: the emulator's stored items stand-in
    stop = freeze_long_lived_objects(interval_seconds=0.01)
    try:
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.get_freeze_count() >= len(kept)  # a full collection no longer walks them
    finally:
        stop.set()
        time.sleep(0.05)
        gc.unfreeze()
    frozen_after_stop = gc.get_freeze_count()
    time.sleep(0.05)
    assert gc.get_freeze_count() == frozen_after_stop == 0  # stopped: nothing frozen any more
