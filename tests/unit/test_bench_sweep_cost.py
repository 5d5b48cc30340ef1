"""The sweep-cost figure the cost model imports (`bench.sweep_cost.LifecycleSweepCost`): scaling by
the fraction of items TTL has not deleted within the grace period, and pricing."""

from __future__ import annotations

import pytest

from bench.sweep_cost import LifecycleSweepCost, SweepUnits

COST = LifecycleSweepCost(
    lifecycles=10,
    full=SweepUnits(wcu=20.0, rcu=6.0, s3_requests=0.5),
    deleted_by_kind={"MSG": 2.0},
    write_units_by_kind={"MSG": 8.0},
    per_run=SweepUnits(wcu=10.0, rcu=10.0, s3_requests=0.0),
)
PRICES = {"dynamodb_write_request_unit": 1e-6, "dynamodb_read_request_unit": 0.5e-6}


def test_nothing_to_pay_when_ttl_deletes_within_the_grace_period() -> None:
    assert COST.units(0.0) == SweepUnits(0.0, 0.0, 0.0)
    assert COST.dollars_per_million(0.0, PRICES) == 0.0


def test_units_and_dollars_scale_with_the_fraction_ttl_left() -> None:
    assert COST.units(1.0) == COST.full
    assert COST.units(0.1).wcu == pytest.approx(2.0)
    assert COST.dollars_per_million(1.0, PRICES) == pytest.approx(20.0 + 3.0)  # S3 deletes free by default
    assert COST.dollars_per_million(0.5, {**PRICES, "s3_delete_request": 1e-6}) == pytest.approx(11.5 + 0.25)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_a_fraction_outside_0_to_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        COST.units(fraction)
