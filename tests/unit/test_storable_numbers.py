"""DynamoDB's number limits as input rules: the check itself, and the request models refusing what the
resolver's JSON parsing would also refuse (for models built outside HTTP, and typed floats)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from relasify.schemas.common import first_unstorable_number, is_storable_number
from relasify.schemas.contacts import ContactCreate
from relasify.schemas.messages import SendMessage
from relasify.schemas.templates import TemplateCreate
from relasify.web.resolver import loads_storable_json


@pytest.mark.parametrize(
    "number",
    [0, -0.0, 1, int("9" * 38), 10**40, 9.99e125, Decimal("9." + "9" * 37 + "E+125"), 1e-130, -1e-130, 0.1, 1e16],
)
def test_storable(number: int | float | Decimal) -> None:
    assert is_storable_number(number)


@pytest.mark.parametrize(
    "number",
    [float("nan"), float("inf"), float("-inf"), 1e126, -1e126, 1e-131, 1e-300, int("1" * 39), -int("1" * 39)],
)
def test_unstorable(number: int | float) -> None:
    assert not is_storable_number(number)


def test_an_int_past_pythons_digit_limit_is_checked_not_raised() -> None:
    assert not is_storable_number(7**6000)
    assert is_storable_number(10**125)


def test_first_unstorable_number_names_the_path_and_ignores_bools() -> None:
    assert first_unstorable_number({"a": [True, 1, {"b": "NaN"}]}) is None
    assert first_unstorable_number({"a": [1, {"b": float("nan")}], "c": float("inf")}) == ("a", 1, "b")


def test_models_refuse_unstorable_numbers_in_free_form_fields() -> None:
    with pytest.raises(ValidationError, match="attributes/x: numbers must be finite"):
        ContactCreate.model_validate({"phone": "0812", "attributes": {"x": float("nan")}})
    with pytest.raises(ValidationError, match="components/0/example/y: numbers must be finite"):
        TemplateCreate.model_validate(
            {"name": "a", "language": "id", "category": "UTILITY", "components": [{"example": {"y": 1e300}}]}
        )
    body = {"to": "0812", "type": "interactive"}
    interactive = {"type": "button", "body": {"text": "x"}, "action": {"buttons": [{"n": 10**39 + 1}]}}
    with pytest.raises(ValidationError, match="interactive/action/buttons/0/n"):
        SendMessage.model_validate({**body, "interactive": interactive})
    interactive = {**interactive, "action": {"buttons": [{"n": 3}]}, "header": {"n": float("-inf")}}
    with pytest.raises(ValidationError, match="interactive/header/n"):
        SendMessage.model_validate({**body, "interactive": interactive})


def test_resolver_json_parsing_refuses_them_with_the_location() -> None:
    assert loads_storable_json('{"a": [1, 2.5, 1e125, true]}') == {"a": [1, 2.5, 1e125, True]}
    for literal in ("NaN", "-Infinity", "1e400", "1" * 39, "9" * 5000):
        with pytest.raises(RequestValidationError) as refused:
            loads_storable_json(f'{{"a": [0, {{"b": {literal}}}]}}')
        assert refused.value.errors()[0]["loc"] == ("body", "a", 1, "b")


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**45), max_value=10**45),
    st.integers().map(lambda n: n * 10**130),  # past the range (or zero), trailing zeros and all
)
_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(max_size=5), _numbers),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=3), _json_values, max_size=4))
def test_any_body_parses_to_storable_numbers_or_a_422_pointing_at_one(body: dict[str, Any]) -> None:
    text = json.dumps(body)  # writes NaN / Infinity for non-finite floats, as a client might
    try:
        parsed = loads_storable_json(text)
    except RequestValidationError as refused:
        loc = refused.errors()[0]["loc"]
        assert loc[0] == "body"
        assert not is_storable_number(_at(body, loc[1:]))
    else:
        assert first_unstorable_number(parsed) is None
        assert first_unstorable_number(body) is None  # nothing unstorable was let through
