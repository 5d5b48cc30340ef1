"""Graph API client against httpx.MockTransport: retries, error mapping, token hygiene."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
from relasify.errors import SendRefused
from relasify.whatsapp.errors import (
    GRAPH_ERRORS,
    ErrorCategory,
    GraphError,
    MediaTooLargeError,
    UntrustedMediaUrlError,
    classify,
)
from relasify.whatsapp.graph import GraphClient, RetryPolicy, get_graph_client, reset_graph_client

TOKEN = "EAAG-secret-token-value-0123456789"
PHONE_NUMBER_ID = "109876543210987"
WABA_ID = "102345678901234"
SEND_OK = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+6281234567890", "wa_id": "6281234567890"}],
    "messages": [{"id": "wamid.ABC123", "message_status": "accepted"}],
}
TEXT = {"to": "+6281234567890", "type": "text", "text": {"body": "Halo"}}

Handler = Callable[[httpx.Request], httpx.Response]


def graph_error(code: int, status: int = 400, message: str = "Error", **extra: object) -> httpx.Response:
    body = {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Axyz", **extra}}
    return httpx.Response(status, json=body)


class Scripted:
    """A MockTransport handler answering from a script; records every request."""

    def __init__(self, *steps: httpx.Response | Exception | Handler) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if callable(step) and not isinstance(step, httpx.Response):
            return step(request)
        return step


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., GraphClient]]:
    clients: list[GraphClient] = []

    def make(handler: Scripted, **kwargs: object) -> GraphClient:
        client = GraphClient(
            base_url="https://graph.test",
            api_version="v23.0",
            transport=httpx.MockTransport(handler),
            sleep=sleeps.append,
            rand=lambda: 0.5,
            **kwargs,  # type: ignore[arg-type]
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_send_message_posts_to_the_pinned_version_with_bearer_token(make_client) -> None:
    handler = Scripted(httpx.Response(200, json=SEND_OK))
    result = make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)

    assert result.wamid == "wamid.ABC123"
    assert result.message_status == "accepted"
    assert result.wa_id == "6281234567890"
    (request,) = handler.requests
    assert request.method == "POST"
    assert str(request.url) == f"https://graph.test/v23.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {"messaging_product": "whatsapp", **TEXT}


def test_message_status_defaults_to_accepted(make_client) -> None:
    body = {**SEND_OK, "messages": [{"id": "wamid.X"}]}
    result = make_client(Scripted(httpx.Response(200, json=body))).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
    assert (result.wamid, result.message_status) == ("wamid.X", "accepted")


def test_429_with_retry_after_then_200_waits_as_told(make_client, sleeps) -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"code": 130429}})
    handler = Scripted(throttled, httpx.Response(200, json=SEND_OK))

    result = make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)

    assert result.wamid == "wamid.ABC123"
    assert len(handler.requests) == 2
    assert sleeps == [3.0]


def test_500_then_200_is_retried_with_jittered_backoff(make_client, sleeps) -> None:
    handler = Scripted(httpx.Response(500, text="oops"), httpx.Response(200, json=SEND_OK))
    assert make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT).wamid == "wamid.ABC123"
    assert len(handler.requests) == 2
    assert sleeps == [0.25]  # rand 0.5 * base 0.5


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
        httpx.ConnectError("[Errno 111] Connection refused"),
    ],
    ids=["read-timeout", "connect-timeout", "reset-no-response", "reset-read", "refused"],
)
def test_transport_failure_then_200_is_retried(make_client, failure: Exception) -> None:
    handler = Scripted(failure, httpx.Response(200, json=SEND_OK))
    assert make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT).wamid == "wamid.ABC123"
    assert len(handler.requests) == 2


@pytest.mark.parametrize("code", [131000, 131016, 1, 2])
def test_transient_graph_codes_are_retried(make_client, code: int) -> None:
    handler = Scripted(graph_error(code, 500), httpx.Response(200, json=SEND_OK))
    assert make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT).wamid == "wamid.ABC123"
    assert len(handler.requests) == 2


@pytest.mark.parametrize(
    ("code", "http_status", "problem_type", "category"),
    [
        (131047, 400, "outside-service-window", ErrorCategory.SERVICE_WINDOW),
        (131026, 400, "recipient-unreachable", ErrorCategory.RECIPIENT),
        (131050, 400, "contact-opted-out", ErrorCategory.OPT_OUT),
        (132001, 400, "template-not-approved", ErrorCategory.TEMPLATE_STATE),
        (132015, 400, "template-not-approved", ErrorCategory.TEMPLATE_STATE),
        (132000, 400, "template-error", ErrorCategory.TEMPLATE),
        (190, 401, "whatsapp-token-expired", ErrorCategory.AUTH),
        (100, 400, "whatsapp-invalid-request", ErrorCategory.INVALID_REQUEST),
        (131021, 400, "whatsapp-invalid-request", ErrorCategory.INVALID_REQUEST),
    ],
)
def test_non_transient_errors_raise_typed_graph_error_without_retry(
    make_client, sleeps, code: int, http_status: int, problem_type: str, category: ErrorCategory
) -> None:
    handler = Scripted(
        graph_error(code, http_status, message=f"(#{code}) Something", error_data={"details": "why it failed"}),
        httpx.Response(200, json=SEND_OK),
    )
    with pytest.raises(GraphError) as caught:
        make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)

    error = caught.value
    assert len(handler.requests) == 1
    assert sleeps == []
    assert (error.code, error.http_status, error.problem_type, error.category) == (
        code,
        http_status,
        problem_type,
        category,
    )
    assert error.retryable is False
    assert error.title == f"(#{code}) Something"
    assert error.details == "why it failed"
    assert error.fbtrace_id == "Axyz"
    assert error.needs_new_token is (code == 190)


def test_graph_error_becomes_the_spec_problem() -> None:
    error = GraphError.from_error_body(
        {"error": {"code": 131047, "message": "Re-engagement message", "error_data": {"details": "24h passed"}}},
        http_status=400,
    )
    refused = error.to_domain_error()
    assert isinstance(refused, SendRefused)
    assert (refused.type_slug, refused.status, refused.detail) == ("outside-service-window", 409, "24h passed")
    assert refused.extra == {"meta_error_code": 131047}


def test_retries_are_bounded_by_attempts(make_client, sleeps) -> None:
    handler = Scripted(httpx.Response(503, text="unavailable"))
    client = make_client(handler, retry=RetryPolicy(max_attempts=3, base_delay_seconds=1, max_delay_seconds=10))
    with pytest.raises(GraphError) as caught:
        client.send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
    assert len(handler.requests) == 3
    assert sleeps == [0.5, 1.0]  # full jitter: 0.5 * 1, 0.5 * 2
    assert caught.value.retryable is True
    assert caught.value.http_status == 503


def test_retries_are_bounded_by_total_time(make_client, sleeps) -> None:
    handler = Scripted(httpx.Response(429, headers={"Retry-After": "30"}, json={"error": {"code": 130429}}))
    client = make_client(handler, retry=RetryPolicy(max_attempts=5, max_total_seconds=10))
    with pytest.raises(GraphError) as caught:
        client.send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
    # Waiting 30 s would blow the 10 s budget: give up at once and let the caller requeue.
    assert len(handler.requests) == 1
    assert sleeps == []
    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds == 30.0
    assert caught.value.problem_type == "whatsapp-throughput-exceeded"


def test_app_rate_limit_is_not_hammered(make_client, sleeps) -> None:
    handler = Scripted(graph_error(80007, 400), httpx.Response(200, json=SEND_OK))
    with pytest.raises(GraphError) as caught:
        make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
    assert len(handler.requests) == 1
    assert caught.value.retryable is True
    assert caught.value.category is ErrorCategory.RATE_LIMIT


def test_unknown_code_with_is_transient_hint_is_retried(make_client) -> None:
    handler = Scripted(graph_error(999999, 400, is_transient=True), httpx.Response(200, json=SEND_OK))
    assert make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT).wamid == "wamid.ABC123"
    assert len(handler.requests) == 2


def test_malformed_success_body_is_a_graph_error(make_client) -> None:
    handler = Scripted(httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(GraphError, match="Unexpected"):
        make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)


def test_ids_that_would_change_the_url_path_are_refused(make_client) -> None:
    handler = Scripted(httpx.Response(200, json=SEND_OK))
    with pytest.raises(ValueError, match="Graph object id"):
        make_client(handler).send_message("../me", TOKEN, TEXT)
    for bad_token in ("", "has space", "line\nbreak", "caf\u00e9"):
        with pytest.raises(ValueError, match="token") as caught:
            make_client(handler).send_message(PHONE_NUMBER_ID, bad_token, TEXT)
        assert bad_token not in str(caught.value) or not bad_token
    assert handler.requests == []


def test_template_calls(make_client) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"id": "1689556908129832", "status": "PENDING", "category": "UTILITY"})
        if request.method == "DELETE":
            return httpx.Response(200, json={"success": True})
        if request.url.params.get("after") == "CURSOR1":
            return httpx.Response(200, json={"data": [{"name": "b"}], "paging": {"cursors": {"after": "END"}}})
        return httpx.Response(
            200,
            json={"data": [{"name": "a"}], "paging": {"cursors": {"after": "CURSOR1"}, "next": "https://graph.test/n"}},
        )

    handler = Scripted(answer)
    client = make_client(handler)
    definition = {"name": "konfirmasi_pesanan", "language": "id", "category": "UTILITY", "components": []}

    submitted = client.create_template(WABA_ID, TOKEN, definition)
    first = client.list_templates(WABA_ID, TOKEN, limit=1)
    second = client.list_templates(WABA_ID, TOKEN, after=first.next_after, limit=1)
    deleted = client.delete_template(WABA_ID, TOKEN, "konfirmasi_pesanan")

    assert (submitted.id, submitted.status, submitted.category) == ("1689556908129832", "PENDING", "UTILITY")
    assert (first.items, first.next_after) == ([{"name": "a"}], "CURSOR1")
    assert (second.items, second.next_after) == ([{"name": "b"}], None)
    assert deleted is True
    post, list1, list2, delete = handler.requests
    assert post.url.path == f"/v23.0/{WABA_ID}/message_templates"
    assert json.loads(post.content) == definition
    assert list1.url.params["limit"] == "1"
    assert list2.url.params["after"] == "CURSOR1"
    assert delete.method == "DELETE"
    assert delete.url.params["name"] == "konfirmasi_pesanan"


def test_misconfiguration_is_a_graph_error_without_retry(make_client) -> None:
    handler = Scripted(httpx.UnsupportedProtocol("Request URL has an unsupported protocol"))
    with pytest.raises(GraphError, match="UnsupportedProtocol") as caught:
        make_client(handler).send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
    assert caught.value.retryable is False
    assert len(handler.requests) == 1


def test_media_url_and_download(make_client) -> None:
    content = b"\x89PNG" + b"x" * 1000

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        if request.url.host == "lookaside.fbsbx.com":
            return httpx.Response(200, content=content, headers={"content-type": "image/png"})
        return httpx.Response(
            200,
            json={
                "url": "https://lookaside.fbsbx.com/media?mid=1",
                "mime_type": "image/png",
                "sha256": "abc",
                "file_size": 1004,
                "id": "777",
                "messaging_product": "whatsapp",
            },
        )

    client = make_client(Scripted(answer))
    info = client.get_media_url("777", TOKEN)
    assert (info.url, info.mime_type, info.file_size, info.id) == (
        "https://lookaside.fbsbx.com/media?mid=1",
        "image/png",
        1004,
        "777",
    )
    assert client.download_media(info.url, TOKEN) == content


def test_download_is_size_capped_even_without_content_length(make_client) -> None:
    def stream() -> Iterator[bytes]:
        for _ in range(100):
            yield b"y" * 100

    handler = Scripted(lambda request: httpx.Response(200, content=stream()))
    with pytest.raises(MediaTooLargeError):
        make_client(handler).download_media("https://lookaside.fbsbx.com/m", TOKEN, max_bytes=1000)
    declared = Scripted(httpx.Response(200, content=b"z" * 2000))
    with pytest.raises(MediaTooLargeError):
        make_client(declared).download_media("https://lookaside.fbsbx.com/m", TOKEN, max_bytes=1000)


def test_download_retries_transient_failures(make_client) -> None:
    handler = Scripted(httpx.ReadTimeout("slow"), httpx.Response(502), httpx.Response(200, content=b"ok"))
    assert make_client(handler).download_media("https://lookaside.fbsbx.com/m", TOKEN) == b"ok"
    assert len(handler.requests) == 3


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.rendered: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.rendered.append(record.getMessage() + repr(record.__dict__))


def test_token_never_appears_in_log_records(make_client) -> None:
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        handler = Scripted(
            httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {"code": 130429}}),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json=SEND_OK),
        )
        client = make_client(handler)
        client.send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
        failing = make_client(Scripted(graph_error(190, 401, message="Error validating access token")))
        with pytest.raises(GraphError) as caught:
            failing.send_message(PHONE_NUMBER_ID, TOKEN, TEXT)
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)

    assert any("retrying" in line for line in capture.rendered)  # the capture does see the client's logs
    assert not [line for line in capture.rendered if TOKEN in line]
    assert not [line for line in capture.rendered if "6281234567890" in line]  # nor the recipient
    assert TOKEN not in str(caught.value) + repr(caught.value.__dict__)


def test_shared_client_is_created_once_and_reused() -> None:
    reset_graph_client()
    try:
        first = get_graph_client()
        assert get_graph_client() is first
    finally:
        reset_graph_client()
    assert get_graph_client() is not first
    reset_graph_client()


def test_error_table_covers_the_reference_codes() -> None:
    transient = {130429, 131000, 131016, 1, 2}
    for code in transient:
        assert GRAPH_ERRORS[code].retryable, code
    for code in (131047, 131026, 131050, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 190, 100,
                 131008, 131009, 131021):  # fmt: skip
        assert not GRAPH_ERRORS[code].retryable, code
    assert classify(None, http_status=503).retryable
    assert classify(None, http_status=429).retryable
    assert not classify(None, http_status=404).retryable
    assert not classify(424242, http_status=400).retryable


def test_get_phone_number_asks_for_the_connection_fields(make_client) -> None:
    number = {"id": PHONE_NUMBER_ID, "display_phone_number": "+62 812-3450-0000", "quality_rating": "GREEN"}
    handler = Scripted(httpx.Response(200, json=number))
    assert make_client(handler).get_phone_number(PHONE_NUMBER_ID, TOKEN) == number
    (request,) = handler.requests
    assert request.url.path == f"/v23.0/{PHONE_NUMBER_ID}"
    assert "quality_rating" in request.url.params["fields"]


@pytest.mark.parametrize(
    "url",
    [
        "http://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",  # Meta's host, but not HTTPS
        "https://lookaside.fbsbx.com.evil.test/m",  # look-alike
        "https://evil.test/m?mid=1",
        "https://user:pw@lookaside.fbsbx.com/m",  # credentials in the URL
        "https://lookaside.fbsbx.com:8443/m",  # another port
        "http://graph.test/m",  # the Graph base URL's host, downgraded to http
        "ftp://lookaside.fbsbx.com/m",
        "not a url",
    ],
)
def test_download_never_sends_the_token_outside_metas_media_hosts(make_client, url: str) -> None:
    handler = Scripted(httpx.Response(200, content=b"ok"))
    with pytest.raises(UntrustedMediaUrlError) as refused:
        make_client(handler).download_media(url, TOKEN)
    assert handler.requests == []  # no request at all, so no Authorization header anywhere
    assert "mid=1" not in str(refused.value)
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["https://lookaside.fbsbx.com/m?mid=1", "https://graph.facebook.com/v23.0/m", "https://graph.test/media/1"]
)
def test_download_sends_the_token_to_meta_and_to_the_configured_graph_base_url(make_client, url: str) -> None:
    handler = Scripted(httpx.Response(200, content=b"ok"))
    assert make_client(handler).download_media(url, TOKEN) == b"ok"
    assert handler.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
