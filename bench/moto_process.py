"""A moto server alone, in its own process: `python -m bench.moto_process PORT`.

The local stack's server (`relasify_local.aws.MotoServer`: DynamoDB requests atomic, transactions
with an item-level undo log, table Queries over one partition), with two costs that are moto's own
taken out (no log line per request; update expressions parsed once per distinct string), so the
benchmark measures our requests rather than the emulator's bookkeeping. It runs until its stdin closes or
it is terminated, so a benchmark that dies does not leave it behind.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from relasify_local.aws import MotoServer


def cache_update_expression_parsing() -> None:
    """moto parses every UpdateExpression string twice per update (its response layer, then its
    backend): the same few strings, over and over. Parsed once here; the AST is only read, or deep-
    copied by moto's Validator before it is resolved, so one parse can serve every request."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    parsed: dict[str, Any] = {}

    def make(cls: type, expression: str) -> Any:
        ast = parsed.get(expression)
        if ast is None:
            ast = parse(cls, expression)
            if len(parsed) < 10_000:
                parsed[expression] = ast
        return ast

    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign,assignment]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no log line per request
    cache_update_expression_parsing()
    server = MotoServer("127.0.0.1", int(sys.argv[1]))
    server.start()
    try:
        sys.stdin.read()  # returns when the parent closes the pipe or exits
    finally:
        server.stop()


if __name__ == "__main__":
    main()
