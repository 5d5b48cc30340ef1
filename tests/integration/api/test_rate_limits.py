"""Request budgets of the /v1 API (issue 15 point 9), from the caller's side over HTTP.

One user hammering gets 429 `rate-limited` problems with `Retry-After` while other users and other
workspaces are served; after Retry-After (the injected clock moves, nobody sleeps) the user is
served again. The user's budget holds across workspaces and routes; a workspace's budget is shared
by its members and cannot be spent by someone who merely names it; the settings change the limits.
Refusals write nothing to the security log, and a container that has seen a budget refused stops
asking DynamoDB until the budget has room again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from relasify import clock
from relasify.data import request_budget
from relasify.settings import Settings, get_settings

from tests.support.api import ApiClient, reset_warm_state

ALICE = "alice@example.com"
BUDI = "budi@example.com"
CITRA = "citra@example.com"
DEWI = "dewi@example.com"
BUDGET_VARIABLES = (
    "API_USER_RATE_PER_SECOND",
    "API_USER_BURST",
    "API_WORKSPACE_RATE_PER_SECOND",
    "API_WORKSPACE_BURST",
)


class FrozenClock:
    """relasify.clock at a fixed instant that only moves when the test says so."""

    def __init__(self) -> None:
        # Past any budget state the set-up requests left behind (their buckets are idle again).
        self.instant = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        clock.set_clock(lambda: self.instant)

    def advance(self, seconds: float) -> None:
        self.instant += timedelta(seconds=seconds)


def use_budgets(monkeypatch: pytest.MonkeyPatch, **values: Any) -> Settings:
    """Production defaults for every budget but the ones named (env variables, as deployed)."""
    for name in BUDGET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name.upper(), str(value))
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def workspaces(api: ApiClient) -> dict[str, str]:
    """Alice owns `one` (Budi is a member) and `three`; Citra owns `two`."""
    one = api.create_workspace(ALICE, "Toko Satu")
    api.add_member(one, ALICE, BUDI, "agent")
    return {
        "one": one,
        "two": api.create_workspace(CITRA, "Toko Dua"),
        "three": api.create_workspace(ALICE, "Toko Tiga"),
    }


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield FrozenClock()
    clock.set_clock(None)


def security_log_items() -> int:
    table = get_settings().table_name
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return sum(1 for i in items if i["PK"]["S"].startswith("SECURITY#") or "#AUDIT#" in i["PK"]["S"])


def assert_rate_limited(response: Any, budget: str, retry_after: int) -> None:
    assert response.status == 429, response.body
    assert response.content_type == "application/problem+json"
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json
    assert body["type"] == "https://relasify.id/problems/rate-limited"
    assert body["status"] == 429
    assert body["budget"] == budget
    assert body["retry_after"] == retry_after


def test_defaults_are_the_documented_production_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = use_budgets(monkeypatch)
    assert (settings.api_user_rate_per_second, settings.api_user_burst) == (20.0, 40)
    assert (settings.api_workspace_rate_per_second, settings.api_workspace_burst) == (100.0, 200)


def test_one_user_hammering_gets_429_with_retry_after_and_nobody_else_does(
    api: ApiClient, workspaces: dict[str, str], monkeypatch: pytest.MonkeyPatch, frozen: FrozenClock
) -> None:
    settings = use_budgets(monkeypatch)  # production: 20 requests/s, bursts of 40, per user
    one, two, three = workspaces["one"], workspaces["two"], workspaces["three"]
    logged_before = security_log_items()

    served = [api.get(f"/v1/workspaces/{one}", as_user=ALICE).status for _ in range(settings.api_user_burst)]
    assert served == [200] * settings.api_user_burst  # the whole burst, at one instant
    refused = api.get(f"/v1/workspaces/{one}", as_user=ALICE)
    # 40 requests at one instant put the bucket 40 x 50 ms ahead; one more fits 50 ms later: 1 s.
    assert_rate_limited(refused, "user", 1)

    # Alice's budget holds on every route and in every workspace of hers.
    assert_rate_limited(api.get(f"/v1/workspaces/{three}", as_user=ALICE), "user", 1)
    assert_rate_limited(api.get("/v1/me", as_user=ALICE), "user", 1)
    assert_rate_limited(api.post("/v1/workspaces", {"name": "Toko Empat"}, as_user=ALICE), "user", 1)
    assert_rate_limited(api.get(f"/v1/workspaces/{one}/contacts", as_user=ALICE), "user", 1)

    # Another member of the same workspace, and another workspace, are served meanwhile.
    assert api.get(f"/v1/workspaces/{one}", as_user=BUDI).status == 200
    assert api.get(f"/v1/workspaces/{one}/contacts", as_user=BUDI).status == 200
    assert api.get(f"/v1/workspaces/{two}", as_user=CITRA).status == 200
    # Refusals leave no security-log item (a flood must not become a flood of log writes).
    assert security_log_items() == logged_before

    frozen.advance(int(refused.headers["retry-after"]))
    assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 200
    assert api.get("/v1/me", as_user=ALICE).status == 200  # a second refills 20 requests
    assert api.post("/v1/workspaces", {"name": "Toko Empat"}, as_user=ALICE).status == 201


def test_the_workspace_budget_is_shared_by_its_members_and_only_theirs(
    api: ApiClient, workspaces: dict[str, str], monkeypatch: pytest.MonkeyPatch, frozen: FrozenClock
) -> None:
    use_budgets(monkeypatch, api_workspace_rate_per_second=2, api_workspace_burst=4)
    one, two, three = workspaces["one"], workspaces["two"], workspaces["three"]

    # Someone who is not a member names the workspace: 404s, and its budget is untouched.
    assert [api.get(f"/v1/workspaces/{one}", as_user=DEWI).status for _ in range(10)] == [404] * 10
    statuses = [api.get(f"/v1/workspaces/{one}", as_user=user).status for user in (ALICE, BUDI, ALICE, BUDI)]
    assert statuses == [200, 200, 200, 200]
    # Four requests at one instant at 2/s: the next fits 500 ms later, Retry-After rounds up to 1 s.
    assert_rate_limited(api.get(f"/v1/workspaces/{one}", as_user=BUDI), "workspace", 1)
    assert_rate_limited(api.get(f"/v1/workspaces/{one}/contacts", as_user=ALICE), "workspace", 1)
    # Each member's own budget is far from used: other workspaces and their own routes still answer.
    assert api.get(f"/v1/workspaces/{three}", as_user=ALICE).status == 200
    assert api.get("/v1/me", as_user=BUDI).status == 200
    assert api.get(f"/v1/workspaces/{two}", as_user=CITRA).status == 200

    frozen.advance(1)
    assert [api.get(f"/v1/workspaces/{one}", as_user=BUDI).status for _ in range(2)] == [200, 200]
    assert_rate_limited(api.get(f"/v1/workspaces/{one}", as_user=ALICE), "workspace", 1)


def test_the_user_budget_setting_changes_the_limit_and_malformed_bodies_spend_it(
    api: ApiClient, workspaces: dict[str, str], monkeypatch: pytest.MonkeyPatch, frozen: FrozenClock
) -> None:
    use_budgets(monkeypatch, api_user_rate_per_second=0.5, api_user_burst=3)
    one = workspaces["one"]
    malformed = {"body": b"{not json", "headers": {"content-type": "application/json"}}

    assert api.request("POST", "/v1/workspaces", as_user=ALICE, **malformed).status == 400
    assert api.request("POST", f"/v1/workspaces/{one}/contacts", as_user=ALICE, **malformed).status == 400
    assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 200
    assert api.get(f"/v1/workspaces/{one}", as_user=BUDI).status == 200  # (Budi's budget, not Alice's)
    # Three requests at one instant at 0.5/s, bursts of 3: the next fits 2 s later.
    assert_rate_limited(api.request("POST", "/v1/workspaces", as_user=ALICE, **malformed), "user", 2)
    assert_rate_limited(api.get(f"/v1/workspaces/{one}", as_user=ALICE), "user", 2)
    frozen.advance(1)
    assert_rate_limited(api.get(f"/v1/workspaces/{one}", as_user=ALICE), "user", 1)
    frozen.advance(1)
    assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 200


def test_a_refused_budget_is_refused_locally_until_it_has_room(
    api: ApiClient, workspaces: dict[str, str], monkeypatch: pytest.MonkeyPatch, frozen: FrozenClock
) -> None:
    use_budgets(monkeypatch, api_user_burst=2)
    one = workspaces["one"]
    updates: list[str] = []
    original = request_budget._update

    def counting_update(pk: str, *args: Any, **kwargs: Any) -> Any:
        updates.append(pk)
        return original(pk, *args, **kwargs)

    monkeypatch.setattr(request_budget, "_update", counting_update)
    assert [api.get(f"/v1/workspaces/{one}", as_user=ALICE).status for _ in range(2)] == [200, 200]
    assert len(updates) == 4  # per request: the user's budget, then the workspace's: one write each
    for _ in range(20):
        assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 429
    # The first refusal was one conditional write; the next 19 cost no DynamoDB request at all.
    assert len(updates) == 5
    frozen.advance(1)
    assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 200


def test_a_budget_written_by_a_clock_far_ahead_does_not_lock_the_caller_out(
    api: ApiClient, workspaces: dict[str, str], monkeypatch: pytest.MonkeyPatch, frozen: FrozenClock
) -> None:
    use_budgets(monkeypatch, api_user_burst=2)
    one = workspaces["one"]
    frozen.advance(86_400)  # a container whose clock is a day ahead serves Alice until she is refused
    assert [api.get(f"/v1/workspaces/{one}", as_user=ALICE).status for _ in range(3)] == [200, 200, 429]
    frozen.advance(-86_400)
    reset_warm_state()  # another container, with the right time
    assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 200
    assert api.get(f"/v1/workspaces/{one}", as_user=ALICE).status == 200
    # ... and from then on the budget holds as usual.
    assert_rate_limited(api.get(f"/v1/workspaces/{one}", as_user=ALICE), "user", 1)
