"""The local WebSocket API (SPEC section 5b), as API Gateway's WebSocket API behaves:

- `ws://<host>:<port>/?ticket=...`: the handshake runs the `$connect` handler (the template's
  RealtimeConnectionFunction) with the event API Gateway sends; a non-2xx answer refuses it (403
  on the handshake, as API Gateway). Closing runs `$disconnect`. Messages from clients are ignored.
- The management API on its own listener (`websockets` serves only GET handshakes):
  `POST /[stage/]@connections/{id}` sends the body as a text frame, `DELETE` closes; an unknown or
  closed connection answers 410 `GoneException`, as API Gateway does. boto3 reaches it through
  `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`.
- `ChangeStreamPoller`: DynamoDB Streams (moto implements get_records) fed to the publisher, with
  the event source mapping's filter (INSERT of a `CHG#` item) applied here, as Lambda applies it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

logger = logging.getLogger("relasify_local")

Invoke = Callable[[dict[str, Any]], Any]
CHANGE_FEED_PREFIX = "CHG#"


class _Connection:
    def __init__(self, socket: ServerConnection) -> None:
        self.socket = socket
        self.opened = threading.Event()


class RealtimeServer:
    """The WebSocket listener and its management API. `invoke_connection` runs the $connect /
    $disconnect handler (a LocalFunction's invoke in the stack, any callable in tests)."""

    def __init__(self, invoke_connection: Invoke, host: str = "127.0.0.1", port: int = 3001, management_port: int = 0):
        self.invoke_connection = invoke_connection
        self.host = host
        self._requested_port = port
        self._management_port = management_port
        self._connections: dict[str, _Connection] = {}
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._management: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- URLs ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def management_url(self) -> str:
        assert self._management is not None, "start() first"
        return f"http://{self.host}:{self._management.server_address[1]}"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> RealtimeServer:
        self._server = serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
        )
        self._management = _ManagementServer((self.host, self._management_port), self)
        for target, name in (
            (self._server.serve_forever, "relasify-realtime"),
            (self._management.serve_forever, "relasify-realtime-management"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._management is not None:
            self._management.shutdown()
            self._management.server_close()
        with self._lock:
            sockets = [c.socket for c in self._connections.values()]
            self._connections.clear()
        for socket in sockets:
            socket.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    # -- the WebSocket side ------------------------------------------------------------------
    def _event(self, route: str, connection_id: str, request: Request | None = None) -> dict[str, Any]:
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "requestContext": {
                "routeKey": route,
                "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
                "connectionId": connection_id,
                "connectedAt": int(now.timestamp() * 1000),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "domainName": f"{self.host}:{self.port}",
                "stage": "local",
                "apiId": "local",
                "requestId": str(uuid.uuid4()),
            },
            "isBase64Encoded": False,
        }
        if request is not None:
            query = parse_qs(urlsplit(request.path).query)
            event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} or None
            event["headers"] = {k: v for k, v in request.headers.raw_items() if k.lower() != "authorization"}
        return event

    def _process_request(self, socket: ServerConnection, request: Request) -> Response | None:
        connection_id = _connection_id(socket)
        try:
            answer = self.invoke_connection(self._event("$connect", connection_id, request))
        except Exception:
            logger.exception("$connect failed")
            return socket.respond(500, "Internal server error\n")
        status = int((answer or {}).get("statusCode", 200)) if isinstance(answer, dict) else 200
        if not 200 <= status < 300:
            return socket.respond(403, "Forbidden\n")  # API Gateway refuses the handshake with 403
        with self._lock:
            self._connections[connection_id] = _Connection(socket)
        return None

    def _handle(self, socket: ServerConnection) -> None:
        connection_id = _connection_id(socket)
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is not None:
            connection.opened.set()
        try:
            for _ in socket:  # clients send nothing that matters ($default)
                pass
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.pop(connection_id, None)
            try:
                self.invoke_connection(self._event("$disconnect", connection_id))
            except Exception:
                logger.exception("$disconnect failed")

    # -- the management API --------------------------------------------------------------
    def post(self, connection_id: str, data: bytes) -> bool:
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or not connection.opened.wait(timeout=2):
            return False
        try:
            connection.socket.send(data.decode("utf-8", errors="replace"))
        except ConnectionClosed:
            return False
        return True

    def close(self, connection_id: str) -> bool:
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None:
            return False
        connection.socket.close()
        return True

    @property
    def connection_ids(self) -> list[str]:
        with self._lock:
            return list(self._connections)


