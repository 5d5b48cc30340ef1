"""The local gateway with the template's Lambda authorizer (SPEC 5c; docs/LOCAL_STACK.md): API keys go
to that function on every request (no cache), JWTs are verified locally and handed over as the context
the authorizer gives a user; either way the function reads `requestContext.authorizer.lambda`."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.gateway import Gateway, caller_authorizer_function
from relasify_local.gateway_routes import Route
from relasify_local.jwt_local import load_or_create_key, mint_token
from relasify_local.runtime import functions_from_template

from tests.unit.test_local_gateway import RecordingFunction, gateway_request

KEY = "rk_" + "k" * 43


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory):
    return load_or_create_key(tmp_path_factory.mktemp("keys"))


def _gateway(signing_key, answer: object) -> tuple[Gateway, RecordingFunction, RecordingFunction]:
    target = RecordingFunction("ContactsApiFunction", result={"statusCode": 204})
    authorizer = RecordingFunction("ApiAuthorizerFunction", result=answer)
    route = Route("ANY", "/v1/workspaces/{proxy+}", target, True)
    return Gateway([route], signing_key, caller_authorizer=authorizer), target, authorizer


def test_the_template_names_its_authorizer_function() -> None:
    template = load_template()
    functions = functions_from_template(template, REPO_ROOT)
    assert caller_authorizer_function(template, functions) is functions["ApiAuthorizerFunction"]
    assert caller_authorizer_function({"Resources": {}}, functions) is None


def test_a_key_is_checked_by_the_authorizer_on_every_request(signing_key) -> None:
    context = {"caller": "api_key", "ws": "ws_1", "key_id": "k1"}
    gateway, target, authorizer = _gateway(signing_key, {"isAuthorized": True, "context": context})

    for _ in range(2):
        response = gateway.handle(
            gateway_request("GET", "/v1/workspaces/ws_1/contacts", [("Authorization", f"Bearer {KEY}")])
        )
        assert response.status == 204

    assert len(authorizer.events) == 2  # no cache locally: a revocation counts at once
    request_event = authorizer.events[0]
    assert request_event["type"] == "REQUEST"
    assert request_event["identitySource"] == [f"Bearer {KEY}"]
    assert request_event["rawPath"] == "/v1/workspaces/ws_1/contacts"
    passed = APIGatewayProxyEventV2(target.events[0]).request_context.authorizer.get_lambda
    assert passed == context


@pytest.mark.parametrize("answer", [{"isAuthorized": False}, {"isAuthorized": "true"}, None, "yes"])
def test_a_key_the_authorizer_refuses_gets_401_and_reaches_nothing(signing_key, answer: object) -> None:
    gateway, target, _ = _gateway(signing_key, answer)

    response = gateway.handle(
        gateway_request("GET", "/v1/workspaces/ws_1/contacts", [("Authorization", f"Bearer {KEY}")])
    )

    assert response.status == 401
    assert target.events == []


def test_a_failing_authorizer_is_a_500_and_reaches_nothing(signing_key) -> None:
    target = RecordingFunction("ContactsApiFunction", result={"statusCode": 204})
    broken = RecordingFunction("ApiAuthorizerFunction", error=RuntimeError("boom"))
    gateway = Gateway([Route("ANY", "/v1/workspaces/{proxy+}", target, True)], signing_key, caller_authorizer=broken)

    response = gateway.handle(gateway_request("GET", "/v1/workspaces/ws_1", [("Authorization", f"Bearer {KEY}")]))

    assert response.status == 500
    assert target.events == []


def test_a_jwt_is_verified_locally_and_passed_as_the_user_context(signing_key) -> None:
    gateway, target, authorizer = _gateway(signing_key, {"isAuthorized": False})
    token = mint_token("a@example.com", sub="user-7", key=signing_key)

    response = gateway.handle(gateway_request("GET", "/v1/workspaces/ws_1", [("Authorization", f"Bearer {token}")]))

    assert response.status == 204
    assert authorizer.events == []
    context = APIGatewayProxyEventV2(target.events[0]).request_context.authorizer.get_lambda
    assert (context["caller"], context["sub"], context["email"], context["email_verified"]) == (
        "user",
        "user-7",
        "a@example.com",
        "true",
    )
    bad = gateway.handle(gateway_request("GET", "/v1/workspaces/ws_1", [("Authorization", "Bearer eyJ.not.valid")]))
    assert bad.status == 401
