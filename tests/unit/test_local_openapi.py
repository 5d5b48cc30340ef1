"""The local stack's template reading, handler loading, OpenAPI merge and schedules, on a
throwaway repository (a template and handler folders under tmp_path)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from relasify_local.cfn import load_template
from relasify_local.gateway_events import HttpRequest
from relasify_local.gateway_routes import RouteTable, routes_from_functions
from relasify_local.openapi import OpenApiRoutes, merged_openapi
from relasify_local.runtime import HandlerUnavailableError, functions_from_template
from relasify_local.stack import scheduled_functions, scheduler_event

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 12
    MemorySize: 256
Resources:
  AccountApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/account/
      Handler: account_api.handler
      Events:
        Health: {Type: HttpApi, Properties: {Path: /health, Method: GET, Auth: {Authorizer: NONE}}}
        Workspaces: {Type: HttpApi, Properties: {Path: /v1/workspaces, Method: ANY}}
        WorkspacesProxy: {Type: HttpApi, Properties: {Path: "/v1/workspaces/{proxy+}", Method: ANY}}
  SendApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/send/
      Handler: send_api.handler
      MemorySize: 512
      Events:
        Messages: {Type: HttpApi, Properties: {Path: "/v1/workspaces/{ws}/messages", Method: ANY}}
  BrokenApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/broken/
      Handler: broken.handler
      Events:
        Broken: {Type: HttpApi, Properties: {Path: /broken, Method: GET}}
  MissingApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/missing/
      Handler: missing.handler
      Events:
        Missing: {Type: HttpApi, Properties: {Path: /missing, Method: GET}}
  PlainFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/account/
      Handler: plain.handler
      Events:
        Get: {Type: HttpApi, Properties: {Path: "/hooks/{kind}", Method: GET, Auth: {Authorizer: NONE}}}
        Post: {Type: HttpApi, Properties: {Path: /hooks, Method: POST}}
  SweepFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/account/
      Handler: sweep.handler
      Events:
        Daily: {Type: ScheduleV2, Properties: {ScheduleExpression: "cron(0 2 * * ? *)"}}
        Often: {Type: ScheduleV2, Properties: {ScheduleExpression: "rate(5 minutes)", Input: '{"kind": "often"}'}}
        Off: {Type: ScheduleV2, Properties: {ScheduleExpression: "rate(1 day)", State: DISABLED}}
"""

ACCOUNT_API = """
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from helpers import STATUS

app = APIGatewayHttpResolver(enable_validation=True)

@app.get("/health")
def health() -> dict:
    return {"status": STATUS}

@app.get("/v1/workspaces")
def list_workspaces() -> dict:
    return {"items": []}

@app.get("/v1/workspaces/<ws>")
def get_workspace(ws: str) -> dict:
    return {"id": ws}

def handler(event, context):
    return app.resolve(event, context)
"""

