"""The billing service end to end: real server, real database, talking through BillingClient.

The server is shared by the whole session, so each test refunds its own order or invoice:
  4817264 happy path - 6630001 / INV-2026-00061 already refunded - INV-2026-00051 refund limit
  5529002 small refunds (authorization, unicode, idempotency); 5529001, 4817263, 4817265 refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from billing_api import API_KEYS, ASSISTANT_KEY, api, assert_error, new_key, run_in_threads

from supportbot.billing.auth import ApiKeys
from supportbot.billing.limits import Limits
from supportbot.billing.service import create_app
from supportbot.clients.billing import BillingClient, Refund
from supportbot.errors import Conflict, InvalidRequest, NotFound

pytestmark = pytest.mark.timeout(120)


# --- service and seed data ---------------------------------------------------------------


def test_health_and_openapi_document_every_route(client: BillingClient, billing_url: str):
    assert client.health() is True
    response = requests.get(f"{billing_url}/openapi.yaml", timeout=5)
    assert response.ok
    spec = yaml.safe_load(response.text)
    assert spec["openapi"].startswith("3.0")
    # Every path the app registers, and no other. Parameters are compared by position only:
    # the service names some `item_id` where the document says `oid`, `iid` or `sid`.
    app = create_app("sqlite://", api_keys=ApiKeys.parse(API_KEYS), limits=Limits())
    registered = {"/" + re.sub(r"<\w+(:[^>]*)?>", "{}", route.path) for route in app.router.routes}
    documented = {re.sub(r"\{\w+\}", "{}", path) for path in spec["paths"]}
    assert len(registered) >= 31 and documented == registered


def test_seed_customers(client: BillingClient):
    assert client.get_customer("C-1001").email == "alice@example.com"
    assert client.get_customer("C-1002").name == "Bob Chen"
    assert client.get_customer("C-1003").name == "Chloé Dubois"


def test_seed_orders(client: BillingClient):
    assert {o.id for o in client.list_orders("C-1001")} == {"4817263", "4817264", "4817265"}
    shipped = client.get_order("C-1001", "4817263")
    assert (shipped.status, shipped.carrier, shipped.tracking_number) == (
        "shipped", "UPS", "1Z999AA10123456784")
    assert shipped.eta - shipped.placed_at.date() == dt.timedelta(days=5)
    assert shipped.total == Decimal("89.97") == sum(i.qty * i.unit_price for i in shipped.items)
    assert shipped.placed_at.tzinfo is not None and shipped.delivered_at is None
    assert client.get_order("C-1001", "4817265").status == "processing"
    assert client.get_order("C-1003", "6630001").currency == "EUR"


def test_seed_invoices_and_payments(client: BillingClient):
    invoice = client.get_invoice("C-1001", "INV-2026-00042")
    assert (invoice.order_id, invoice.amount, invoice.status) == (
        "4817264", Decimal("49.99"), "paid")
    assert "INV-2026-00050" in {i.id for i in client.list_invoices("C-1002")}
    payments = client.list_payments("C-1002")
    assert [p.failure_reason for p in payments if p.status == "failed"] == ["card_declined"]
    duplicates = [p for p in payments if p.invoice_id == "INV-2026-00051"
                  and p.status == "succeeded"]
    assert [p.amount for p in duplicates] == [Decimal("19.00")] * 2
    assert abs(duplicates[0].created_at - duplicates[1].created_at) < dt.timedelta(minutes=1)


# --- verification and authorization ------------------------------------------------------


def test_verify_customer_ignores_case_and_spaces(client: BillingClient):
    assert client.verify_customer("  Alice@Example.COM ", "4817263").id == "C-1001"
    assert client.verify_customer("chloe@example.fr", "6630001").name == "Chloé Dubois"


def test_verify_failures_are_indistinguishable(client: BillingClient):
    with pytest.raises(NotFound) as unknown_email:
        client.verify_customer("nobody@example.com", "4817263")
    with pytest.raises(NotFound) as not_her_order:
        client.verify_customer("alice@example.com", "5529001")
    assert unknown_email.value.code == not_her_order.value.code == "not_found"
    assert unknown_email.value.message == not_her_order.value.message


@pytest.mark.parametrize("body, code", [
    ({"email": "alice@example.com"}, "missing_field"),
    ({"order_id": "4817263"}, "missing_field"),
    ({"email": "alice@example.com", "order_id": "48172"}, "invalid_field"),
    ({"email": "not-an-email", "order_id": "4817263"}, "invalid_field"),
    ({"email": ["alice@example.com"], "order_id": "4817263"}, "invalid_field"),
])
def test_verify_rejects_bad_fields(billing_url: str, body: dict, code: str):
    response = api.post(f"{billing_url}/customers/verify", json=body, timeout=5)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_other_customers_resources_are_not_found(client: BillingClient):
    bobs = client.create_refund("C-1002", order_id="5529002", amount="1.00",
                                reason="scratched", idempotency_key=new_key())
    calls = [
        lambda: client.get_order("C-1001", "5529001"),
        lambda: client.get_invoice("C-1001", "INV-2026-00050"),
        lambda: client.get_refund("C-1001", bobs.id),
        lambda: client.refund_quote("C-1001", order_id="5529002"),
        lambda: client.create_refund("C-1001", order_id="5529002", amount="1", reason="x",
                                     idempotency_key=new_key()),
        lambda: client.get_customer("C-9999"),
        lambda: client.list_orders("C-9999"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as error:
            call()
        assert error.value.code == "not_found"
    assert client.list_refunds("C-1001", order_id="5529002") == ()
    assert client.get_refund("C-1002", bobs.id) == bobs


# --- refunds -----------------------------------------------------------------------------


def test_quote_refund_and_replay(client: BillingClient, billing_url: str):
    quote = client.refund_quote("C-1001", order_id="4817264", amount="10")
    assert (quote.eligible, quote.max_refundable, quote.currency, quote.reason) == (
        True, Decimal("49.99"), "USD", None)
    key = new_key()
    refund = client.create_refund("C-1001", order_id="4817264", amount=Decimal("10.00"),
                                  reason="Lamp arrived scratched", idempotency_key=key)
    assert (refund.status, refund.amount, refund.invoice_id) == (
        "approved", Decimal("10.00"), "INV-2026-00042")
    assert refund.id.startswith("R-") and client.get_refund("C-1001", refund.id) == refund

    replay = client.create_refund("C-1001", order_id="4817264", amount="10",
                                  reason="Lamp arrived scratched", idempotency_key=key)
    assert replay == refund
    assert [r.id for r in client.list_refunds("C-1001", order_id="4817264")] == [refund.id]
    assert client.refund_quote("C-1001", order_id="4817264").max_refundable == Decimal("39.99")

    raw = api.post(f"{billing_url}/customers/C-1001/refunds", headers={
        "Idempotency-Key": key}, json={"order_id": "4817264", "amount": 10,
                                       "reason": "Lamp arrived scratched"}, timeout=5)
    assert raw.status_code == 201 and raw.headers["Idempotent-Replayed"] == "true"
    assert raw.json()["id"] == refund.id

    with pytest.raises(Conflict) as conflict:
        client.create_refund("C-1001", order_id="4817264", amount="11",
                             reason="Lamp arrived scratched", idempotency_key=key)
    assert conflict.value.code == "idempotency_key_reused"


@pytest.mark.parametrize("cid, order_id, amount, code", [
    ("C-1002", "5529001", "1.00", "outside_policy"),
    ("C-1001", "4817263", "1.00", "not_delivered"),
    ("C-1001", "4817265", "1.00", "not_delivered"),
    ("C-1002", "5529002", "10000.00", "exceeds_refundable"),
])
def test_policy_refusals(client: BillingClient, cid: str, order_id: str, amount: str, code: str):
    quote = client.refund_quote(cid, order_id=order_id, amount=amount)
    assert (quote.eligible, quote.reason) == (False, code)
    with pytest.raises(InvalidRequest) as error:
        client.create_refund(cid, order_id=order_id, amount=amount, reason="changed my mind",
                             idempotency_key=new_key())
    assert (error.value.code, error.value.status) == (code, 422)


def test_fully_refunded_order_is_already_refunded(client: BillingClient):
    refund = client.create_refund("C-1003", invoice_id="INV-2026-00061", amount="120.00",
                                  reason="Le sac est arrivé déchiré", idempotency_key=new_key())
    assert (refund.order_id, refund.currency) == ("6630001", "EUR")
    quote = client.refund_quote("C-1003", order_id="6630001")
    assert (quote.eligible, quote.max_refundable, quote.reason) == (
        False, Decimal("0.00"), "already_refunded")
    with pytest.raises(InvalidRequest) as error:
        client.create_refund("C-1003", order_id="6630001", amount="1", reason="again",
                             idempotency_key=new_key())
    assert error.value.code == "already_refunded"


def test_concurrent_duplicates_create_one_refund(any_billing_url: str):
    clients = [BillingClient(any_billing_url, timeout=30, retries=0, api_key=ASSISTANT_KEY) for _ in range(10)]
    before = len(clients[0].list_refunds("C-1002", order_id="5529002"))
    key = new_key()
    results = run_in_threads(10, lambda i: clients[i].create_refund(
        "C-1002", order_id="5529002", amount="1.00", reason="double click",
        idempotency_key=key))
    assert all(isinstance(r, Refund) for r in results), results
    assert len({r.id for r in results}) == 1
    assert len(clients[0].list_refunds("C-1002", order_id="5529002")) == before + 1


def test_concurrent_refunds_never_exceed_the_total(any_billing_url: str):
    clients = [BillingClient(any_billing_url, timeout=30, retries=0, api_key=ASSISTANT_KEY) for _ in range(10)]
    results = run_in_threads(10, lambda i: clients[i].create_refund(
        "C-1002", invoice_id="INV-2026-00051", amount="5.00", reason=f"try {i}",
        idempotency_key=new_key()))
    refunds = [r for r in results if isinstance(r, Refund)]
    refused = [r for r in results if isinstance(r, InvalidRequest)]
    assert len(refunds) == 3 and len(refused) == 7, results  # 19.00 holds three 5.00 refunds
    assert {e.code for e in refused} == {"exceeds_refundable"}


# --- raw HTTP: bad input gets a JSON 4xx, never a 500 ------------------------------------


def refund_post(billing_url: str, **kwargs: Any) -> requests.Response:
    headers = {"Idempotency-Key": new_key(), **kwargs.pop("headers", {})}
    return api.post(f"{billing_url}/customers/C-1002/refunds", headers=headers,
                    timeout=5, **kwargs)


@pytest.mark.parametrize("path", ["/customers/verify", "/customers/C-1002/refunds/quote",
                                  "/customers/C-1002/refunds"])
@pytest.mark.parametrize("body", [b'{"order_id": "5529002",', b"", b"\xff\xfe{", b"{'a': 1}"])
def test_malformed_json(billing_url: str, path: str, body: bytes):
    response = api.post(billing_url + path, data=body, timeout=5,
                        headers={"Idempotency-Key": new_key()})
    assert_error(response, 400, "malformed_json")


def test_body_must_be_an_object(billing_url: str):
    assert_error(refund_post(billing_url, json=["5529002"]), 400, "invalid_body")


def test_missing_idempotency_key(billing_url: str):
    response = api.post(f"{billing_url}/customers/C-1002/refunds", timeout=5,
                        json={"order_id": "5529002", "amount": "1", "reason": "x"})
    assert_error(response, 400, "idempotency_key_required")


@pytest.mark.parametrize("amount", ["-1", "0", "0.00", "1.234", "abc", "", "1e3", "NaN",
                                    True, [], {}, 12345678901, -5, 1.005])
def test_bad_amount(billing_url: str, amount: Any):
    body = {"order_id": "5529002", "amount": amount, "reason": "x"}
    assert_error(refund_post(billing_url, json=body), 400, "invalid_amount")


def test_missing_fields(billing_url: str):
    assert_error(refund_post(billing_url, json={"order_id": "5529002", "reason": "x"}),
                 400, "missing_field")
    assert_error(refund_post(billing_url, json={"amount": "1", "reason": "x"}),
                 400, "missing_field")
    both = {"order_id": "5529002", "invoice_id": "INV-2026-00050", "amount": "1", "reason": "x"}
    assert_error(refund_post(billing_url, json=both), 400, "invalid_field")


def test_huge_body_is_413(billing_url: str):
    body = {"order_id": "5529002", "amount": "1", "reason": "x" * 100_000}
    assert_error(refund_post(billing_url, json=body), 413, "payload_too_large")


def test_unicode_reason_and_unknown_fields(billing_url: str, client: BillingClient):
    reason = "Colis arrivé cassé 📦 — 返品してください"
    body = {"order_id": "5529002", "amount": 0.01, "reason": reason, "extra": {"ignored": 1}}
    response = refund_post(billing_url, json=body)
    assert response.status_code == 201, response.text
    assert client.get_refund("C-1002", response.json()["id"]).reason == reason


def test_unknown_routes_and_methods_answer_json(billing_url: str):
    assert_error(requests.get(f"{billing_url}/nope", timeout=5), 404, "not_found")
    assert_error(requests.delete(f"{billing_url}/health", timeout=5), 405, "method_not_allowed")
    assert_error(api.get(f"{billing_url}/customers/C-1001/orders/%00", timeout=5),
                 404, "not_found")


@pytest.mark.parametrize("length", ["-5", "abc", "2, 2"])
def test_bad_content_length_is_refused_and_does_not_stall_the_server(
    billing_url: str, length: str
):
    address = urlsplit(billing_url)
    with socket.create_connection((address.hostname, address.port), timeout=3) as sock:
        sock.sendall(f"POST /customers/verify HTTP/1.1\r\nHost: x\r\nContent-Length: {length}"
                     "\r\nConnection: close\r\n\r\n{}".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b'"bad_request"' in answer
    assert requests.get(f"{billing_url}/health", timeout=3).ok


def test_hostile_text_gets_4xx_on_every_backend(any_billing_url: str):
    """NUL and lone surrogates break Postgres and SQLite writes; they must be refused first."""
    url = any_billing_url
    for path in ["/customers/C-1001%00", "/customers/C-1001/orders/%00",
                 "/customers/C-1001/refunds?order_id=%00", "/customers/%ED%A0%80/invoices"]:
        assert_error(api.get(url + path, timeout=5), 404, "not_found")
    for reason in ["nul \u0000 byte", "lone \ud800 surrogate"]:
        body = json.dumps({"order_id": "5529002", "amount": "1", "reason": reason})
        assert_error(refund_post(url, data=body), 400, "invalid_field")
    verify = json.dumps({"email": "alice@example.com\u0000", "order_id": "4817263"})
    assert_error(api.post(f"{url}/customers/verify", data=verify, timeout=5),
                 400, "invalid_field")
    for key in ["clé-unicode", "has space", "x" * 256]:
        response = refund_post(url, headers={"Idempotency-Key": key},
                               json={"order_id": "5529002", "amount": "1", "reason": "x"})
        assert_error(response, 400, "invalid_idempotency_key")
