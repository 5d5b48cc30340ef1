"""What template.yaml deploys that the cost model prices: per function its memory, tracing mode,
log format and levels and the class of its log group; the HTTP API's access-log line; whether Meta's
webhook POST goes through the HTTP API. Read from the template (SAM Globals merged the way SAM
merges them: a function's own value wins, maps are merged key by key), never restated as constants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

# Lambda's defaults when the template says nothing (Lambda developer guide: function configuration).
DEFAULT_TRACING = "PassThrough"
DEFAULT_LOG_FORMAT = "Text"
DEFAULT_LOG_GROUP_CLASS = "STANDARD"

# Python's level names as the app logs them -> Lambda's application log levels (ALC), by severity.
PYTHON_LEVEL_TO_LAMBDA = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR", "CRITICAL": "FATAL"}
LAMBDA_LEVEL_RANK = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4, "FATAL": 5}


@dataclass(frozen=True)
class FunctionConfig:
    logical_id: str
    memory_mb: int
    tracing: str  # Active | PassThrough
    log_format: str  # Text | JSON
    application_log_level: str  # the level Lambda (JSON format) or Powertools keeps, in Lambda's names
    system_log_level: str  # the platform lines' level filter (JSON format only; Text keeps them all)
    log_group_class: str  # STANDARD | INFREQUENT_ACCESS

    def keeps(self, python_level: str) -> bool:
        """Whether an application line at this Python level reaches CloudWatch Logs."""
        level = PYTHON_LEVEL_TO_LAMBDA.get(python_level, "INFO")
        return LAMBDA_LEVEL_RANK[level] >= LAMBDA_LEVEL_RANK[self.application_log_level]

    @property
    def keeps_platform_lines(self) -> bool:
        """START/END/REPORT are INFO-level system events: a system level of WARN or above drops them."""
        return self.log_format != "JSON" or LAMBDA_LEVEL_RANK[self.system_log_level] <= LAMBDA_LEVEL_RANK["INFO"]


@dataclass(frozen=True)
class Deployment:
    functions: dict[str, FunctionConfig]
    access_log_format: str | None  # the HTTP API's access-log line template ($context variables)
    access_log_group_class: str
    webhook_post_through_http_api: bool  # False: a Lambda function URL (no API Gateway request, no access line)

    def function(self, logical_id: str) -> FunctionConfig:
        return self.functions[logical_id]


def _merged(global_value: Any, own_value: Any) -> Any:
    if isinstance(global_value, dict) and isinstance(own_value, dict):
        return {**global_value, **own_value}
    return own_value if own_value is not None else global_value


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _log_group_class(resources: dict[str, Any], reference: Any) -> str:
    name = _ref(reference)
    group = resources.get(name or "", {}).get("Properties") or {}
    return str(group.get("LogGroupClass", DEFAULT_LOG_GROUP_CLASS))  # a literal: it cannot change in place


def _resolved(template: dict[str, Any], value: Any, fallback: str) -> str:
    """A setting as deployed with the parameters' defaults: a literal, `!Ref` to a parameter, or
    `!FindInMap` over such values."""
    if value is None:
        return fallback
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        mapping, first, second = (_resolved(template, v, "") for v in value["Fn::FindInMap"])
        return str((template.get("Mappings") or {}).get(mapping, {}).get(first, {}).get(second, fallback))
    if isinstance(value, dict) and "Ref" in value:
        return str((template.get("Parameters") or {}).get(value["Ref"], {}).get("Default", fallback))
    return str(value)


def from_template(template: dict[str, Any]) -> Deployment:
    resources = template["Resources"]
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    powertools_level = _resolved(
        template, ((globals_fn.get("Environment") or {}).get("Variables") or {}).get("POWERTOOLS_LOG_LEVEL"), "INFO"
    )
    functions: dict[str, FunctionConfig] = {}
    webhook_post_through_http_api = False
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        logging_config = _merged(globals_fn.get("LoggingConfig"), props.get("LoggingConfig")) or {}
        log_format = _resolved(template, logging_config.get("LogFormat"), DEFAULT_LOG_FORMAT)
        own_level = ((props.get("Environment") or {}).get("Variables") or {}).get("POWERTOOLS_LOG_LEVEL")
        python_level = _resolved(template, own_level, powertools_level)
        # Lambda's application level wins over Powertools' when the format is JSON (Powertools reads
        # AWS_LAMBDA_LOG_LEVEL first); in Text format only Powertools filters.
        application_level = (
            _resolved(template, logging_config["ApplicationLogLevel"], "INFO")
            if log_format == "JSON" and "ApplicationLogLevel" in logging_config
            else PYTHON_LEVEL_TO_LAMBDA.get(python_level, "INFO")
        )
        functions[logical_id] = FunctionConfig(
            logical_id=logical_id,
            memory_mb=int(_resolved(template, props.get("MemorySize", globals_fn.get("MemorySize")), "128")),
            tracing=_resolved(template, props.get("Tracing", globals_fn.get("Tracing")), DEFAULT_TRACING),
            log_format=log_format,
            application_log_level=application_level,
            system_log_level=_resolved(template, logging_config.get("SystemLogLevel"), "INFO"),
            log_group_class=_log_group_class(resources, logging_config.get("LogGroup")),
        )
        for event in (props.get("Events") or {}).values():
            event_props = event.get("Properties") or {}
            if (
                event.get("Type") == "HttpApi"
                and event_props.get("Path") == "/webhooks/whatsapp"
                and str(event_props.get("Method", "")).upper() == "POST"
            ):
                webhook_post_through_http_api = True
    api = next(
        (r.get("Properties") or {} for r in resources.values() if r.get("Type") == "AWS::Serverless::HttpApi"), {}
    )
    access = api.get("AccessLogSettings") or {}
    return Deployment(
        functions=functions,
        access_log_format=access.get("Format"),
        access_log_group_class=_log_group_class(resources, access.get("DestinationArn")),
        webhook_post_through_http_api=webhook_post_through_http_api,
    )


@lru_cache(maxsize=4)
def load(path: Path | None = None) -> Deployment:
    from relasify_local.cfn import TEMPLATE_PATH, load_template

    return from_template(load_template(path or TEMPLATE_PATH))


# Typical values of the access log's $context variables (an HTTP API request of this stack).
_ACCESS_LOG_CONTEXT = {
    "requestId": "Xy3kLjW8oAMEb5Q=",
    "routeKey": "POST /webhooks/whatsapp",
    "status": "200",
    "responseLength": "2",
    "responseLatency": "41",
    "integrationLatency": "39",
    "integrationErrorMessage": "-",
    "authorizer.error": "-",
    "requestTimeEpoch": "1764985444123",
}


def access_log_line_bytes(line_format: str) -> int:
    """Bytes of one access-log line: the template's format with typical values filled in."""
    line = re.sub(r"\$context\.([A-Za-z.]+)", lambda m: _ACCESS_LOG_CONTEXT.get(m.group(1), "-"), line_format)
    return len(line.encode("utf-8")) + 1
