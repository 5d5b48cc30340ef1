"""HttpApi Lambda REQUEST authorizer (simple responses): Cognito ID tokens and workspace API keys.
Thin: the decision is relasify.web.authorizer's."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from relasify.observability import logger
from relasify.web.authorizer import authorize, verify_cognito_jwt


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The identity source is the Authorization header; API Gateway lower-cases header names (2.0).
    authorization = (event.get("headers") or {}).get("authorization")
    return authorize(authorization, verify_cognito_jwt)
