"""The `relasify` console command (token, openapi) and the scheduler behind the sweep timer."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from relasify_local.cli import build_parser, main
from relasify_local.jwt_local import load_or_create_key, subject_for_email, verify_token
from relasify_local.runtime import LocalFunction
from relasify_local.stack import ScheduledFunction, Scheduler, StackConfig

TEMPLATE = """
Resources:
  AccountApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/account/
      Handler: account_api.handler
      Events:
        Health: {Type: HttpApi, Properties: {Path: /health, Method: GET, Auth: {Authorizer: NONE}}}
        Me: {Type: HttpApi, Properties: {Path: /v1/me, Method: ANY}}
"""

HANDLER = """
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver(enable_validation=True)

@app.get("/health")
def health() -> dict:
    return {"status": "ok"}

@app.get("/v1/me")
def me() -> dict:
    return {}

def handler(event, context):
    return app.resolve(event, context)
"""


def test_token_command_prints_a_token_signed_with_the_state_dir_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = main(
        ["token", "--email", "someone@example.com", "--name", "Some One", "--ttl", "60", "--state-dir", str(tmp_path)]
    )

    token = capsys.readouterr().out.strip()
    claims = verify_token(token, load_or_create_key(tmp_path))
    assert exit_code == 0
    assert claims["email"] == "someone@example.com"
    assert claims["name"] == "Some One"
    assert claims["sub"] == subject_for_email("someone@example.com")
    assert claims["exp"] - claims["iat"] == 60
    assert claims["token_use"] == "id"


def test_token_command_mints_verified_tokens_unless_told_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["token", "--email", "a@example.com", "--state-dir", str(tmp_path)])
    verified = verify_token(capsys.readouterr().out.strip(), load_or_create_key(tmp_path))
    main(["token", "--email", "a@example.com", "--unverified", "--state-dir", str(tmp_path)])
    unverified = verify_token(capsys.readouterr().out.strip(), load_or_create_key(tmp_path))

    assert verified["email_verified"] is True
    assert unverified["email_verified"] is False
    assert unverified["email"] == "a@example.com"


def test_token_command_uses_relasify_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELASIFY_STATE_DIR", str(tmp_path))

    main(["token", "--email", "a@example.com", "--sub", "fixed-sub"])

    assert verify_token(capsys.readouterr().out.strip(), load_or_create_key(tmp_path))["sub"] == "fixed-sub"


def test_openapi_command_prints_the_merged_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "functions" / "account").mkdir(parents=True)
    (tmp_path / "functions" / "account" / "account_api.py").write_text(HANDLER)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # restored after the test

    assert main(["openapi", "--repo-root", str(tmp_path)]) == 0

    document = json.loads(capsys.readouterr().out)
    assert set(document["paths"]) == {"/health", "/v1/me"}
    assert document["paths"]["/v1/me"]["get"]["security"] == [{"bearerAuth": []}]


def test_dev_options_and_environment_configure_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "RELASIFY_HTTP_PORT": "4000",
        "RELASIFY_MOTO_PORT": "4001",
        "RELASIFY_SANDBOX_PORT": "4002",
        "WHATSAPP_APP_SECRET": "from-env",
        "RELASIFY_SWEEP_INTERVAL_SECONDS": "60",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WHATSAPP_VERIFY_TOKEN", raising=False)

    config = StackConfig.from_env(http_port=5555)

    assert (config.http_port, config.moto_port, config.sandbox_port) == (5555, 4001, 4002)
    assert config.app_secret == "from-env"
    assert config.verify_token == "dev-verify-token"
    assert config.sweep_interval_seconds == 60
    assert build_parser().parse_args(["dev", "--no-sandbox"]).no_sandbox is True


class CountingFunction(LocalFunction):
    def __init__(self) -> None:
        super().__init__(logical_id="RetentionSweepFunction", code_dir=Path("/nonexistent"), handler="sweep.handler")
        self.events: list[dict[str, Any]] = []
        self.called = threading.Event()

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        self.called.set()
        if len(self.events) == 2:
            raise RuntimeError("a failing run is logged, the timer keeps going")
        return None


def test_scheduler_runs_shortly_after_start_then_every_interval_until_stopped() -> None:
    function = CountingFunction()
    scheduler = Scheduler(
        [ScheduledFunction(function, "DailySweep", {}, interval_seconds=0.05)], initial_delay_seconds=0.01
    )

    scheduler.start()
    deadline = time.monotonic() + 5
    while len(function.events) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    runs_at_stop = len(function.events)
    time.sleep(0.15)

    assert runs_at_stop >= 3
    assert len(function.events) == runs_at_stop
    assert function.events[0]["source"] == "aws.scheduler"
    assert all(not thread.is_alive() for thread in scheduler._threads)
