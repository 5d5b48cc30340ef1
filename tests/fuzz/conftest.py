"""Fuzz tier: Schemathesis against the merged OpenAPI document, in-process (gateway + handlers + moto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.inprocess import shared_moto_api
from tests.support.api import ApiClient


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fuzz/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture(scope="module")
def fuzz_api() -> Iterator[ApiClient]:
    """The in-process API client against one moto account for the whole module."""
    with shared_moto_api() as api:
        yield api


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.fuzz.wsgi import cases_run

    if any(cases_run.values()):
        terminalreporter.write_line(
            f"schemathesis: {cases_run['cases']} generated cases, {cases_run['stateful']} stateful steps"
        )
