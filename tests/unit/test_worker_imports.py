"""The queue workers that talk to WhatsApp load the connection's data module, not identity's (users,
memberships, invitations, the audit log): their cold start pays only for what they route and record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IDENTITY_MODULES = {"relasify.data.identity", "relasify.data.audit_log", "relasify.data.memberships"}


@pytest.mark.parametrize(
    ("folder", "handler"),
    [("functions/webhook", "processor"), ("functions/webhook", "media"), ("functions/send", "broadcast_worker")],
)
def test_whatsapp_workers_do_not_load_identity_modules(folder: str, handler: str) -> None:
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(REPO / 'layers/domain')!r}, {str(REPO / folder)!r}]\n"
        f"import {handler}\n"
        f"print(','.join(sorted(m for m in sys.modules if m in {sorted(IDENTITY_MODULES)!r})))\n"
        "print('relasify.data.whatsapp_connections' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "ap-southeast-3"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env
    )
    loaded, connections = result.stdout.splitlines()
    assert loaded == ""
    assert connections == "True"  # the check means something only if the worker loads the data layer
