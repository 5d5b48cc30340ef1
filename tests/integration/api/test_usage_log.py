"""The usage log: one structured line per API request (docs/SENDING.md, template.yaml's API log
groups kept 12 months), naming the route template, the workspace and a digest of the caller; no
DynamoDB item, and no personal data."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from relasify.settings import get_settings
from relasify.web.usage import USAGE_MESSAGE, actor_label

from tests.support.api import ApiClient

OWNER = "usage.owner@example.com"


def _usage_lines(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [record.__dict__["usage"] for record in records if record.getMessage() == USAGE_MESSAGE]


def test_each_request_logs_one_usage_line_and_writes_no_item(api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ws = api.create_workspace(OWNER)
    caplog.clear()
    sub = api.get("/v1/me", as_user=OWNER).json["id"]
    listed = api.get(f"/v1/workspaces/{ws}/contacts?q=Budi", as_user=OWNER)
    assert listed.status == 200, listed.body
    missing = api.get(f"/v1/workspaces/{ws}/contacts/ct_missing", as_user=OWNER)
    assert missing.status == 404
    usage = _usage_lines(caplog.records)
    assert [(u["method"], u["route"], u["status_code"]) for u in usage] == [
        ("GET", "/v1/me", 200),
        ("GET", "/v1/workspaces/<ws>/contacts", 200),
        ("GET", "/v1/workspaces/<ws>/contacts/<contact_id>", 404),
    ]
    assert [u["ws"] for u in usage[1:]] == [ws, ws]
    assert {u["actor"] for u in usage} == {actor_label(sub)}
    assert all(u["request_id"] and u["latency_ms"] >= 0 for u in usage)
    # The caller is named by a digest; no sub, e-mail, query or path of a resource in the lines.
    for line in usage:
        text = json.dumps(line)
        for needle in (sub, OWNER, "Budi", "ct_missing"):
            assert needle not in text, needle

    items = boto3.client("dynamodb").scan(TableName=get_settings().table_name)["Items"]
    assert not [i for i in items if i["PK"]["S"].startswith("USAGE#")]


def test_api_keys_are_named_by_their_key_id() -> None:
    assert actor_label("key:ak_123") == "key:ak_123"
    assert actor_label(None) is None
    assert actor_label("0b5c-user-sub").startswith("user:")
    assert "0b5c" not in actor_label("0b5c-user-sub")  # type: ignore[operator]
