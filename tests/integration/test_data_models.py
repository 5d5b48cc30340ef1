"""Every model round-trips through the template's table; writes are stamped per retention class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from relasify import clock, retention
from relasify.data import models as m
from relasify.data.base import TableModel, query_page
from relasify.retention import DataClass
from relasify.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _minimal(model: type[TableModel], pk: str, sk: str) -> TableModel:
    """An instance with every required attribute filled with a placeholder."""
    values: dict[str, object] = {}
    for name, attr in model.get_attributes().items():
        if name in ("pk", "sk") or attr.null or attr.default is not None:
            continue
        values[name] = {
            "UTCDateTimeAttribute": NOW,
            "NumberAttribute": 1,
            "BooleanAttribute": False,
        }.get(type(attr).__name__, "x")
    return model(pk, sk, **values)


@pytest.fixture
def frozen_clock() -> None:
    clock.set_clock(lambda: NOW)


@pytest.mark.parametrize("model", m.ALL_MODELS, ids=lambda c: c.__name__)
def test_every_model_round_trips_and_is_stamped_by_its_class(
    ddb_tables: Settings, frozen_clock: None, model: type[TableModel]
) -> None:
    pk, sk = f"TEST#{model.__name__}", "ITEM"
    _minimal(model, pk, sk).save()

    stored = model.get_live(pk, sk)
    assert stored is not None
    assert stored.created_at == NOW
    assert stored.updated_at == NOW
    expected = retention.expires_at_for(model.data_class, start=NOW)
    if model.data_class is DataClass.ACCOUNT:
        assert expected is None
        assert stored.expires_at is None
        assert stored.expiry_bucket is None
    else:
        assert stored.expires_at == expected
        assert stored.expiry_bucket == retention.expiry_bucket(expected, f"{pk}#{sk}")


def test_retention_windows_per_class(ddb_tables: Settings, frozen_clock: None) -> None:
    day = 24 * 3600
    cases = {
        m.MessageModel: 90 * day,
        m.UsageLogModel: 365 * day,
        m.AuditLogModel: 730 * day,
        m.BillingRecordModel: 7 * 365 * day,
        m.WebhookDedupeModel: 8 * day,
    }
    for model, span in cases.items():
        item = _minimal(model, f"W#{model.__name__}", "S")
        item.save()
        assert item.expires_at == int(NOW.timestamp()) + span, model.__name__


def test_an_explicit_ttl_is_kept(ddb_tables: Settings, frozen_clock: None) -> None:
    closure = retention.closure_expires_at(NOW)
    ws = m.WorkspaceModel(m.ws_pk("w1"), "META", ws_id="w1", name="Acme", expires_at=closure)
    ws.save()
    stored = m.WorkspaceModel.get_live(m.ws_pk("w1"), "META")
    assert stored is not None
    assert stored.expires_at == closure
    assert stored.expiry_bucket == retention.expiry_bucket(closure, "WS#w1#META")


def test_expired_items_are_never_returned(ddb_tables: Settings) -> None:
    clock.set_clock(lambda: NOW)
    for i in range(3):
        _minimal(m.MessageModel, "WS#w1#MSG#old", f"S{i}").save()
    clock.set_clock(lambda: NOW + timedelta(days=60))
    _minimal(m.MessageModel, "WS#w1#MSG#old", "S9").save()

    clock.set_clock(lambda: NOW + timedelta(days=91))  # the first three are past 90 days
    assert m.MessageModel.get_live("WS#w1#MSG#old", "S0") is None
    assert m.MessageModel.get_live("WS#w1#MSG#old", "S9") is not None
    page = query_page(m.MessageModel, "WS#w1#MSG#old", limit=2)
    assert [i.sk for i in page.items] == ["S9"]
    assert page.last_evaluated_key is None
