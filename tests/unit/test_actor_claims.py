"""Which token claims make the caller's e-mail count (SPEC §3 "Invitations"): only a verified one."""

from __future__ import annotations

from typing import Any

import pytest
from relasify.web.auth import actor_from_claims

CLAIMS = {"sub": "user-1", "email": "Ana@Example.com"}


# API Gateway hands every claim over as a string ("true" / "false"); a direct invocation may pass booleans.
@pytest.mark.parametrize("verified", ["true", "TRUE", " true ", True])
def test_a_verified_email_is_the_actors_address(verified: Any) -> None:
    assert actor_from_claims({**CLAIMS, "email_verified": verified}).email == "ana@example.com"


@pytest.mark.parametrize("verified", ["false", False, "", "1", 1, "yes", "[true]", None])
def test_any_other_email_verified_value_leaves_the_actor_without_an_address(verified: Any) -> None:
    actor = actor_from_claims({**CLAIMS, "email_verified": verified})

    assert actor.sub == "user-1"
    assert actor.email == ""


def test_a_token_without_the_claim_has_no_address() -> None:
    assert actor_from_claims(CLAIMS).email == ""
