"""`relasify security-log`: the day's entries that belong to no workspace, readable by an operator
(the workspace audit route shows only a workspace's own)."""

from __future__ import annotations

import json

import pytest
from relasify import clock
from relasify.data.identity import identity_repository
from relasify.settings import Settings
from relasify_local.cli import main


def test_the_security_log_of_no_workspace_is_printed_newest_first(
    ddb_tables: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = identity_repository()
    for n in range(105):  # more than one page
        repository.append_audit(None, "webhook.signature_rejected", actor_id="meta-webhook", details={"n": n})
    repository.append_audit("ws_1", "contact.erased", actor_id="u1", target_ids=["c1"])  # a workspace's own

    assert main(["security-log", "--day", clock.now().strftime("%Y-%m-%d"), "--table", ddb_tables.table_name]) == 0

    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(entries) == 105
    assert {e["action"] for e in entries} == {"webhook.signature_rejected"}
    assert [e["details"]["n"] for e in entries] == list(range(104, -1, -1))
