"""relasify.cold_start: a handler's imports run with the collector paused; afterwards it runs again
(or stays off, if it was off) and what the imports loaded is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from relasify.cold_start import collector_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_paused_inside_and_running_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "relasify-dev-WebhookProcessor")
    gc.enable()
    gc.unfreeze()
    with collector_paused():
        assert not gc.isenabled()
        loaded = [[n] for n in range(1000)]  # what a module import keeps
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)  # later collections skip them


def test_off_lambda_nothing_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests and the local stack load handlers again and again: each load's garbage would stay frozen
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    gc.enable()
    gc.unfreeze()
    with collector_paused():
        assert not gc.isenabled()
        kept = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert kept
    assert gc.get_freeze_count() == 0


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_the_collector_runs_again_when_an_import_fails() -> None:
    gc.enable()
    with pytest.raises(ImportError), collector_paused():
        raise ImportError("a module the handler needs is missing")
    assert gc.isenabled()
