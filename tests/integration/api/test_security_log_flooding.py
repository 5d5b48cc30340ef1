"""Security-log flooding (issue 15.6): every refused request used to store its own 24-month security-log
item, so 100 refused requests by one agent added 100 items, and strangers' 404s filled the global log the
same way. Refusals are now counted per actor, reason and minute (`audit.count_refusal` ->
`count_security_event`: one UpdateItem each, at most SECURITY_COUNTER_SHARDS items per actor, reason and
minute), exact counts in `occurrences`, visible in `GET .../audit` and `relasify security-log`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from relasify import clock
from relasify.data import audit_log
from relasify.data import models as m
from relasify.data.audit_log import SECURITY_COUNTER_SHARDS
from relasify.data.identity import identity_repository
from relasify.settings import Settings
from relasify_local.cli import main

from tests.support.api import ApiClient

OWNER = "owner@flood-example.com"
AGENT = "agent@flood-example.com"
STRANGER = "stranger@flood-example.com"
NOW = datetime.now(UTC)
# A hundred refusals by one caller at one instant are far past the caller's request budget (429s
# from the 41st on); these tests are about how refusals are logged, not about the budgets.
pytestmark = pytest.mark.usefixtures("unlimited_budgets")
RETENTION_SECONDS = 700 * 86400  # the security log is kept 24 months


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """Every request of a test in one minute: the minute boundary cannot split the counts."""
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


def _items(table: str, pk: str) -> list[dict[str, Any]]:
    result = boto3.client("dynamodb").query(
        TableName=table, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
    )
    return [i for i in result["Items"] if i.get("action", {}).get("S") == "authorization.denied"]


def test_a_hundred_refused_requests_by_one_agent_are_counted_not_stored_each(
    api: ApiClient, aws_resources: Settings, frozen_clock: None
) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    for _ in range(100):
        refused = api.get(f"/v1/workspaces/{ws}/audit", as_user=AGENT)  # admin route
        assert refused.status == 403
        assert refused.content_type == "application/problem+json"

    stored = _items(aws_resources.table_name, f"WS#{ws}#AUDIT")
    assert 1 <= len(stored) <= SECURITY_COUNTER_SHARDS  # was 100
    assert sum(int(i["occurrences"]["N"]) for i in stored) == 100
    assert all(int(i["expires_at"]["N"]) > NOW.timestamp() + RETENTION_SECONDS for i in stored)
    assert all("expiry_bucket" in i for i in stored)

    audit = api.get(f"/v1/workspaces/{ws}/audit?limit=100", as_user=OWNER)
    assert audit.status == 200
    denied = [e for e in audit.json["items"] if e["action"] == "authorization.denied"]
    assert len(denied) == len(stored)
    assert sum(e["occurrences"] for e in denied) == 100
    assert {json.dumps(e["details"], sort_keys=True) for e in denied} == {
        '{"needed": "admin", "reason": "role_too_low"}'
    }
    assert len({e["actor_id"] for e in denied}) == 1
    assert {datetime.fromisoformat(e["at"]) for e in denied} == {NOW.replace(second=0, microsecond=0)}
    assert "agent@flood-example.com" not in audit.body.decode()  # ids only

    # The next minute starts new entries; other entries of the workspace are untouched.
    clock.set_clock(lambda: NOW + timedelta(minutes=1))
    assert api.get(f"/v1/workspaces/{ws}/audit", as_user=AGENT).status == 403
    later = _items(aws_resources.table_name, f"WS#{ws}#AUDIT")
    assert sum(int(i["occurrences"]["N"]) for i in later) == 101
    assert len(later) == len(stored) + 1


def test_a_hundred_strangers_404s_are_counted_in_the_global_log(
    api: ApiClient, aws_resources: Settings, frozen_clock: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = api.create_workspace(OWNER)
    for _ in range(100):
        assert api.get(f"/v1/workspaces/{ws}", as_user=STRANGER).status == 404
    for _ in range(3):  # another stranger is counted apart
        assert api.get(f"/v1/workspaces/{ws}/contacts", as_user="other@flood-example.com").status == 404

    day = NOW.strftime("%Y-%m-%d")
    stored = _items(aws_resources.table_name, f"SECURITY#{day}")
    assert 2 <= len(stored) <= 2 * SECURITY_COUNTER_SHARDS  # was 103
    entries = [e for e in identity_repository().list_security_log(day, limit=100).items]
    denied = [e for e in entries if e.action == "authorization.denied"]
    by_actor: dict[str, int] = {}
    for entry in denied:
        by_actor[entry.actor_id or ""] = by_actor.get(entry.actor_id or "", 0) + entry.occurrences
    assert sorted(by_actor.values()) == [3, 100]
    assert all(e.target_ids == [ws] and e.details == {"reason": "not_a_member"} for e in denied)
    assert all(int(i["expires_at"]["N"]) > NOW.timestamp() + RETENTION_SECONDS for i in stored)
    # Nothing in the workspace's own log: a stranger's probe is not the workspace's business.
    assert _items(aws_resources.table_name, f"WS#{ws}#AUDIT") == []

    assert main(["security-log", "--day", day, "--table", aws_resources.table_name]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    counted = [p for p in printed if p["action"] == "authorization.denied"]
    assert sum(p["occurrences"] for p in counted) == 103
    assert STRANGER not in json.dumps(printed)


def test_one_item_per_actor_reason_and_minute_with_one_shard(
    api: ApiClient, aws_resources: Settings, frozen_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_log, "SECURITY_COUNTER_SHARDS", 1)
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")
    for _ in range(20):
        assert api.get(f"/v1/workspaces/{ws}/audit", as_user=AGENT).status == 403  # needs admin
        assert api.post(f"/v1/workspaces/{ws}/close", {}, as_user=AGENT).status == 403  # needs owner
    stored = _items(aws_resources.table_name, f"WS#{ws}#AUDIT")
    needed = sorted((i["details"]["M"]["needed"]["S"], int(i["occurrences"]["N"])) for i in stored)
    assert needed == [("admin", 20), ("owner", 20)]


def test_a_failed_security_log_write_still_answers_403_and_404(
    api: ApiClient, aws_resources: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, AGENT, "agent")

    def throttled(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    # Every security-log write fails, whichever call makes it (a put or an update).
    monkeypatch.setattr(m.AuditLogModel, "save", throttled)
    monkeypatch.setattr(m.AuditLogModel, "update", throttled)
    forbidden = api.get(f"/v1/workspaces/{ws}/audit", as_user=AGENT)
    assert forbidden.status == 403
    assert forbidden.content_type == "application/problem+json"
    missing = api.get(f"/v1/workspaces/{ws}", as_user=STRANGER)
    assert missing.status == 404
    assert missing.content_type == "application/problem+json"
