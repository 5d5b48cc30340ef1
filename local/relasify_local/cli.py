"""`relasify`: the local stack and operator tasks.

relasify dev                               # the whole stack on 127.0.0.1 (no AWS account)
relasify token --email someone@example.com # a bearer token the local gateway accepts
relasify openapi                           # the merged OpenAPI document
relasify security-log --day 2026-11-25     # entries of no workspace (rejected webhooks, account rights)
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.import_cli import add_import_command
from relasify_local.jwt_local import DEFAULT_TTL_SECONDS, default_state_dir, mint_token

READY_MESSAGE = "Relasify local stack ready on"


def _configure_logging(level: str) -> None:
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=log_format, stream=sys.stderr)
    # Own handler, not the root's: Powertools' Logger (service "relasify") adds a filter to the root
    # handlers that drops every record whose logger name contains "relasify", ours included.
    stack_handler = logging.StreamHandler(sys.stderr)
    stack_handler.setFormatter(logging.Formatter(log_format))
    stack_logger = logging.getLogger("relasify_local")
    stack_logger.handlers = [stack_handler]
    stack_logger.setLevel(level)
    stack_logger.propagate = False
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _dev(args: argparse.Namespace) -> int:
    from relasify_local.gc_pauses import freeze_long_lived_objects
    from relasify_local.stack import LocalStack, StackConfig

    _configure_logging(args.log_level)
    config = StackConfig.from_env(
        repo_root=args.repo_root,
        template_path=args.template,
        http_port=args.http_port,
        moto_port=args.moto_port,
        sandbox_port=args.sandbox_port,
        realtime_port=args.realtime_port,
        state_dir=args.state_dir,
    )
    if args.no_sandbox:
        config.enable_sandbox = False
    stop_requested = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        logging.getLogger("relasify_local").info("received %s, stopping", signal.Signals(signum).name)
        stop_requested.set()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    started = time.monotonic()
    # The stack's process holds moto's data: keep full collections from stalling every request.
    freeze_long_lived_objects()
    stack = LocalStack(config)
    try:
        try:
            stack.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            print(
                f"Cannot start: {exc}. Stop what uses the port, or pick others with "
                "RELASIFY_HTTP_PORT / RELASIFY_MOTO_PORT / RELASIFY_SANDBOX_PORT.",
                file=sys.stderr,
            )
            return 1
        stack.write_state_file()
        if not stop_requested.is_set():
            print(f"  HTTP API      {stack.base_url}", flush=True)
            print(f"  Swagger UI    {stack.base_url}/docs", flush=True)
            print(f"  OpenAPI       {stack.base_url}/openapi.json", flush=True)
            print(f"  AWS (moto)    {stack.moto_url}", flush=True)
            print(f"  WhatsApp      {stack.sandbox_url or 'sandbox unavailable'}", flush=True)
            if stack.realtime is not None:
                print(f"  WebSocket     {stack.realtime.url}  (POST /v1/realtime/tickets, then ?ticket=)", flush=True)
            print(f"  Token         relasify token --email you@example.com  (keys in {stack.state_dir})", flush=True)
            print(f"{READY_MESSAGE} {stack.base_url} ({time.monotonic() - started:.1f}s)", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        stack.stop()
        print("Relasify local stack stopped", flush=True)
    return 0


def _token(args: argparse.Namespace) -> int:
    token = mint_token(
        args.email,
        sub=args.sub,
        name=args.name,
        ttl_seconds=args.ttl,
        state_dir=args.state_dir,
        email_verified=not args.unverified,
    )
    print(token)
    return 0


def _security_log(args: argparse.Namespace) -> int:
    """The day's security-log entries that belong to no workspace (rejected webhook signatures, a
    user's own export and deletion, sweep reports: `GET .../audit` shows a workspace's), as JSON
    lines, newest first. Against the local stack by default; `--table` and AWS credentials (with no
    `--endpoint-url`) read a deployment's table."""
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint is None and not args.table:  # the local stack's emulator
        endpoint = f"http://127.0.0.1:{os.environ.get('RELASIFY_MOTO_PORT', '5000')}"
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    if args.table:
        os.environ["TABLE_NAME"] = args.table
    for name, value in {"AWS_DEFAULT_REGION": "ap-southeast-3", "POWERTOOLS_SERVICE_NAME": "relasify-cli"}.items():
        os.environ.setdefault(name, value)
    from relasify.data.identity import identity_repository
    from relasify.settings import get_settings

    get_settings.cache_clear()
    repository, cursor = identity_repository(), None
    while True:
        page = repository.list_security_log(args.day, limit=100, cursor=cursor)
        for entry in page.items:
            print(entry.model_dump_json())
        cursor = page.next_cursor
        if not cursor:
            return 0


