"""The whole local stack in one process: moto, the template's resources, the HTTP gateway,
the SQS pollers, the scheduled functions on a timer and the WhatsApp sandbox.

`LocalStack` is usable in-process (tests pick their ports; 0 means any free port) and is
what `relasify dev` runs. Start order matters: the functions read their environment when
they are imported, so AWS resources and the sandbox come first, then the environment is
set, then the handlers are imported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from relasify_local import aws_calls
from relasify_local.aws import DUMMY_CREDENTIALS, LocalResources, MotoServer, aws_client, bootstrap_resources
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.gateway import Gateway, GatewayHttpServer, caller_authorizer_function
from relasify_local.gateway_cors import cors_from_template
from relasify_local.gateway_events import HttpRequest, HttpResponse, json_response
from relasify_local.gateway_routes import RouteTable, routes_from_functions
from relasify_local.jwt_local import LOCAL_ISSUER, LocalKeyPair, load_or_create_key
from relasify_local.openapi import OpenApiRoutes
from relasify_local.pollers import SqsPoller, pollers_from_functions
from relasify_local.realtime import ChangeStreamPoller, RealtimeServer
from relasify_local.runtime import ACCOUNT_ID, REGION, LocalFunction, functions_from_template, log_invocation_error

logger = logging.getLogger("relasify_local")

DEV_APP_SECRET = "dev-app-secret"  # noqa: S105 - documented local default, never used in the cloud
DEV_VERIFY_TOKEN = "dev-verify-token"  # noqa: S105 - documented local default
# Where Graph API calls go when the sandbox is unavailable: nothing listens there, so nothing reaches Meta.
UNREACHABLE_GRAPH_URL = "http://127.0.0.1:9"
STATE_FILE = "stack.json"
REALTIME_CONNECTION_FUNCTION = "RealtimeConnectionFunction"  # template.yaml: the WebSocket $connect/$disconnect
REALTIME_PUBLISHER_FUNCTION = "RealtimePublisherFunction"  # template.yaml: the change-feed stream consumer
# Origins a browser app may call the local API from (RELASIFY_CORS_ORIGINS): the usual dev servers.
DEV_CORS_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173", "http://localhost:4173", "http://127.0.0.1:4173")
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_RATE_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class StackConfig:
    repo_root: Path = REPO_ROOT
    template_path: Path | None = None
    host: str = "127.0.0.1"
    http_port: int = 3000
    moto_port: int = 5000
    sandbox_port: int = 3100
    realtime_port: int = 3001  # the WebSocket API (SPEC 5b); its management API listens on any free port
    state_dir: Path | None = None
    app_secret: str = DEV_APP_SECRET
    verify_token: str = DEV_VERIFY_TOKEN
    sweep_interval_seconds: float = 3600.0
    sweep_initial_delay_seconds: float = 5.0
    sandbox_latency_seconds: float = 0.0
    visibility_timeout_seconds: int | None = None
    enable_sandbox: bool = True
    cors_origins: tuple[str, ...] = DEV_CORS_ORIGINS

    @property
    def template(self) -> Path:
        return self.template_path or self.repo_root / "template.yaml"

    @classmethod
    def from_env(cls, **overrides: Any) -> StackConfig:
        env = os.environ
        config = cls(
            http_port=_env_int("RELASIFY_HTTP_PORT", 3000),
            moto_port=_env_int("RELASIFY_MOTO_PORT", 5000),
            sandbox_port=_env_int("RELASIFY_SANDBOX_PORT", 3100),
            realtime_port=_env_int("RELASIFY_REALTIME_PORT", 3001),
            state_dir=Path(env["RELASIFY_STATE_DIR"]) if env.get("RELASIFY_STATE_DIR") else None,
            app_secret=env.get("WHATSAPP_APP_SECRET") or DEV_APP_SECRET,
            verify_token=env.get("WHATSAPP_VERIFY_TOKEN") or DEV_VERIFY_TOKEN,
            sweep_interval_seconds=float(env.get("RELASIFY_SWEEP_INTERVAL_SECONDS") or 3600),
            sweep_initial_delay_seconds=float(env.get("RELASIFY_SWEEP_INITIAL_DELAY_SECONDS") or 5),
            sandbox_latency_seconds=float(env.get("RELASIFY_SANDBOX_LATENCY_SECONDS") or 0),
            visibility_timeout_seconds=int(env["RELASIFY_VISIBILITY_TIMEOUT_SECONDS"])
            if env.get("RELASIFY_VISIBILITY_TIMEOUT_SECONDS")
            else None,
            cors_origins=parse_origins(env["RELASIFY_CORS_ORIGINS"])
            if "RELASIFY_CORS_ORIGINS" in env
            else DEV_CORS_ORIGINS,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config


def parse_origins(value: str) -> tuple[str, ...]:
    """A comma-separated origin list; surrounding spaces and trailing slashes are dropped (browsers send neither)."""
    return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())


def issuer_routes(key: LocalKeyPair) -> dict[tuple[str, str], Callable[[HttpRequest], HttpResponse]]:
    """The local issuer's public key set, where OIDC clients look for it (`<issuer>/.well-known/jwks.json`)."""
    jwks_path = urlsplit(LOCAL_ISSUER).path + "/.well-known/jwks.json"
    return {("GET", jwks_path): lambda _: json_response(200, {"keys": [key.public_jwk()]})}


