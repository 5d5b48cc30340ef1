"""The WhatsApp sandbox's HTTP server (relasify_local.sandbox): standard library, threaded, every
handler thread joined and every socket released by `close()`, and the connection operations the
sandbox answers and fails with (an answer, a silent close, a TCP reset)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

Route = Callable[["RequestHandler", str], None]  # (the request, its method): answers it


class SandboxServer(ThreadingHTTPServer):
    # Handler threads are joined on close (no daemon threads left behind).
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], route: Route) -> None:
        self.route = route
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def close(self) -> None:
        """Stop serving (call from another thread than `serve_forever`'s) and release every thread and socket."""
        self.shutdown()
        # Idle keep-alive connections block their handler threads in a read: wake them up.
        with self.connections_lock:
            for connection in list(self.open_connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self.server_close()  # joins every handler thread


class RequestHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"
    server_version = "RelasifyWhatsAppSandbox/1.0"
    timeout = 60  # an abandoned connection does not pin a thread forever

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def do_GET(self) -> None:
        self.server.route(self, "GET")

    def do_POST(self) -> None:
        self.server.route(self, "POST")

    def do_DELETE(self) -> None:
        self.server.route(self, "DELETE")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def respond(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, bytes):
            body = payload
        else:
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def abort(self, *, reset: bool = False) -> None:
        """Close the connection without an answer; with reset=True the peer sees a TCP RST."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # closing with linger 0 sends the RST
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox %s", format % args)