def _openapi(args: argparse.Namespace) -> int:
    from relasify_local.gateway_routes import RouteTable, routes_from_functions
    from relasify_local.openapi import merged_openapi
    from relasify_local.runtime import functions_from_template

    _configure_logging("WARNING")
    # Handler modules read their environment on import; nothing is called, so nothing needs to listen.
    for name, value in {
        "AWS_DEFAULT_REGION": "ap-southeast-3",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        os.environ.setdefault(name, value)
    repo_root = args.repo_root or REPO_ROOT
    template = load_template(args.template or repo_root / "template.yaml")
    table = RouteTable(routes_from_functions(functions_from_template(template, repo_root)))
    document = json.dumps(merged_openapi(table, args.server_url), indent=2)
    if args.output:
        args.output.write_text(document + "\n")
    else:
        print(document)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relasify", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the local stack (HTTP API, moto, pollers, sweep, WhatsApp sandbox)")
    dev.add_argument("--repo-root", type=Path, default=None, help="repository root (default: this checkout)")
    dev.add_argument("--template", type=Path, default=None, help="SAM template (default: <repo root>/template.yaml)")
    dev.add_argument("--http-port", type=int, default=None, help="gateway port (env RELASIFY_HTTP_PORT, 3000)")
    dev.add_argument("--moto-port", type=int, default=None, help="moto port (env RELASIFY_MOTO_PORT, 5000)")
    dev.add_argument("--sandbox-port", type=int, default=None, help="sandbox port (env RELASIFY_SANDBOX_PORT, 3100)")
    dev.add_argument(
        "--realtime-port", type=int, default=None, help="WebSocket API port (env RELASIFY_REALTIME_PORT, 3001)"
    )
    dev.add_argument("--state-dir", type=Path, default=None, help="key directory (env RELASIFY_STATE_DIR)")
    dev.add_argument("--no-sandbox", action="store_true", help="do not start the WhatsApp sandbox")
    dev.add_argument("--log-level", default=os.environ.get("RELASIFY_LOG_LEVEL", "INFO"))
    dev.set_defaults(run=_dev)

    token = commands.add_parser("token", help="print a bearer token the local gateway accepts")
    token.add_argument("--email", required=True)
    token.add_argument("--sub", default=None, help="subject (default: a stable id derived from the e-mail)")
    token.add_argument("--name", default=None)
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="lifetime in seconds")
    token.add_argument("--state-dir", type=Path, default=None, help="key directory (env RELASIFY_STATE_DIR)")
    token.add_argument(
        "--unverified",
        action="store_true",
        help='email_verified "false": the address is matched to no user or invitation (default: verified)',
    )
    token.set_defaults(run=_token)

    openapi = commands.add_parser("openapi", help="print the merged OpenAPI document of all API functions")
    openapi.add_argument("--repo-root", type=Path, default=None)
    openapi.add_argument("--template", type=Path, default=None)
    openapi.add_argument("--server-url", default="http://127.0.0.1:3000")
    openapi.add_argument("--output", "-o", type=Path, default=None)
    openapi.set_defaults(run=_openapi)
    security = commands.add_parser("security-log", help="print a day's security-log entries of no workspace")
    security.add_argument("--day", required=True, help="UTC day, YYYY-MM-DD")
    security.add_argument(
        "--endpoint-url",
        default=None,
        help="AWS endpoint (default: env AWS_ENDPOINT_URL, else the local stack's moto on RELASIFY_MOTO_PORT or 5000)",
    )
    security.add_argument("--table", default=None, help="table name (default: env TABLE_NAME, else relasify-table)")
    security.set_defaults(run=_security_log)
    add_import_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "state_dir", None) is None and hasattr(args, "state_dir"):
        args.state_dir = default_state_dir()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
