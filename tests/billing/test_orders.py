"""Changing an order before it ships: cancellation (with its refund) and a new shipping address.

Each test inserts its own customer and order straight into the server's database (`fresh_order`):
the seeded orders are what the conversation tests talk about, so they are never changed here.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from decimal import Decimal
from typing import Any, Callable, Dict

import pytest
from billing_api import ASSISTANT_KEY, api, assert_error, new_key, run_in_threads
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from supportbot.billing import models as m
from supportbot.clients.billing import (
    BillingClient,
    Order,
    OrderCancellation,
    _cancellation,
    _parse,
)
from supportbot.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound

pytestmark = pytest.mark.timeout(120)
D = Decimal
BillingServer = Any  # conftest.BillingServer: url, db_url, log
ADDRESS = "Flat 2\n14 Harbour Road\nBristol BS1 5TT\nUnited Kingdom"


def add(engine: Any, *rows: Any) -> None:
    with Session(engine) as session:
        for row in rows:
            session.add(row)
            session.flush()
        session.commit()


def fresh_order(engine: Any, status: str = "processing", paid: bool = True) -> Dict[str, str]:
    """A new customer with one 59.98 USD order: a declined payment, then (if `paid`) a good one."""
    n = uuid.uuid4().hex[:8]
    cid, now = f"C-{n}", m.utcnow() - dt.timedelta(hours=2)
    with Session(engine) as session:  # 7 digits, clear of the seeded 4/5/6/7 million ranges
        oid = next(oid for oid in iter(lambda: f"8{secrets.randbelow(10**6):06d}", None)
                   if session.scalar(select(m.Order.id).where(m.Order.id == oid)) is None)
    shipped = status in ("shipped", "delivered")
    rows = [
        m.Customer(id=cid, name="Order Tester", email=f"{n}@example.com"),
        m.Order(id=oid, customer_id=cid, status=status, shipping_address="1 Old Street\nLeeds",
                carrier="UPS" if shipped else None, tracking_number=f"1Z{n}" if shipped else None,
                placed_at=now, total=D("59.98"), currency="USD",
                delivered_at=now + dt.timedelta(hours=1) if status == "delivered" else None),
        m.OrderItem(order_id=oid, sku="SOCK-01", name="Wool socks", qty=2, unit_price=D("29.99")),
        m.Payment(id=f"P-{n}0", customer_id=cid, order_id=oid, amount=D("59.98"), currency="USD",
                  status="failed", failure_reason="card_declined", card_last4="0341",
                  created_at=now),
    ]
    if paid:
        rows.append(m.Payment(id=f"P-{n}1", customer_id=cid, order_id=oid, amount=D("59.98"),
                              currency="USD", status="succeeded", card_last4="4242",
                              created_at=now + dt.timedelta(seconds=30)))
    add(engine, *rows)
    return {"cid": cid, "oid": oid, "n": n, "failed": f"P-{n}0", "paid": f"P-{n}1"}


def old_refund(engine: Any, c: Dict[str, str], amount: str) -> None:
    """A refund made on the order earlier (the API only refunds delivered orders)."""
    with Session(engine) as session:
        refund = m.Refund(customer_id=c["cid"], order_id=c["oid"], amount=D(amount),
                          currency="USD", reason="goodwill", status="approved",
                          created_at=m.utcnow())
        session.add(refund)
        session.flush()
        refund.id = f"R-{refund.number:06d}"
        session.commit()


def duplicate_charge(engine: Any, c: Dict[str, str]) -> str:
    """The good payment taken a second time, a minute later: a duplicate charge."""
    pid = f"P-{c['n']}2"
    add(engine, m.Payment(id=pid, customer_id=c["cid"], order_id=c["oid"], amount=D("59.98"),
                          currency="USD", status="succeeded", card_last4="4242",
                          created_at=m.utcnow() - dt.timedelta(hours=1)))
    return pid


def count(engine: Any, model: Any, *where: Any) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def payment_statuses(client: BillingClient, cid: str) -> Dict[str, str]:
    return {p.id: p.status for p in client.list_payments(cid)}


def order_url(base: str, c: Dict[str, str], action: str) -> str:
    return f"{base}/customers/{c['cid']}/orders/{c['oid']}/{action}"


# --- cancellation ------------------------------------------------------------------------


def test_cancel_refunds_what_was_paid(client: BillingClient, engine: Any, billing_url: str):
    c = fresh_order(engine)
    cid, oid, key = c["cid"], c["oid"], new_key()
    result = client.cancel_order(cid, oid, reason="  ordered the wrong size ", idempotency_key=key)
    assert isinstance(result, OrderCancellation) and result.order.status == "cancelled"
    assert result.order == client.get_order(cid, oid)
    refund = result.refund
    assert re.fullmatch(r"R-\d{6}", refund.id)
    assert (refund.customer_id, refund.order_id, refund.invoice_id, refund.payment_id) == (
        cid, oid, None, None)
    assert (refund.amount, refund.currency, refund.status, refund.reason) == (
        D("59.98"), "USD", "approved", "order cancelled: ordered the wrong size")
    assert client.list_refunds(cid, order_id=oid) == (refund,)
    assert client.get_refund(cid, refund.id) == refund
    assert payment_statuses(client, cid) == {c["paid"]: "refunded", c["failed"]: "failed"}

    # replays: same answer, nothing written
    assert client.cancel_order(cid, oid, reason="ordered the wrong size",
                               idempotency_key=key) == result
    raw = api.post(order_url(billing_url, c, "cancel"), timeout=10,
                   json={"reason": "ordered the wrong size"}, headers={"Idempotency-Key": key})
    assert raw.status_code == 200 and raw.headers["Idempotent-Replayed"] == "true"
    assert count(engine, m.Refund, m.Refund.order_id == oid) == 1
    with pytest.raises(Conflict) as reused:
        client.cancel_order(cid, oid, reason="changed my mind", idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"

    with pytest.raises(InvalidRequest) as again:
        client.cancel_order(cid, oid, reason=None, idempotency_key=new_key())
    assert again.value.code == "already_cancelled"
    assert count(engine, m.Refund, m.Refund.order_id == oid) == 1


def test_cancel_without_a_reason(client: BillingClient, engine: Any):
    c = fresh_order(engine)
    result = client.cancel_order(c["cid"], c["oid"], reason=None, idempotency_key=new_key())
    assert (result.refund.reason, result.refund.amount) == ("order cancelled", D("59.98"))


def test_cancel_of_an_unpaid_order_has_no_refund(engine: Any, billing_url: str):
    c = fresh_order(engine, paid=False)
    response = api.post(order_url(billing_url, c, "cancel"), json={}, timeout=10,
                        headers={"Idempotency-Key": new_key()})
    assert response.status_code == 200
    body = response.json()
    assert (body["order"]["status"], body["refund"]) == ("cancelled", None)
    assert count(engine, m.Refund, m.Refund.customer_id == c["cid"]) == 0


@pytest.mark.parametrize("setup, expected", [
    (lambda e, c, client: old_refund(e, c, "10.00"), "49.98"),
    (lambda e, c, client: old_refund(e, c, "59.98"), None),
    # a duplicate charge refunded in part still counts as paid, minus that part ...
    (lambda e, c, client: client.create_refund(
        c["cid"], payment_id=duplicate_charge(e, c), amount="5.00", reason="twice",
        idempotency_key=new_key()), "114.96"),
    # ... and one refunded in full is neither paid nor refunded any more
    (lambda e, c, client: client.create_refund(
        c["cid"], payment_id=duplicate_charge(e, c), amount="59.98", reason="twice",
        idempotency_key=new_key()), "59.98"),
], ids=["earlier-order-refund", "fully-refunded", "part-refunded-duplicate",
        "refunded-duplicate"])
def test_cancel_refunds_only_what_is_left(client: BillingClient, engine: Any,
                                          setup: Callable[..., Any], expected: str):
    c = fresh_order(engine)
    setup(engine, c, client)
    before = count(engine, m.Refund, m.Refund.customer_id == c["cid"])
    result = client.cancel_order(c["cid"], c["oid"], reason=None, idempotency_key=new_key())
    if expected is None:
        assert result.refund is None
    else:
        assert result.refund.amount == D(expected)
    assert count(engine, m.Refund, m.Refund.customer_id == c["cid"]) == before + (expected is not None)
    statuses = payment_statuses(client, c["cid"])
    assert statuses.pop(c["failed"]) == "failed"
    assert set(statuses.values()) == {"refunded"}


# --- shipping address --------------------------------------------------------------------


def test_change_shipping_address(client: BillingClient, engine: Any, billing_url: str):
    c = fresh_order(engine)
    cid, oid, key = c["cid"], c["oid"], new_key()
    before = client.get_order(cid, oid)
    order = client.change_shipping_address(cid, oid, f"  {ADDRESS}\n", idempotency_key=key)
    assert isinstance(order, Order) and order.shipping_address == ADDRESS
    assert order == client.get_order(cid, oid)
    assert (order.status, order.total, order.items) == ("processing", before.total, before.items)

    assert client.change_shipping_address(cid, oid, ADDRESS, idempotency_key=key) == order
    raw = api.put(order_url(billing_url, c, "shipping-address"), json={"address": ADDRESS},
                  headers={"Idempotency-Key": key}, timeout=10)
    assert raw.status_code == 200 and raw.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(Conflict) as reused:
        client.change_shipping_address(cid, oid, "9 Other Lane, York", idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"
    assert client.get_order(cid, oid).shipping_address == ADDRESS

    for address in ["x" * 10, "é" * 500]:  # both limits, counted in characters
        assert client.change_shipping_address(cid, oid, address,
                                              idempotency_key=new_key()).shipping_address == address
    assert count(engine, m.Refund, m.Refund.customer_id == cid) == 0


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("status, code", [
    ("shipped", "already_shipped"), ("delivered", "already_delivered"),
    ("cancelled", "already_cancelled"),
])
def test_only_a_processing_order_can_change(client: BillingClient, engine: Any,
                                            billing_url: str, status: str, code: str):
    c = fresh_order(engine, status=status)
    cid, oid = c["cid"], c["oid"]
    before = client.get_order(cid, oid)
    for call in [lambda: client.cancel_order(cid, oid, reason="x", idempotency_key=new_key()),
                 lambda: client.change_shipping_address(cid, oid, ADDRESS,
                                                        idempotency_key=new_key())]:
        with pytest.raises(InvalidRequest) as refused:
            call()
        assert (refused.value.code, refused.value.status) == (code, 422)
    assert_error(api.post(order_url(billing_url, c, "cancel"), json={}, timeout=10,
                          headers={"Idempotency-Key": new_key()}), 422, code)
    assert client.get_order(cid, oid) == before
    assert payment_statuses(client, cid)[c["paid"]] == "succeeded"
    assert count(engine, m.Refund, m.Refund.customer_id == cid) == 0


def test_another_customers_order_is_not_found(client: BillingClient, engine: Any):
    mine, theirs = fresh_order(engine), fresh_order(engine)
    calls = [
        lambda: client.cancel_order(theirs["cid"], mine["oid"], reason=None,
                                    idempotency_key=new_key()),
        lambda: client.change_shipping_address(theirs["cid"], mine["oid"], ADDRESS,
                                               idempotency_key=new_key()),
        lambda: client.cancel_order("C-1001", mine["oid"], reason=None, idempotency_key=new_key()),
        lambda: client.cancel_order(mine["cid"], "0000000", reason=None, idempotency_key=new_key()),
        lambda: client.cancel_order("C-9999", mine["oid"], reason=None, idempotency_key=new_key()),
    ]
    for call in calls:
        with pytest.raises(NotFound) as error:
            call()
        assert error.value.code == "not_found"
    order = client.get_order(mine["cid"], mine["oid"])
    assert (order.status, order.shipping_address) == ("processing", "1 Old Street\nLeeds")
    assert count(engine, m.Refund, m.Refund.order_id == mine["oid"]) == 0


def test_bad_input_changes_nothing(engine: Any, billing_url: str, client: BillingClient):
    c = fresh_order(engine)
    address_url, cancel_url = order_url(billing_url, c, "shipping-address"), order_url(
        billing_url, c, "cancel")
    cases = [
        (address_url, {}, "missing_field"),
        (address_url, {"address": None}, "missing_field"),
        (address_url, {"address": "1 Street"}, "invalid_field"),  # 8 characters
        (address_url, {"address": "   9 Street  \n "}, "invalid_field"),  # short once trimmed
        (address_url, {"address": "x" * 501}, "invalid_field"),
        (address_url, {"address": f"{ADDRESS}\u0000"}, "invalid_field"),
        (address_url, {"address": 1234567890}, "invalid_field"),
        (address_url, {"address": ["1 Old Street", "Leeds"]}, "invalid_field"),
        (cancel_url, {"reason": "x" * 501}, "invalid_field"),
        (cancel_url, {"reason": "a\u0000b"}, "invalid_field"),
        (cancel_url, {"reason": 42}, "invalid_field"),
    ]
    put_or_post = {address_url: api.put, cancel_url: api.post}
    for url, body, code in cases:
        response = put_or_post[url](url, json=body, timeout=10,
                                    headers={"Idempotency-Key": new_key()})
        assert_error(response, 400, code)
    for url, send in put_or_post.items():
        assert_error(send(url, json={"address": ADDRESS}, timeout=10), 400,
                     "idempotency_key_required")
        assert_error(send(url, json={"address": ADDRESS}, timeout=10,
                          headers={"Idempotency-Key": "has space"}), 400, "invalid_idempotency_key")
        assert_error(send(url, data=b'{"address": ', timeout=10,
                          headers={"Idempotency-Key": new_key()}), 400, "malformed_json")
        assert_error(send(url, json=[ADDRESS], timeout=10,
                          headers={"Idempotency-Key": new_key()}), 400, "invalid_body")
        assert_error(send(url, data=b"x" * (65 * 1024), timeout=10,
                          headers={"Idempotency-Key": new_key()}), 413, "payload_too_large")
    order = client.get_order(c["cid"], c["oid"])
    assert (order.status, order.shipping_address) == ("processing", "1 Old Street\nLeeds")

    # a 400 decides nothing, so the same key works once the request is fixed
    key = new_key()
    assert_error(api.put(address_url, json={"address": "short"}, timeout=10,
                         headers={"Idempotency-Key": key}), 400, "invalid_field")
    assert client.change_shipping_address(c["cid"], c["oid"], ADDRESS,
                                          idempotency_key=key).shipping_address == ADDRESS


# --- concurrency -------------------------------------------------------------------------


def test_concurrent_cancellations_make_one_refund(any_billing_server: BillingServer):
    engine = m.make_engine(any_billing_server.db_url)
    try:
        clients = [BillingClient(any_billing_server.url, timeout=30, retries=0,
                                 api_key=ASSISTANT_KEY)
                   for _ in range(6)]
        c = fresh_order(engine)
        key = new_key()
        results = run_in_threads(6, lambda i: clients[i].cancel_order(
            c["cid"], c["oid"], reason="too slow", idempotency_key=key))
        assert all(isinstance(r, OrderCancellation) for r in results), results
        assert len(set(results)) == 1 and results[0].refund.amount == D("59.98")
        assert count(engine, m.Refund, m.Refund.order_id == c["oid"]) == 1

        # different keys: one cancels, the others find it already cancelled
        c = fresh_order(engine)
        results = run_in_threads(6, lambda i: clients[i].cancel_order(
            c["cid"], c["oid"], reason=None, idempotency_key=new_key()))
        assert sum(isinstance(r, OrderCancellation) for r in results) == 1, results
        assert all(isinstance(r, OrderCancellation) or r.code == "already_cancelled"
                   for r in results), results
        assert count(engine, m.Refund, m.Refund.order_id == c["oid"]) == 1

        # an address change racing a cancellation: either order of events, never both lost
        c = fresh_order(engine)
        results = run_in_threads(2, lambda i: clients[i].cancel_order(
            c["cid"], c["oid"], reason=None, idempotency_key=new_key()) if i == 0 else
            clients[i].change_shipping_address(c["cid"], c["oid"], ADDRESS,
                                               idempotency_key=new_key()))
        assert isinstance(results[0], OrderCancellation), results
        assert isinstance(results[1], Order) or results[1].code == "already_cancelled", results
    finally:
        engine.dispose()


# --- client parsing ----------------------------------------------------------------------


def test_client_parses_a_cancellation():
    order = {"id": "8000001", "customer_id": "C-1", "status": "cancelled", "carrier": None,
             "tracking_number": None, "eta": None, "shipping_address": "1 Old Street\nLeeds",
             "placed_at": "2026-01-01T10:00:00Z", "delivered_at": None, "total": "59.98",
             "currency": "USD", "items": [{"sku": "S", "name": "Socks", "qty": 2,
                                           "unit_price": "29.99"}]}
    refund = {"id": "R-000007", "customer_id": "C-1", "order_id": "8000001", "invoice_id": None,
              "payment_id": None, "amount": "59.98", "currency": "USD",
              "reason": "order cancelled", "status": "approved",
              "created_at": "2026-01-02T10:00:00Z"}
    parsed = _parse(_cancellation, {"order": order, "refund": refund}, "order cancellation")
    assert parsed.order.status == "cancelled" and parsed.order.items[0].qty == 2
    assert (parsed.refund.id, parsed.refund.amount) == ("R-000007", D("59.98"))
    assert _parse(_cancellation, {"order": order, "refund": None}, "x").refund is None
    for broken in [{"order": order}, {"refund": refund}, {"order": order, "refund": "R-000007"},
                   {"order": {**order, "total": 59.98}, "refund": None},
                   {"order": order, "refund": {**refund, "amount": None}}, ["order"]]:
        with pytest.raises(BackendUnavailable):
            _parse(_cancellation, broken, "order cancellation")
