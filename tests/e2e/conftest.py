"""The local stack as a subprocess (`python -m relasify_local.cli dev`), on free ports, with its
signing key in a temporary state directory. One session-scoped stack (`local_stack`) is shared
by every e2e test; `start_local_stack` starts extra ones for tests that need their own.

The stack runs the repository's template.yaml and handlers, exactly as `make dev` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from relasify_local.cfn import REPO_ROOT
from relasify_local.jwt_local import mint_token

READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 20

E2E_WABA_ID = "102345678901234"  # the sandbox's seeded WhatsApp Business Account


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct ports the OS hands out: the probes stay open together, so no two can be the same."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
        return ports


@dataclass
class LocalStackProcess:
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    ports: dict[str, int]
    repo_root: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['moto']}"

    @property
    def sandbox_url(self) -> str | None:
        return self.info.get("sandbox_url")

    @property
    def environment(self) -> dict[str, str]:
        """The environment the stack's functions run with (queue URLs, table names, ...)."""
        return dict(self.info.get("environment") or {})

    def token(self, email: str = "e2e@example.com", **claims: Any) -> str:
        """A bearer token the stack accepts (same signing key: same state directory); `email_verified=False`
        (or None: no claim) mints one whose address is matched to no one, `sub=` gives it its own user."""
        return mint_token(email, state_dir=self.state_dir, **claims)

    def auth_headers(self, email: str = "e2e@example.com", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(email, **claims)}"}

    @property
    def realtime_url(self) -> str:
        """The local WebSocket API (SPEC 5b)."""
        return str(self.info["realtime_url"])

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def connect_whatsapp(self, http: httpx.Client, ws: str, token: str = "EAAG-e2e-token") -> str:
        """Connect a fresh number of the sandbox's seeded WABA to `ws` (registered first: connecting
        proves ownership with Graph); returns its phone_number_id."""
        phone_number_id = str(100000000000000 + uuid.uuid4().int % 10**14)
        self.register_whatsapp_account(E2E_WABA_ID, phone_number_id, token)
        connection = {
            "waba_id": E2E_WABA_ID,
            "phone_number_id": phone_number_id,
            "display_phone_number": "6281234500000",
            "access_token": token,
        }
        connected = http.put(f"/v1/workspaces/{ws}/whatsapp", json=connection)
        assert connected.status_code == 200, connected.text
        return phone_number_id

    def register_whatsapp_account(
        self, waba_id: str, phone_number_id: str, token: str, display_phone_number: str = "6281234500000"
    ) -> None:
        """Make `token` own `phone_number_id` under `waba_id` at the sandbox (connecting needs Graph's proof)."""
        assert self.sandbox_url, "the stack runs without its WhatsApp sandbox"
        account = {
            "waba_id": waba_id,
            "phone_number_id": phone_number_id,
            "display_phone_number": display_phone_number,
            "token": token,
        }
        registered = httpx.post(f"{self.sandbox_url}/_sandbox/accounts", json=account, timeout=10)
        assert registered.status_code == 201, registered.text

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


PORT_ATTEMPTS = 3


def start_local_stack(tmp_dir: Path, extra_env: dict[str, str] | None = None) -> LocalStackProcess:
    """Start `relasify dev` on free ports and wait (bounded) until /health answers 200.

    A port probed free can be taken before the stack binds it (another test worker's server or an
    outgoing connection); the stack then exits saying so, and we try again on fresh ports."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return _start_local_stack_once(tmp_dir / f"attempt-{attempt}" if attempt > 1 else tmp_dir, extra_env)
        except PortTakenError:
            if attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class PortTakenError(RuntimeError):
    pass


def _start_local_stack_once(tmp_dir: Path, extra_env: dict[str, str] | None) -> LocalStackProcess:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    repo_root = REPO_ROOT
    state_dir = tmp_dir / "state"
    ports = dict(zip(("http", "moto", "sandbox", "realtime"), free_ports(4), strict=True))
    env = {
        **os.environ,
        "RELASIFY_HTTP_PORT": str(ports["http"]),
        "RELASIFY_MOTO_PORT": str(ports["moto"]),
        "RELASIFY_SANDBOX_PORT": str(ports["sandbox"]),
        "RELASIFY_REALTIME_PORT": str(ports["realtime"]),
        "RELASIFY_STATE_DIR": str(state_dir),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log_path = tmp_dir / "stack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "relasify_local.cli", "dev", "--repo-root", str(repo_root)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack = LocalStackProcess(process, state_dir, log_path, ports, repo_root)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = stack.log_tail()
            error = PortTakenError if "Address already in use" in tail else RuntimeError
            raise error(f"local stack exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{stack.base_url}/health", timeout=2).status_code == 200:
                stack.info = json.loads((state_dir / "stack.json").read_text())
                return stack
        except (httpx.HTTPError, FileNotFoundError):
            pass
        time.sleep(0.2)
    stack.stop()
    raise RuntimeError(f"local stack not ready within {READY_TIMEOUT_SECONDS}s:\n{stack.log_tail()}")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    stack = start_local_stack(tmp_path_factory.mktemp("local-stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def local_stack_factory(tmp_path: Path) -> Iterator[Any]:
    """Start extra stacks for one test (e.g. to stop them); any left running are stopped afterwards."""
    started: list[LocalStackProcess] = []

    def start(name: str = "stack", extra_env: dict[str, str] | None = None) -> LocalStackProcess:
        stack = start_local_stack(tmp_path / name, extra_env)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()