def scheduler_event(function: LocalFunction, event_name: str, props: dict[str, Any]) -> dict[str, Any]:
    """What EventBridge Scheduler delivers: the schedule's Input if it has one, else a scheduled-event envelope."""
    if isinstance(props.get("Input"), str):
        return json.loads(props["Input"])
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{function.logical_id}-{event_name}"],
        "detail": {},
    }


@dataclass
class ScheduledFunction:
    function: LocalFunction
    event_name: str
    props: dict[str, Any]
    interval_seconds: float

    def run(self) -> None:
        try:
            self.function.invoke(scheduler_event(self.function, self.event_name, self.props))
            logger.info("scheduled run of %s finished", self.function.logical_id)
        except Exception as exc:
            log_invocation_error(self.function, exc)


@dataclass
class Scheduler:
    """Runs scheduled functions once shortly after start, then every interval (cron becomes the sweep interval)."""

    jobs: list[ScheduledFunction]
    initial_delay_seconds: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _loop(self, job: ScheduledFunction) -> None:
        delay = self.initial_delay_seconds
        while not self._stop.wait(delay):
            job.run()
            delay = job.interval_seconds

    def start(self) -> None:
        for job in self.jobs:
            thread = threading.Thread(
                target=self._loop, args=(job,), name=f"relasify-schedule-{job.function.logical_id}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def scheduled_functions(functions: dict[str, LocalFunction], cron_interval_seconds: float) -> list[ScheduledFunction]:
    jobs = []
    for function in functions.values():
        for event_type in ("ScheduleV2", "Schedule"):
            for event_name, props in function.events_of_type(event_type).items():
                if props.get("State") == "DISABLED" or props.get("Enabled") is False:
                    continue
                rate = _RATE.fullmatch(str(props.get("ScheduleExpression") or props.get("Schedule") or ""))
                unit_seconds = _RATE_SECONDS[rate.group(2).rstrip("s")] if rate else 0
                interval = int(rate.group(1)) * unit_seconds if rate else cron_interval_seconds
                jobs.append(ScheduledFunction(function, event_name, props, float(interval)))
    return jobs


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.moto: MotoServer | None = None
        self.resources: LocalResources | None = None
        self.http_server: GatewayHttpServer | None = None
        self.gateway: Gateway | None = None
        self.sandbox: Any = None
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: list[SqsPoller] = []
        self.realtime: RealtimeServer | None = None
        self.change_stream: ChangeStreamPoller | None = None
        self.scheduler: Scheduler | None = None
        self.signing_key: LocalKeyPair | None = None
        self.environment: dict[str, str] = {}
        self._saved_environ: dict[str, str] | None = None
        self._started = False

    # -- URLs ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.http_server is not None, "start() first"
        return f"http://{self.config.host}:{self.http_server.port}"

    @property
    def moto_url(self) -> str:
        assert self.moto is not None, "start() first"
        return self.moto.url

    @property
    def sandbox_url(self) -> str | None:
        return self.sandbox.base_url if self.sandbox is not None else None

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir or self.config.repo_root / ".local-stack"

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def describe(self) -> dict[str, Any]:
        """Where everything listens; written to the state file so other processes can find the stack."""
        return {
            "pid": os.getpid(),
            "base_url": self.base_url,
            "moto_url": self.moto_url,
            "sandbox_url": self.sandbox_url,
            "realtime_url": self.realtime.url if self.realtime is not None else None,
            "state_dir": str(self.state_dir),
            "queues": {q.logical_id: q.url for q in self.resources.queues.values()} if self.resources else {},
            "environment": self.environment,
        }

    def write_state_file(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader polling for the file never sees it half-written.
        partial = self.state_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.describe(), indent=2))
        os.replace(partial, self.state_file)
        return self.state_file

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> LocalStack:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        config = self.config
        # Before any boto3 client exists: presigned-URL signing is copied into each client class.
        aws_calls.install_from_environment()
        template = load_template(config.template)
        self.signing_key = load_or_create_key(self.state_dir)

        self.moto = MotoServer(config.host, config.moto_port)
        self.moto.start()
        self.moto.reset()
        self.resources = bootstrap_resources(
            template,
            self.moto.url,
            app_secret=config.app_secret,
            verify_token=config.verify_token,
            visibility_timeout_seconds=config.visibility_timeout_seconds,
        )
        # Bind the gateway now so the sandbox knows where to post webhooks; serve once handlers are loaded.
        self.http_server = GatewayHttpServer(config.host, config.http_port)
        graph_url = self._start_sandbox()
        if REALTIME_CONNECTION_FUNCTION in (template.get("Resources") or {}):
            self.realtime = RealtimeServer(self._invoke_realtime_connection, config.host, config.realtime_port).start()
        self._set_environment(graph_url)

        self.functions = functions_from_template(template, config.repo_root)
        for function in self.functions.values():
            function.try_load()
        table = RouteTable(routes_from_functions(self.functions))
        openapi = OpenApiRoutes(table, self.base_url)
        self.gateway = Gateway(
            table.routes,
            self.signing_key,
            local_routes={**openapi.local_routes(), **issuer_routes(self.signing_key)},
            domain_name=f"{config.host}:{self.http_server.port}",
            cors=cors_from_template(template, self.resources.resolve, allow_origins=config.cors_origins),
            caller_authorizer=caller_authorizer_function(template, self.functions),
        )
        self.http_server.start(self.gateway)

        self.pollers = pollers_from_functions(self.functions, self.resources, aws_client("sqs", self.moto.url))
        for poller in self.pollers:
            poller.start()
        self.change_stream = self._start_change_stream(template)
        self.scheduler = Scheduler(
            scheduled_functions(self.functions, config.sweep_interval_seconds), config.sweep_initial_delay_seconds
        )
        self.scheduler.start()

    def _invoke_realtime_connection(self, event: dict[str, Any]) -> Any:
        return self.functions[REALTIME_CONNECTION_FUNCTION].invoke(event)

    def _start_change_stream(self, template: dict[str, Any]) -> ChangeStreamPoller | None:
        """The table's stream (as the template declares it) read into the realtime publisher."""
        assert self.resources is not None
        assert self.moto is not None
        table = (template.get("Resources") or {}).get("Table") or {}
        spec = (table.get("Properties") or {}).get("StreamSpecification")
        publisher = self.functions.get(REALTIME_PUBLISHER_FUNCTION)
        if not spec or publisher is None:
            return None
        dynamodb = aws_client("dynamodb", self.moto.url)
        name = self.resources.tables["Table"]
        dynamodb.update_table(
            TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": spec["StreamViewType"]}
        )
        poller = ChangeStreamPoller(publisher.invoke, dynamodb, aws_client("dynamodbstreams", self.moto.url), name)
        return poller.start()

    def _start_sandbox(self) -> str:
        if not self.config.enable_sandbox:
            return UNREACHABLE_GRAPH_URL
        try:
            from relasify_local.sandbox import Sandbox
        except ImportError as exc:
            logger.warning("WhatsApp sandbox unavailable (%s); Graph API calls will fail", exc)
            return UNREACHABLE_GRAPH_URL
        assert self.http_server is not None
        self.sandbox = Sandbox(
            host=self.config.host,
            port=self.config.sandbox_port,
            webhook_url=f"http://{self.config.host}:{self.http_server.port}/webhooks/whatsapp",
            app_secret=self.config.app_secret,
            latency_seconds=self.config.sandbox_latency_seconds,
        )
        self.sandbox.start()
        return str(self.sandbox.base_url)

    def _set_environment(self, graph_url: str) -> None:
        assert self.resources is not None
        assert self.moto is not None
        template = load_template(self.config.template)
        env = self.resources.function_environment(template)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.moto.url,
                "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                "GRAPH_API_BASE_URL": graph_url,
                "RELASIFY_LOCAL_STACK": "1",
                # Outgoing webhooks (SPEC 5c) may reach a developer's receiver on http://127.0.0.1, and
                # retry soon (5 s, doubling) so a developer sees the retry; the cloud: https only, 30 s.
                "OUTGOING_WEBHOOKS_ALLOW_LOCAL_HTTP": "true",
                "OUTGOING_WEBHOOK_FIRST_RETRY_SECONDS": os.environ.get("RELASIFY_WEBHOOK_FIRST_RETRY_SECONDS") or "5",
            }
        )
        if self.realtime is not None:
            # Clients connect here; the publisher's boto3 client reaches the management API here.
            env["REALTIME_URL"] = self.realtime.url
            env["REALTIME_MANAGEMENT_URL"] = ""
            env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = self.realtime.management_url
        self.environment = env
        self._saved_environ = dict(os.environ)
        os.environ.pop("AWS_PROFILE", None)  # a developer's profile must not win over the dummy credentials
        os.environ.update(env)
        settings = sys.modules.get("relasify.settings")
        if settings is not None and hasattr(settings, "get_settings"):
            settings.get_settings.cache_clear()  # in-process use: settings read before start are stale

    def stop(self) -> None:
        if self._started and self.http_server is not None and self.state_file.exists():
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.state_file.read_text()).get("pid") == os.getpid():
                    self.state_file.unlink()
        for poller in self.pollers:
            poller.request_stop()  # all at once: each may be inside a one-second long poll
        for component, stopper in (
            (self.scheduler, lambda c: c.stop()),
            (self.change_stream, lambda c: c.stop()),
            (self.realtime, lambda c: c.stop()),
            *((poller, lambda c: c.stop()) for poller in self.pollers),
            (self.http_server, lambda c: c.stop()),
            (self.sandbox, lambda c: c.stop()),
            (self.moto, lambda c: c.stop()),
        ):
            if component is None:
                continue
            try:
                stopper(component)
            except Exception:
                logger.exception("stopping %s failed", type(component).__name__)
        self.scheduler, self.pollers, self.http_server, self.sandbox, self.moto = None, [], None, None, None
        self.realtime, self.change_stream = None, None
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
