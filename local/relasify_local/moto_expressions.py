"""moto's UpdateExpression parsing, once per distinct expression string.

moto (5.x) tokenises and parses every UpdateExpression twice per update (its response layer checks
the names and values it uses, then its backend parses it again to apply it): for the same handful of
strings our data layer sends over and over. DynamoDB's cost does not grow with the expression's
length; moto's does, so long expressions (a status update sets six attributes) skew every benchmark
against them. `install()` keeps the parsed tree per string. The tree is only read (clause lookups)
or deep-copied by moto's Validator before placeholders are resolved into it, so one parse serves
every request.
"""

from __future__ import annotations

from typing import Any

MAX_CACHED_EXPRESSIONS = 10_000


def install() -> None:
    """Idempotent."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser.make, "_relasify_cached", False):
        return
    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    parsed: dict[str, Any] = {}

    def make(cls: type, expression: str) -> Any:
        tree = parsed.get(expression)
        if tree is None:
            tree = parse(cls, expression)
            if len(parsed) < MAX_CACHED_EXPRESSIONS:
                parsed[expression] = tree
        return tree

    make._relasify_cached = True  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign,assignment]
