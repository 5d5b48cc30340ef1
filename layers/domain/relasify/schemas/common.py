from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# Ids we issue: prefix + Crockford base32; anything else cannot name one of our items.
IdStr = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

# DynamoDB refuses the whole write for a number it cannot store: NaN/Infinity, more than 38 significant
# digits, or a magnitude outside 1E-130..9.99E+125 (moto is laxer). Such input is a 422, not a failed write.
DYNAMODB_MAX_DIGITS = 38
DYNAMODB_MAX_EXPONENT = 125
DYNAMODB_MIN_EXPONENT = -130
UNSTORABLE_NUMBER = (
    "numbers must be finite, with at most 38 significant digits and a magnitude between 1E-130 and 9.99E+125"
)


def is_storable_number(value: int | float | Decimal) -> bool:
    """Whether DynamoDB can store this number exactly as a Number (bools are not numbers here)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return False
        value = Decimal(repr(value))  # the shortest repr is what gets serialised, not the binary expansion
    number = Decimal(value)  # Decimal(int) does not go through str, so huge ints do not hit Python's digit limit
    if not number.is_finite():
        return False
    if number.is_zero():
        return True
    digits = "".join(map(str, number.as_tuple().digits)).rstrip("0")  # DynamoDB trims trailing zeros
    return len(digits) <= DYNAMODB_MAX_DIGITS and DYNAMODB_MIN_EXPONENT <= number.adjusted() <= DYNAMODB_MAX_EXPONENT


def first_unstorable_number(value: Any) -> tuple[str | int, ...] | None:
    """Path (keys and indexes) to the first number inside a JSON-like value that DynamoDB could not store."""
    # Iterative, so a deeply nested value cannot exhaust the stack here.
    pending: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, (int, float, Decimal)):
            if not is_storable_number(item):
                return path
        elif isinstance(item, dict):
            pending.extend(((*path, key), child) for key, child in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            pending.extend(((*path, index), child) for index, child in reversed(list(enumerate(item))))
    return None


class Input(BaseModel):
    """Request bodies: unknown fields are refused so typos do not silently do nothing."""

    # defer_build (here and below): a schema's validator is built on first use, not at import, so a
    # cold start pays only for the routes it serves. allow_inf_nan: typed floats must be finite.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _storable_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # Before type validation, so free-form fields (dict/Any: attributes, template components,
        # interactive header/action) are covered too, with one clear error instead of one per union member.
        path = first_unstorable_number(value)
        if path is not None:
            where = "/".join(map(str, (info.field_name, *path)))
            raise PydanticCustomError(
                "number_unstorable", "{where}: {reason}", {"where": where, "reason": UNSTORABLE_NUMBER}
            )
        return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)
