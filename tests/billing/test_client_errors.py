"""BillingClient against a misbehaving server: typed errors, timeouts and the retry policy.

The fake server picks its behaviour from the first path segment, so a client created with
base URL `http://host:port/503` gets a 503 on every call. It counts the requests it sees.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List, Tuple

import pytest

from supportbot.clients.billing import BillingClient, Customer
from supportbot.errors import (
    BackendError,
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidRequest,
    NeedsReview,
    NotFound,
    RateLimited,
    Unauthorized,
)

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.3
RETRIES = 2
CUSTOMER = {"id": "C-1001", "name": "Alice Martin", "email": "alice@example.com"}
API_KEY = "client-test-key-0123456789"


def error_body(code: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": f"{code} happened"}}).encode()


# behaviour -> (status, content type, body)
CANNED: Dict[str, Tuple[int, str, bytes]] = {
    "ok": (200, "application/json", json.dumps(CUSTOMER).encode()),
    "created": (201, "application/json", json.dumps(CUSTOMER).encode()),
    "500": (500, "application/json", error_body("internal_error")),
    "503": (503, "text/html", b"<h1>Service Unavailable</h1>"),
    "400": (400, "text/html", b"<h1>Bad Request</h1>"),
    "401": (401, "application/json", error_body("unauthorized")),
    "403": (403, "application/json", error_body("forbidden")),
    "needs-review": (403, "application/json", error_body("needs_review")),
    "429": (429, "application/json", error_body("too_many_attempts")),
    "429-no-header": (429, "application/json", error_body("too_many_attempts")),
    "404": (404, "application/json", error_body("not_found")),
    "409": (409, "application/json", error_body("idempotency_key_reused")),
    "422": (422, "application/json", error_body("exceeds_refundable")),
    "garbage": (200, "application/json", b"<html>definitely not json"),
    "wrong-shape": (200, "application/json", b'{"unexpected": [1, 2, 3]}'),
    "wrong-types": (200, "application/json", json.dumps({**CUSTOMER, "name": 42}).encode()),
    "bad-list": (200, "application/json", b'{"orders": {"id": "4817263"}}'),
}
EXTRA_HEADERS = {"429": {"Retry-After": "42"}}


class FakeBilling(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: List[Tuple[str, str, Dict[str, str]]] = []  # method, raw path, headers
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # hanging up on purpose makes the handler's final flush fail; that is expected

    def count(self, behaviour: str) -> int:
        with self.lock:
            return sum(1 for _, path, _ in self.seen if path.split("/")[1] == behaviour)


class _Handler(BaseHTTPRequestHandler):
    server: FakeBilling

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._handle()

    do_PUT = do_POST

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def _handle(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.command, self.path, dict(self.headers)))
        behaviour = self.path.split("/")[1]
        if behaviour == "close":  # hang up without answering
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if behaviour == "slow":
            time.sleep(TIMEOUT * 3)
            behaviour = "ok"
        if behaviour == "flaky":  # fails once, then works
            behaviour = "503" if self.server.count("flaky") == 1 else "ok"
        self._reply(*CANNED[behaviour], EXTRA_HEADERS.get(behaviour, {}))

    def _reply(self, status: int, content_type: str, body: bytes,
               headers: Dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake() -> Iterator[FakeBilling]:
    server = FakeBilling()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(fake: FakeBilling, behaviour: str) -> BillingClient:
    return BillingClient(f"{fake.url}/{behaviour}", timeout=TIMEOUT, retries=RETRIES,
                         backoff=0.01, api_key=API_KEY)


# --- failures that are worth retrying ----------------------------------------------------


@pytest.mark.parametrize("behaviour", ["slow", "500", "503", "close"])
def test_unavailable_gets_are_retried(fake: FakeBilling, behaviour: str):
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        client_for(fake, behaviour).get_customer("C-1001")
    assert fake.count(behaviour) == 1 + RETRIES
    assert time.monotonic() - started < (1 + RETRIES) * TIMEOUT + 1.0


def test_nothing_listening_is_unavailable():
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        client = BillingClient(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=TIMEOUT,
                               backoff=0.01)
        with pytest.raises(BackendUnavailable) as error:
            client.health()
    assert error.value.code == "unavailable" and error.value.status is None


def test_a_retry_can_succeed(fake: FakeBilling):
    assert client_for(fake, "flaky").get_customer("C-1001") == Customer(**CUSTOMER)
    assert fake.count("flaky") == 2


def test_post_without_idempotency_key_is_not_retried(fake: FakeBilling):
    with pytest.raises(BackendUnavailable):
        client_for(fake, "503").request("POST", "customers", "C-1001", "refunds", body={})
    assert fake.count("503") == 1


def test_post_with_idempotency_key_is_retried_with_the_same_key(fake: FakeBilling):
    with pytest.raises(BackendUnavailable):
        client_for(fake, "503").create_refund("C-1001", order_id="4817264", amount="5",
                                              reason="broken", idempotency_key="key-1")
    keys = {headers.get("Idempotency-Key") for _, _, headers in fake.seen}
    assert fake.count("503") == 1 + RETRIES and keys == {"key-1"}


@pytest.mark.parametrize("method, call", [
    ("POST", lambda c: c.cancel_order("C-1001", "4817265", reason=None, idempotency_key="key-1")),
    ("PUT", lambda c: c.change_shipping_address("C-1001", "4817265", "1 Main Street, Leeds",
                                                idempotency_key="key-1")),
], ids=["cancel-order", "shipping-address"])
def test_order_writes_are_retried_with_the_same_key(fake: FakeBilling, method: str, call):
    with pytest.raises(BackendUnavailable):
        call(client_for(fake, "503"))
    assert {(m, headers.get("Idempotency-Key")) for m, _, headers in fake.seen} == {
        (method, "key-1")}
    assert fake.count("503") == 1 + RETRIES


@pytest.mark.parametrize("call", [
    lambda c: c.verify_customer("alice@example.com", "4817263"),
    lambda c: c.refund_quote("C-1001", order_id="4817264"),
], ids=["verify", "quote"])
def test_read_only_posts_are_retried(fake: FakeBilling, call):
    with pytest.raises(BackendUnavailable):
        call(client_for(fake, "503"))
    assert [method for method, _, _ in fake.seen] == ["POST"] * (1 + RETRIES)


# --- answers that are final ---------------------------------------------------------------


@pytest.mark.parametrize("behaviour, error_class, code", [
    ("400", InvalidRequest, "invalid_request"),
    ("401", Unauthorized, "unauthorized"),
    ("403", Forbidden, "forbidden"),
    ("needs-review", NeedsReview, "needs_review"),
    ("429", RateLimited, "too_many_attempts"),
    ("404", NotFound, "not_found"),
    ("409", Conflict, "idempotency_key_reused"),
    ("422", InvalidRequest, "exceeds_refundable"),
])
def test_4xx_maps_to_typed_error_and_is_never_retried(
    fake: FakeBilling, behaviour: str, error_class: type, code: str
):
    with pytest.raises(error_class) as error:
        client_for(fake, behaviour).create_refund("C-1001", order_id="4817264", amount="5",
                                                  reason="x", idempotency_key="key-2")
    assert (error.value.code, error.value.status) == (code, CANNED[behaviour][0])
    assert fake.count(behaviour) == 1


def test_error_types_for_the_action_layer():
    """Unauthorized reads as "unavailable" to the customer (it is our deployment's fault);
    NeedsReview and RateLimited are refusals of their own, not "not found"."""
    assert issubclass(Unauthorized, BackendUnavailable)
    for error_class in (NeedsReview, RateLimited):
        assert issubclass(error_class, BackendError)
        assert not issubclass(error_class, (BackendUnavailable, Forbidden, NotFound, InvalidRequest))


@pytest.mark.parametrize("call", [
    lambda c: c.verify_customer("alice@example.com", "4817263", conversation_id="conv-1"),
    lambda c: c.get_customer("C-1001"),
], ids=["verify", "get"])
def test_rate_limited_carries_retry_after_and_is_never_retried(fake: FakeBilling, call):
    with pytest.raises(RateLimited) as error:
        call(client_for(fake, "429"))
    assert (error.value.retry_after, error.value.status) == (42, 429)
    assert fake.count("429") == 1
    with pytest.raises(RateLimited) as error:
        call(client_for(fake, "429-no-header"))
    assert error.value.retry_after is None


@pytest.mark.parametrize("behaviour, call", [
    ("garbage", lambda c: c.get_customer("C-1001")),
    ("wrong-shape", lambda c: c.get_customer("C-1001")),
    ("wrong-types", lambda c: c.get_customer("C-1001")),
    ("wrong-shape", lambda c: c.get_order("C-1001", "4817263")),
    ("bad-list", lambda c: c.list_orders("C-1001")),
    ("ok", lambda c: c.refund_quote("C-1001", order_id="4817264")),  # a customer, not a quote
    ("ok", lambda c: c.health()),
])
def test_unusable_2xx_body_is_unavailable(fake: FakeBilling, behaviour: str, call):
    with pytest.raises(BackendUnavailable):
        call(client_for(fake, behaviour))


def test_any_2xx_is_success(fake: FakeBilling):
    assert client_for(fake, "created").get_customer("C-1001").id == "C-1001"


# --- requests the client builds -----------------------------------------------------------


def test_every_call_carries_the_api_key(fake: FakeBilling):
    client = client_for(fake, "ok")
    client.get_customer("C-1001")
    client.verify_customer("alice@example.com", "4817263")
    with pytest.raises(BackendUnavailable):
        client.create_refund("C-1001", order_id="4817264", amount="5", reason="x",
                             idempotency_key="key-3")  # a customer is not a refund
    with pytest.raises(BackendUnavailable):
        client_for(fake, "503").cancel_order("C-1001", "4817265", reason=None,
                                             idempotency_key="key-4")
    assert len(fake.seen) == 4 + RETRIES
    assert {headers.get("Authorization") for _, _, headers in fake.seen} == {f"Bearer {API_KEY}"}
    assert API_KEY not in repr(client)


def test_a_client_without_a_key_sends_none(fake: FakeBilling):
    BillingClient(f"{fake.url}/ok", timeout=TIMEOUT).get_customer("C-1001")
    assert "Authorization" not in fake.seen[0][2]
    with pytest.raises(ValueError):
        BillingClient(fake.url, api_key="two words")


@pytest.mark.parametrize("conversation_id, sent", [
    ("rest-5f0c2a9e41d7", "rest-5f0c2a9e41d7"),
    ("T01:C02:1712.5", "T01:C02:1712.5"),
    ("café conversation", "sha256:"),
    ("x" * 300, "sha256:"),
    ("line\r\nX-Injected: 1", "sha256:"),
])
def test_verify_sends_the_conversation_id(fake: FakeBilling, conversation_id: str, sent: str):
    client_for(fake, "ok").verify_customer("alice@example.com", "4817263",
                                           conversation_id=conversation_id)
    header = fake.seen[0][2]["X-Conversation-Id"]
    if sent == "sha256:":  # not a plain header value: a digest of it is sent instead
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", header)
    else:
        assert header == sent
    assert "X-Injected" not in fake.seen[0][2]


def test_verify_without_a_conversation_sends_no_header(fake: FakeBilling):
    client_for(fake, "ok").verify_customer("alice@example.com", "4817263")
    assert "X-Conversation-Id" not in fake.seen[0][2]


def test_path_parts_are_url_encoded(fake: FakeBilling):
    client_for(fake, "ok").get_customer("C-1001/../orders?x=1 é")
    assert fake.seen[0][1] == "/ok/customers/C-1001%2F..%2Forders%3Fx%3D1%20%C3%A9"


def test_logs_carry_no_bodies(fake: FakeBilling, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="supportbot.clients.billing")
    with pytest.raises(BackendUnavailable):
        client_for(fake, "503").create_refund("C-1001", order_id="4817264", amount="5",
                                              reason="secret-reason", idempotency_key="k")
    client_for(fake, "ok").verify_customer("alice@example.com", "4817263")
    assert caplog.records and "secret-reason" not in caplog.text
    assert "alice@example.com" not in caplog.text


def test_from_env(monkeypatch: pytest.MonkeyPatch, fake: FakeBilling):
    monkeypatch.setenv("BILLING_URL", "http://billing.internal:8080/")
    monkeypatch.setenv("BILLING_TIMEOUT", "0.5")
    client = BillingClient.from_env()
    assert (client.base_url, client.timeout) == ("http://billing.internal:8080", 0.5)
    monkeypatch.delenv("BILLING_URL")
    monkeypatch.delenv("BILLING_TIMEOUT")
    assert BillingClient.from_env().base_url == "http://127.0.0.1:5056"
    monkeypatch.setenv("BILLING_URL", f"{fake.url}/ok")
    monkeypatch.setenv("BILLING_API_KEY", API_KEY)
    BillingClient.from_env().get_customer("C-1001")
    assert fake.seen[-1][2]["Authorization"] == f"Bearer {API_KEY}"


def test_from_env_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch, fake: FakeBilling,
                                           caplog: pytest.LogCaptureFixture):
    monkeypatch.setenv("BILLING_URL", f"{fake.url}/401")
    monkeypatch.delenv("BILLING_API_KEY", raising=False)
    client = BillingClient.from_env()
    assert "BILLING_API_KEY is not set" in caplog.text
    with pytest.raises(Unauthorized):
        client.get_customer("C-1001")
    assert fake.count("401") == 1


def test_refund_target_must_be_exactly_one():
    client = BillingClient("http://127.0.0.1:9", timeout=TIMEOUT)
    with pytest.raises(ValueError):
        client.refund_quote("C-1001")
    with pytest.raises(ValueError):
        client.refund_quote("C-1001", order_id="4817264", invoice_id="INV-2026-00042")
