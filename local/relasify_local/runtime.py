"""The functions of template.yaml as local, in-process Lambdas.

Each `AWS::Serverless::Function` becomes a `LocalFunction`: its handler module is loaded by
file path (CodeUri + Handler) under a unique module name, it gets a Lambda-like context, and
invocations of one function are serialised, as one warm Lambda container handles one event
at a time (Powertools resolvers keep the current event on the module-level `app`).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from relasify_local import aws_calls
from relasify_local.cfn import resources_of_type

logger = logging.getLogger("relasify_local")

REGION = "ap-southeast-3"
ACCOUNT_ID = "123456789012"
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128


class HandlerUnavailableError(Exception):
    """The function's handler module is missing or failed to import."""


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/[$LATEST]") + self.aws_request_id.replace("-", "")

    def get_remaining_time_in_millis(self) -> int:
        elapsed_ms = int((time.monotonic() - self._started) * 1000)
        return max(0, self.timeout_seconds * 1000 - elapsed_ms)


@dataclass
class LocalFunction:
    logical_id: str
    code_dir: Path
    handler: str  # "module.function", as in the template
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A function with a function URL (FunctionUrlConfig): the paths the template's outputs publish
    # under it (`${<Function>Url.FunctionUrl}<path>`), which the local gateway serves.
    url_paths: tuple[str, ...] = ()
    _module: ModuleType | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _load_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def module_file(self) -> Path:
        module_path, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module_path.replace(".", "/") + ".py")

    def events_of_type(self, event_type: str) -> dict[str, dict[str, Any]]:
        return {name: ev.get("Properties") or {} for name, ev in self.events.items() if ev.get("Type") == event_type}

    def load(self) -> ModuleType:
        """Import the handler module once; a failure is retried on the next call (the file may appear later)."""
        with self._load_lock:
            if self._module is not None:
                return self._module
            path = self.module_file
            if not path.is_file():
                raise HandlerUnavailableError(f"{self.logical_id}: {path} does not exist")
            # Sibling modules of the handler (one function folder may hold several) import by plain name.
            code_dir = str(self.code_dir)
            if code_dir not in sys.path:
                sys.path.insert(0, code_dir)
            self._warn_about_shadowed_siblings()
            self._forget_own_siblings()
            module_name = f"relasify_local_fn_{self.logical_id}_{uuid.uuid4().hex[:8]}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise HandlerUnavailableError(f"{self.logical_id}: cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise HandlerUnavailableError(f"{self.logical_id}: importing {path.name} failed: {exc!r}") from exc
            self._module = module
            return module

    def _forget_own_siblings(self) -> None:
        """Each load gets its own copies of the handler's sibling modules, as each Lambda container
        has its own interpreter. Shared copies would share their Powertools routers, and a router
        follows the resolver that included it last: a second gateway in the process (a test's, a
        restarted stack's) would take the first one's routers, whose handlers then read another
        app's request context."""
        for sibling in self.code_dir.glob("*.py"):
            loaded = sys.modules.get(sibling.stem)
            loaded_file = getattr(loaded, "__file__", None)
            if loaded_file and Path(loaded_file).resolve() == sibling.resolve():
                del sys.modules[sibling.stem]

    def _warn_about_shadowed_siblings(self) -> None:
        """In Lambda every function has its own interpreter; here one process hosts them all, so a
        sibling module name used by two function folders resolves to whichever was imported first."""
        for sibling in self.code_dir.glob("*.py"):
            loaded = sys.modules.get(sibling.stem)
            loaded_file = getattr(loaded, "__file__", None)
            if loaded_file and Path(loaded_file).resolve() != sibling.resolve():
                logger.warning("%s: module %r is already loaded from %s", self.logical_id, sibling.stem, loaded_file)

    def try_load(self) -> ModuleType | None:
        try:
            return self.load()
        except HandlerUnavailableError as exc:
            logger.warning("function unavailable: %s", exc)
            return None

    def handler_callable(self) -> Callable[[Any, Any], Any]:
        module = self.load()
        function_name = self.handler.rpartition(".")[2]
        handler = getattr(module, function_name, None)
        if not callable(handler):
            raise HandlerUnavailableError(
                f"{self.logical_id}: {self.module_file.name} has no callable {function_name!r}"
            )
        return handler

    def new_context(self) -> LambdaContext:
        return LambdaContext(
            function_name=f"relasify-{self.logical_id}",
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
        )

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler like Lambda does; exceptions propagate to the caller (gateway or poller)."""
        handler = self.handler_callable()
        with self._lock:
            started = time.monotonic()
            try:
                with aws_calls.invoking(self.logical_id, event):
                    return handler(event, self.new_context())
            finally:
                elapsed = time.monotonic() - started
                if elapsed > self.timeout_seconds:
                    logger.warning(
                        "%s ran %.1fs, over its %ss timeout: Lambda would have stopped it",
                        self.logical_id,
                        elapsed,
                        self.timeout_seconds,
                    )


def log_invocation_error(function: LocalFunction, exc: BaseException) -> None:
    if isinstance(exc, HandlerUnavailableError):
        logger.warning("not invoked: %s", exc)
        return
    # Local development only: the traceback helps the developer; it never leaves this machine.
    logger.error("%s failed: %s\n%s", function.logical_id, type(exc).__name__, traceback.format_exc())


def functions_from_template(template: dict[str, Any], repo_root: Path) -> dict[str, LocalFunction]:
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    functions: dict[str, LocalFunction] = {}
    for logical_id, resource in resources_of_type("AWS::Serverless::Function", template).items():
        props = resource.get("Properties") or {}
        code_uri = props.get("CodeUri") or globals_fn.get("CodeUri")
        handler = props.get("Handler") or globals_fn.get("Handler")
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            logger.warning("skipping %s: CodeUri/Handler are not plain strings", logical_id)
            continue
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            code_dir=(repo_root / code_uri).resolve(),
            handler=handler,
            timeout_seconds=_int_or(props.get("Timeout", globals_fn.get("Timeout")), DEFAULT_TIMEOUT_SECONDS),
            memory_mb=_int_or(props.get("MemorySize", globals_fn.get("MemorySize")), DEFAULT_MEMORY_MB),
            events=dict(props.get("Events") or {}),
            url_paths=function_url_paths(template, logical_id) if "FunctionUrlConfig" in props else (),
        )
    return functions


def function_url_paths(template: dict[str, Any], logical_id: str) -> tuple[str, ...]:
    """The paths the template's outputs publish under a function's URL: an output whose value is
    `!Sub "${<logical_id>Url.FunctionUrl}webhooks/whatsapp"` gives `/webhooks/whatsapp`."""
    prefix = f"${{{logical_id}Url.FunctionUrl}}"
    paths = []
    for output in (template.get("Outputs") or {}).values():
        value = (output or {}).get("Value")
        sub = value.get("Fn::Sub") if isinstance(value, dict) else None
        text = sub[0] if isinstance(sub, list) and sub else sub
        if isinstance(text, str) and text.startswith(prefix):
            paths.append("/" + text.removeprefix(prefix).lstrip("/"))
    return tuple(paths)


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default