def _connection_id(socket: ServerConnection) -> str:
    # API Gateway's ids look like "L0SM9cOFvHcCIhw="; any opaque, unique string will do here.
    return socket.id.hex[:16] + "="


class _ManagementServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], realtime: RealtimeServer) -> None:
        super().__init__(address, _ManagementHandler)
        self.realtime = realtime


class _ManagementHandler(BaseHTTPRequestHandler):
    server: _ManagementServer

    def _connection_id(self) -> str | None:
        path = urlsplit(self.path).path
        marker = "/@connections/"
        if marker not in path:
            return None
        return unquote(path.split(marker, 1)[1]) or None

    def _answer(self, status: int, body: dict[str, Any] | None = None, error: str | None = None) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _gone(self) -> None:
        self._answer(410, {"message": None}, "GoneException")

    def do_POST(self) -> None:
        connection_id = self._connection_id()
        data = self.rfile.read(int(self.headers.get("content-length") or 0))
        if connection_id is None:
            self._answer(404, {"message": "Not Found"})
        elif len(data) > 128 * 1024:
            self._answer(413, {"message": "Message too long"}, "PayloadTooLargeException")
        elif self.server.realtime.post(connection_id, data):
            self._answer(200)
        else:
            self._gone()

    def do_DELETE(self) -> None:
        connection_id = self._connection_id()
        if connection_id is not None and self.server.realtime.close(connection_id):
            self._answer(204)
        else:
            self._gone()

    def log_message(self, *args: Any) -> None:
        pass


class ChangeStreamPoller:
    """Reads the table's stream (every shard, from LATEST at start) and invokes the publisher with
    the records Lambda's event source mapping would deliver: INSERTs of change-feed items."""

    def __init__(self, invoke_publisher: Invoke, dynamodb: Any, streams: Any, table_name: str, interval: float = 0.05):
        self.invoke_publisher = invoke_publisher
        self.dynamodb = dynamodb
        self.streams = streams
        self.table_name = table_name
        self.interval = interval
        self._iterators: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ChangeStreamPoller:
        self._refresh_shards(initial=True)
        self._thread = threading.Thread(target=self._run, name="relasify-change-stream", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _stream_arn(self) -> str:
        return str(self.dynamodb.describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"])

    def _refresh_shards(self, *, initial: bool = False) -> None:
        arn = self._stream_arn()
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators:
                continue
            kind = "LATEST" if initial else "TRIM_HORIZON"
            self._iterators[shard_id] = self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind
            )["ShardIterator"]

    def poll_once(self) -> int:
        """Read every shard once; returns the change-feed records handed to the publisher."""
        delivered = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = answer.get("NextShardIterator")
            # As Lambda delivers them: JSON (boto3 parsed the creation time into a datetime).
            records = [json.loads(json.dumps(r, default=str)) for r in answer.get("Records") or [] if _is_new_event(r)]
            if records:
                try:
                    self.invoke_publisher({"Records": records})
                except Exception:
                    logger.exception("the realtime publisher failed on %d records", len(records))
                delivered += len(records)
        return delivered

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once():
                    self._stop.wait(self.interval)
            except Exception:
                logger.exception("change stream poll failed")
                self._stop.wait(1.0)


def _is_new_event(record: dict[str, Any]) -> bool:
    if record.get("eventName") != "INSERT":
        return False
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    return str((keys.get("PK") or {}).get("S", "")).startswith(CHANGE_FEED_PREFIX)
