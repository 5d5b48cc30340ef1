"""The README's API examples, run verbatim with bash and curl against the local stack.

Only the host and port change (the stack runs on free ports) and the token's state directory comes
from RELASIFY_STATE_DIR, as the README's table of variables says. A README example that stops
working (a renamed command, a curl call the API refuses) fails here first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from relasify_local.cfn import REPO_ROOT

from tests.e2e.conftest import LocalStackProcess

README = REPO_ROOT / "README.md"
DOCUMENTED_BASE_URL = "http://127.0.0.1:3000"
# Prints the status after the body so the test can assert it; the README's own lines are untouched.
STATUS_MARKER = "HTTP_STATUS:"
CURL_WITH_STATUS = f"curl() {{ command curl -w '\\n{STATUS_MARKER}%{{http_code}}\\n' \"$@\"; }}\n"


def readme_api_blocks() -> list[str]:
    """The README's bash code blocks that mint a token or call the API."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [block for block in blocks if "curl" in block or "relasify token" in block]


def run_bash(script: str, stack: LocalStackProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELASIFY_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", CURL_WITH_STATUS + script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_shows_how_to_call_the_api() -> None:
    blocks = readme_api_blocks()
    assert len(blocks) == 1, blocks
    assert "relasify token" in blocks[0]
    assert f"{DOCUMENTED_BASE_URL}/v1/workspaces" in blocks[0]


def test_readme_examples_run_verbatim_and_create_the_workspace(local_stack: LocalStackProcess) -> None:
    assert shutil.which("curl"), "curl is needed (Debian: apt-get install curl)"
    (block,) = readme_api_blocks()
    script = block.replace(DOCUMENTED_BASE_URL, local_stack.base_url)

    result = run_bash(script, local_stack)

    assert result.returncode == 0, result.stderr
    body, status = result.stdout.rstrip("\n").rsplit("\n", 1)
    assert status == f"{STATUS_MARKER}201", result.stdout
    created = json.loads(body)
    assert created["name"] == "Toko Budi"
    with local_stack.client(headers=local_stack.auth_headers("someone@example.com")) as client:
        stored = client.get(f"/v1/workspaces/{created['id']}")
        listed = client.get("/v1/workspaces")
    assert (stored.status_code, stored.json()["name"]) == (200, "Toko Budi")
    assert created["id"] in [workspace["id"] for workspace in listed.json()["items"]]
