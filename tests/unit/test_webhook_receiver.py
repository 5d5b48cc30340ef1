"""The receiver's cold-start path and configuration, and the opt-out keyword rules (no AWS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from relasify.data.webhook_inbox import WebhookInboxConfig, raw_payload_key
from relasify.services.webhook_intake import IntakeConfig
from relasify.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_receiver_imports_neither_pydantic_nor_pynamodb() -> None:
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(REPO / 'layers/domain')!r}, {str(REPO / 'functions/webhook')!r}]\n"
        "import receiver\n"
        "heavy = {'pydantic', 'pydantic_core', 'pynamodb', 'httpx'}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""


def test_receiver_configuration_mirrors_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MEDIA_BUCKET",
        "WEBHOOK_QUEUE_URL",
        "MEDIA_QUEUE_URL",
        "APP_SECRET_PARAMETER",
        "VERIFY_TOKEN_PARAMETER",
    ):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    config = IntakeConfig.from_environment()
    assert config.app_secret_parameter == defaults.app_secret_parameter
    assert config.verify_token_parameter == defaults.verify_token_parameter
    assert config.inbox == WebhookInboxConfig(
        defaults.media_bucket, defaults.webhook_queue_url, defaults.media_queue_url
    )

    monkeypatch.setenv("MEDIA_BUCKET", "b")
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", "q")
    monkeypatch.setenv("MEDIA_QUEUE_URL", "mq")
    monkeypatch.setenv("APP_SECRET_PARAMETER", "/a")
    monkeypatch.setenv("VERIFY_TOKEN_PARAMETER", "/v")
    settings = Settings()
    config = IntakeConfig.from_environment()
    assert (config.app_secret_parameter, config.verify_token_parameter) == (
        settings.app_secret_parameter,
        settings.verify_token_parameter,
    )
    assert config.inbox == WebhookInboxConfig(
        settings.media_bucket, settings.webhook_queue_url, settings.media_queue_url
    )


def test_raw_payload_key_is_dated_and_content_addressed() -> None:
    from datetime import UTC, datetime

    key, digest = raw_payload_key(b"{}", datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    assert key == f"raw-webhooks/2026/01/02/{digest}.json"
    assert digest == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