SEND_API = """
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver(enable_validation=True)

@app.post("/v1/workspaces/<ws>/messages")
def send(ws: str) -> dict:
    return {"ws": ws}

def handler(event, context):
    return {"statusCode": 200, "body": context.function_name}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    for folder, files in {
        "account": {
            "account_api.py": ACCOUNT_API,
            "helpers.py": 'STATUS = "ok"\n',
            "sweep.py": "def handler(e, c):\n    return e\n",
            "plain.py": 'OPENAPI_RESPONSES = {"POST": {"202": {"description": "Queued"}}}\n'
            "def handler(e, c):\n    return {}\n",
        },
        "send": {"send_api.py": SEND_API},
        "broken": {"broken.py": "raise RuntimeError('import-time failure')\n"},
    }.items():
        (tmp_path / "functions" / folder).mkdir(parents=True)
        for name, source in files.items():
            (tmp_path / "functions" / folder / name).write_text(textwrap.dedent(source))
    return tmp_path


def test_functions_are_read_from_the_template_with_globals(repo: Path) -> None:
    functions = functions_from_template(load_template(repo / "template.yaml"), repo)

    send = functions["SendApiFunction"]
    assert send.module_file == repo / "functions/send/send_api.py"
    assert send.memory_mb == 512
    assert send.timeout_seconds == 12
    assert functions["AccountApiFunction"].memory_mb == 256


def test_handler_is_loaded_by_file_path_with_a_lambda_like_context(repo: Path) -> None:
    functions = functions_from_template(load_template(repo / "template.yaml"), repo)

    result = functions["SendApiFunction"].invoke({})
    context = functions["SendApiFunction"].new_context()

    assert result == {"statusCode": 200, "body": "relasify-SendApiFunction"}
    assert context.invoked_function_arn.endswith(":function:relasify-SendApiFunction")
    assert context.memory_limit_in_mb == 512
    assert 0 < context.get_remaining_time_in_millis() <= 12_000
    assert context.aws_request_id != functions["SendApiFunction"].new_context().aws_request_id


def test_missing_or_broken_handlers_are_reported_not_fatal(repo: Path) -> None:
    functions = functions_from_template(load_template(repo / "template.yaml"), repo)

    assert functions["MissingApiFunction"].try_load() is None
    assert functions["BrokenApiFunction"].try_load() is None
    with pytest.raises(HandlerUnavailableError):
        functions["BrokenApiFunction"].invoke({})


def test_merged_openapi_covers_every_api_function_and_marks_authorised_operations(repo: Path) -> None:
    functions = functions_from_template(load_template(repo / "template.yaml"), repo)
    table = RouteTable(routes_from_functions(functions))

    document = merged_openapi(table, "http://127.0.0.1:3000")

    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "http://127.0.0.1:3000"}]
    assert set(document["paths"]) == {
        "/health",
        "/v1/workspaces",
        "/v1/workspaces/{ws}",
        "/v1/workspaces/{ws}/messages",
        "/hooks/{kind}",
        "/hooks",
    }
    assert "security" not in document["paths"]["/health"]["get"]
    assert document["paths"]["/v1/workspaces"]["get"]["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/v1/workspaces/{ws}/messages"]["post"]["security"] == [{"bearerAuth": []}]
    # Every authorised operation declares the request budgets' 429 (problem+json, Retry-After).
    for path, method in (("/v1/workspaces", "get"), ("/v1/workspaces/{ws}/messages", "post"), ("/hooks", "post")):
        limited = document["paths"][path][method]["responses"]["429"]
        assert set(limited["content"]) == {"application/problem+json"}, path
        assert limited["headers"]["Retry-After"]["schema"]["type"] == "integer", path
    assert "429" not in document["paths"]["/health"]["get"]["responses"]
    # Plain handlers are described from their template routes, with the same security rules.
    plain = document["paths"]["/hooks/{kind}"]["get"]
    assert plain["parameters"][0]["name"] == "kind"
    assert "security" not in plain
    assert "429" not in plain["responses"]
    assert document["paths"]["/hooks"]["post"]["security"] == [{"bearerAuth": []}]
    # A plain handler may declare its responses (OPENAPI_RESPONSES, by method); undeclared ones stay `default`.
    assert document["paths"]["/hooks"]["post"]["responses"]["202"] == {"description": "Queued"}
    assert set(document["paths"]["/hooks"]["post"]["responses"]) == {"202", "429"}
    assert set(plain["responses"]) == {"default"}
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_docs_routes_serve_swagger_ui_and_the_document(repo: Path) -> None:
    functions = functions_from_template(load_template(repo / "template.yaml"), repo)
    routes = OpenApiRoutes(RouteTable(routes_from_functions(functions))).local_routes()
    request = HttpRequest("GET", "/docs", [], b"")

    page = routes[("GET", "/docs")](request)
    script = routes[("GET", "/docs/swagger-ui-bundle.js")](request)
    document = routes[("GET", "/openapi.json")](request)

    assert page.status == 200
    assert b"swagger-ui" in page.body
    assert b"/openapi.json" in page.body
    assert script.status == 200
    assert b"SwaggerUIBundle" in script.body
    assert "openapi" in json.loads(document.body)


def test_scheduled_functions_use_rate_or_the_sweep_interval_for_cron(repo: Path) -> None:
    functions = functions_from_template(load_template(repo / "template.yaml"), repo)

    jobs = {job.event_name: job for job in scheduled_functions(functions, cron_interval_seconds=42)}

    assert set(jobs) == {"Daily", "Often"}
    assert jobs["Daily"].interval_seconds == 42
    assert jobs["Often"].interval_seconds == 300
    assert scheduler_event(jobs["Often"].function, "Often", jobs["Often"].props) == {"kind": "often"}
    envelope = scheduler_event(jobs["Daily"].function, "Daily", jobs["Daily"].props)
    assert envelope["detail-type"] == "Scheduled Event"
    assert envelope["source"] == "aws.scheduler"
    jobs["Daily"].run()  # the sweep handler echoes its event; a failure would only be logged
