"""Newer billing features end to end: invoice documents, duplicate charges, disputes,
subscriptions, the card-update link and account mail -- and idempotency on every write.

Each test inserts its own customer straight into the server's database (`fresh_customer`), so
tests neither depend on nor disturb the seed data other suites rely on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from decimal import Decimal
from typing import Any, Dict
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from billing_api import ASSISTANT_KEY, api, assert_error, new_key, run_in_threads
from sqlalchemy import MetaData, String, Text, func, select
from sqlalchemy.orm import Session

from supportbot.billing import models as m
from supportbot.billing.links import DEV_LINK_SECRET, Links
from supportbot.clients.billing import (
    BillingClient,
    Dispute,
    DuplicateCharge,
    PlanChange,
    _parse,
    _subscription,
)
from supportbot.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound

pytestmark = pytest.mark.timeout(120)
D = Decimal
CARD = "4242424242424242"
BillingServer = Any  # conftest.BillingServer: url, db_url, log


def fresh_customer(engine: Any, locked: bool = False, renews_in: int = 15,
                   name: str = "Test Customer") -> Dict[str, str]:
    """A new customer with an invoice charged twice, a failed payment and a Plus subscription."""
    n = uuid.uuid4().hex[:8]
    cid, iid, sid = f"C-{n}", f"INV-T-{n}", f"S-{n}"
    now = m.utcnow() - dt.timedelta(hours=1)
    rows = [
        m.Customer(id=cid, name=name, email=f"{n}@example.com", locked=locked),
        m.Invoice(id=iid, customer_id=cid, amount=D("19.00"), currency="USD", status="paid",
                  issued_at=now),
        m.Payment(id=f"P-{n}1", customer_id=cid, invoice_id=iid, amount=D("19.00"),
                  currency="USD", status="succeeded", card_last4="4242", created_at=now),
        m.Payment(id=f"P-{n}2", customer_id=cid, invoice_id=iid, amount=D("19.00"),
                  currency="USD", status="succeeded", card_last4="4242",
                  created_at=now + dt.timedelta(seconds=40)),
        m.Payment(id=f"P-{n}3", customer_id=cid, invoice_id=iid, amount=D("19.00"),
                  currency="USD", status="failed", failure_reason="card_declined",
                  card_last4="0341", created_at=now + dt.timedelta(seconds=50)),
        m.Subscription(id=sid, customer_id=cid, plan_id="plus", status="active",
                       renews_at=m.utcnow().date() + dt.timedelta(days=renews_in),
                       started_at=now),
    ]
    with Session(engine) as session:
        for row in rows:
            session.add(row)
            session.flush()
        session.commit()
    return {"cid": cid, "iid": iid, "sid": sid, "email": f"{n}@example.com",
            "original": f"P-{n}1", "duplicate": f"P-{n}2", "failed": f"P-{n}3"}


def count(engine: Any, model: Any, *where: Any) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def outbox(engine: Any, to: str) -> list:
    with Session(engine) as session:
        return list(session.scalars(select(m.Outbox).where(m.Outbox.to_address == to)))


def post(url: str, key: str = "", **kwargs: Any) -> requests.Response:
    headers = {"Idempotency-Key": key or new_key()}
    return api.post(url, headers=headers, timeout=10, **kwargs)


# --- invoice documents -------------------------------------------------------------------


def test_invoice_document_link(client: BillingClient, engine: Any):
    invoice = client.get_invoice("C-1001", "INV-2026-00042")
    assert invoice.document_url and "/documents/invoices/INV-2026-00042?" in invoice.document_url
    assert all(i.document_url for i in client.list_invoices("C-1001"))
    page = requests.get(invoice.document_url, timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in ["Northwind Goods", "Alice Martin", "alice@example.com", "INV-2026-00042",
                 "Desk lamp", "49.99", "USD", "paid", "@media print"]:
        assert text in page.text
    subscription = requests.get(client.get_invoice("C-1001", "INV-2026-00043").document_url,
                                timeout=5)
    assert "Subscription" in subscription.text and "19.00" in subscription.text

    hostile = fresh_customer(engine, name='<script>alert("x")</script>')
    doc = requests.get(client.get_invoice(hostile["cid"], hostile["iid"]).document_url, timeout=5)
    assert "<script>" not in doc.text and "&lt;script&gt;" in doc.text


def test_invoice_document_signature_and_expiry(client: BillingClient, billing_url: str):
    url = client.get_invoice("C-1002", "INV-2026-00050").document_url
    query = parse_qs(urlsplit(url).query)
    expires, sig = query["expires"][0], query["sig"][0]
    base = f"{billing_url}/documents/invoices"
    flipped = sig[:-1] + ("1" if sig[-1] == "0" else "0")
    bad = [f"{base}/INV-2026-00050?expires={expires}&sig={flipped}",
           f"{base}/INV-2026-00050?expires={int(expires) + 1}&sig={sig}",
           f"{base}/INV-2026-00042?expires={expires}&sig={sig}",  # another invoice
           f"{base}/INV-2026-00050", f"{base}/INV-2026-00050?expires=abc&sig={sig}"]
    for link in bad:
        response = requests.get(link, timeout=5)
        assert response.status_code == 403 and "Bob Chen" not in response.text, link
    old = Links(DEV_LINK_SECRET.encode(), None).invoice_url(billing_url, "INV-2026-00050",
                                                             now=time.time() - 8 * 86400)
    expired = requests.get(old, timeout=5)
    assert expired.status_code == 410 and "text/html" in expired.headers["content-type"]


# --- duplicate charges and refunds of them -----------------------------------------------


def test_seeded_duplicate(client: BillingClient):
    found = client.find_duplicate_payments("C-1002")
    assert [(d.payment.id, d.original_payment_id) for d in found] == [("P-000014", "P-000013")]
    assert client.find_duplicate_payments("C-1001") == ()
    with pytest.raises(NotFound):
        client.find_duplicate_payments("C-9999")


def test_refund_a_duplicate_charge(client: BillingClient, engine: Any):
    c = fresh_customer(engine)
    cid = c["cid"]
    assert client.find_duplicate_payments(cid) == (
        DuplicateCharge(client.list_payments(cid)[1], c["original"]),)
    assert client.refund_quote(cid, payment_id=c["original"]).reason == "not_duplicate"
    with pytest.raises(InvalidRequest) as refused:
        client.create_refund(cid, payment_id=c["original"], amount="1", reason="x",
                             idempotency_key=new_key())
    assert refused.value.code == "not_duplicate"

    key = new_key()
    first = client.create_refund(cid, payment_id=c["duplicate"], amount="5", reason="twice",
                                 idempotency_key=key)
    again = client.create_refund(cid, payment_id=c["duplicate"], amount="5.00", reason="twice",
                                 idempotency_key=key)
    assert first == again and first.payment_id == c["duplicate"] and first.invoice_id is None
    assert count(engine, m.Refund, m.Refund.payment_id == c["duplicate"]) == 1
    quote = client.refund_quote(cid, payment_id=c["duplicate"])
    assert (quote.eligible, quote.max_refundable) == (True, D("14.00"))
    client.create_refund(cid, payment_id=c["duplicate"], amount="14.00", reason="rest",
                         idempotency_key=new_key())
    assert client.find_duplicate_payments(cid) == ()
    assert {p.id: p.status for p in client.list_payments(cid)}[c["duplicate"]] == "refunded"
    assert client.refund_quote(cid, payment_id=c["duplicate"]).reason == "already_refunded"
    with pytest.raises(NotFound):  # another customer's payment
        client.refund_quote("C-1001", payment_id=c["duplicate"])


# --- disputes ----------------------------------------------------------------------------


def test_disputes(client: BillingClient, engine: Any):
    c = fresh_customer(engine)
    key = new_key()
    dispute = client.create_dispute(c["cid"], payment_id=c["original"], reason="not mine",
                                    idempotency_key=key)
    assert (dispute.id[:2], dispute.amount, dispute.status) == ("D-", D("19.00"), "open")
    assert client.create_dispute(c["cid"], payment_id=c["original"], reason="not mine",
                                 idempotency_key=key) == dispute
    assert client.list_disputes(c["cid"]) == (dispute,)
    with pytest.raises(Conflict) as reused:
        client.create_dispute(c["cid"], payment_id=c["original"], reason="other",
                              idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"
    for payment_id, code in [(c["original"], "already_disputed"), (c["failed"], "not_disputable")]:
        with pytest.raises(InvalidRequest) as refused:
            client.create_dispute(c["cid"], payment_id=payment_id, reason="x",
                                  idempotency_key=new_key())
        assert refused.value.code == code
    with pytest.raises(NotFound):
        client.create_dispute("C-1001", payment_id=c["duplicate"], reason="x",
                              idempotency_key=new_key())
    assert client.list_disputes("C-1001") == ()


def test_concurrent_duplicates_make_one_row(any_billing_server: BillingServer):
    engine = m.make_engine(any_billing_server.db_url)
    try:
        c = fresh_customer(engine)
        clients = [BillingClient(any_billing_server.url, timeout=30, retries=0,
                                 api_key=ASSISTANT_KEY)
                   for _ in range(6)]
        key = new_key()
        disputes = run_in_threads(6, lambda i: clients[i].create_dispute(
            c["cid"], payment_id=c["original"], reason="fraud", idempotency_key=key))
        assert all(isinstance(d, Dispute) for d in disputes), disputes
        assert count(engine, m.Dispute, m.Dispute.customer_id == c["cid"]) == 1
        key = new_key()
        changes = run_in_threads(6, lambda i: clients[i].change_plan(
            c["cid"], c["sid"], "premium", idempotency_key=key))
        assert all(isinstance(r, PlanChange) for r in changes), changes
        assert len({r.invoice_id for r in changes}) == 1
        assert count(engine, m.Invoice, m.Invoice.customer_id == c["cid"]) == 2
        key = new_key()
        run_in_threads(6, lambda i: clients[i].request_password_reset(
            c["email"], idempotency_key=key))
        assert len(outbox(engine, c["email"])) == 1
    finally:
        engine.dispose()


# --- plans and subscriptions -------------------------------------------------------------


def test_plans_and_seeded_subscriptions(client: BillingClient):
    assert [(p.id, p.monthly_price) for p in client.list_plans()] == [
        ("basic", D("9.00")), ("plus", D("19.00")), ("premium", D("39.00"))]
    subs = client.list_subscriptions("C-1002")
    assert [s.id for s in subs] == ["S-1002", "S-1003"]
    assert subs[1].status == "cancelled" and subs[1].retention_offer is None
    assert subs[0].retention_offer.id == "half_price_3_months"
    with pytest.raises(NotFound):
        client.get_subscription("C-1001", "S-1002")


@pytest.mark.parametrize("renews_in, plan, expected", [
    (15, "premium", "10.00"), (15, "basic", "-5.00"), (7, "premium", "4.67"),
    (45, "premium", "20.00"), (-3, "premium", "0.00"),
])
def test_proration(client: BillingClient, engine: Any, renews_in: int, plan: str,
                   expected: str):
    c = fresh_customer(engine, renews_in=renews_in)
    preview = client.preview_plan_change(c["cid"], c["sid"], plan)
    assert (preview.from_plan, preview.to_plan, preview.amount_due) == ("plus", plan, D(expected))
    assert preview.effective_date == m.utcnow().date()
    assert preview.next_renewal_amount == {"premium": D("39.00"), "basic": D("9.00")}[plan]


def test_plan_change(client: BillingClient, engine: Any):
    c = fresh_customer(engine)
    cid, sid = c["cid"], c["sid"]
    down = client.change_plan(cid, sid, "basic", idempotency_key=new_key())
    assert (down.amount_due, down.invoice_id, down.subscription.plan_id) == (
        D("-5.00"), None, "basic")
    assert client.get_customer(cid).credit_balance == D("5.00")
    key = new_key()
    up = client.change_plan(cid, sid, "premium", idempotency_key=key)
    assert up.amount_due == D("15.00") and re.fullmatch(r"INV-\d{4}-\d{5}", up.invoice_id)
    assert client.change_plan(cid, sid, "premium", idempotency_key=key) == up
    invoice = client.get_invoice(cid, up.invoice_id)
    assert (invoice.status, invoice.amount) == ("open", D("15.00"))
    assert count(engine, m.Invoice, m.Invoice.customer_id == cid) == 2
    for plan, error, code in [("premium", InvalidRequest, "same_plan"),
                              ("gold", NotFound, "not_found")]:
        with pytest.raises(error) as refused:
            client.preview_plan_change(cid, sid, plan)
        assert refused.value.code == code
    with pytest.raises(NotFound):
        client.change_plan("C-1001", sid, "basic", idempotency_key=new_key())


def test_retention_offer_and_cancel(client: BillingClient, engine: Any, billing_url: str):
    c = fresh_customer(engine)
    cid, sid = c["cid"], c["sid"]
    renews_at = client.get_subscription(cid, sid).renews_at
    with pytest.raises(InvalidRequest) as wrong:
        client.accept_retention_offer(cid, sid, offer_id="free_forever",
                                      idempotency_key=new_key())
    assert wrong.value.code == "offer_unavailable"
    kept = client.accept_retention_offer(cid, sid, offer_id="half_price_3_months",
                                         idempotency_key=new_key())
    assert (kept.discount_percent, kept.discount_months, kept.retention_offer) == (50, 3, None)
    with pytest.raises(InvalidRequest) as used:
        client.accept_retention_offer(cid, sid, offer_id="half_price_3_months",
                                      idempotency_key=new_key())
    assert used.value.code == "offer_unavailable"

    key = new_key()
    cancelled = client.cancel_subscription(cid, sid, reason="too expensive", idempotency_key=key)
    assert (cancelled.status, cancelled.ends_at, cancelled.renews_at) == (
        "cancelled", renews_at, None)
    raw = post(f"{billing_url}/customers/{cid}/subscriptions/{sid}/cancel", key,
               json={"reason": "too expensive"})
    assert raw.status_code == 200 and raw.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(InvalidRequest) as again:
        client.cancel_subscription(cid, sid, reason=None, idempotency_key=new_key())
    assert again.value.code == "already_cancelled"
    with pytest.raises(InvalidRequest) as inactive:
        client.preview_plan_change(cid, sid, "basic")
    assert inactive.value.code == "not_active"
    with pytest.raises(NotFound):
        client.cancel_subscription("C-1001", "S-1002", reason=None, idempotency_key=new_key())
    assert client.get_subscription("C-1002", "S-1002").status == "active"


# --- the card-update link ----------------------------------------------------------------


def all_text(engine: Any) -> str:
    """Every text cell of every table, to prove what is (not) stored."""
    meta = MetaData()
    meta.reflect(bind=engine)
    cells = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
            for row in conn.execute(select(*columns)) if columns else []:
                cells.extend(str(value) for value in row)
    return "\n".join(cells)


def test_payment_method_link(client: BillingClient, engine: Any, billing_server: BillingServer):
    c = fresh_customer(engine)
    key = new_key()
    link = client.create_payment_method_link(c["cid"], idempotency_key=key)
    assert link.url.startswith(f"{billing_server.url}/pay/update?token=")
    assert dt.timedelta(minutes=29) < link.expires_at - dt.datetime.now(dt.timezone.utc) \
        <= dt.timedelta(minutes=30)
    replay = client.create_payment_method_link(c["cid"], idempotency_key=key)
    assert replay.expires_at == link.expires_at
    links = m.PaymentMethodLink.customer_id == c["cid"]
    assert count(engine, m.PaymentMethodLink, links) == 1
    assert requests.get(link.url, timeout=5).status_code == 403  # replaced by the replay's
    token = parse_qs(urlsplit(replay.url).query)["token"][0]
    form = requests.get(replay.url, timeout=5)
    assert form.status_code == 200 and "card_number" in form.text

    pay = f"{billing_server.url}/pay/update"
    bad = requests.post(pay, timeout=5, data={"token": token, "card_number": "4242424242424241",
                                              "exp_month": "12", "exp_year": "2035"})
    assert bad.status_code == 422 and "not valid" in bad.text
    expired = requests.post(pay, timeout=5, data={"token": token, "card_number": CARD,
                                                  "exp_month": "1", "exp_year": "2020"})
    assert expired.status_code == 422
    saved = requests.post(pay, timeout=5, data={"token": token, "card_number": CARD,
                                                "exp_month": "12", "exp_year": "2035"})
    assert saved.status_code == 200 and "4242" in saved.text and CARD not in saved.text
    with Session(engine) as session:
        card = session.scalars(select(m.PaymentMethod).where(
            m.PaymentMethod.customer_id == c["cid"])).one()
        assert (card.brand, card.last4, card.exp_year, card.is_default) == (
            "visa", "4242", 2035, True)
    assert requests.get(replay.url, timeout=5).status_code == 410
    again = requests.post(pay, timeout=5, data={"token": token, "card_number": CARD,
                                                "exp_month": "12", "exp_year": "2035"})
    assert again.status_code == 410
    assert requests.get(f"{pay}?token=nope", timeout=5).status_code == 403
    stored = all_text(engine) + billing_server.log.read_text(errors="replace")
    assert CARD not in stored and "4242424242424241" not in stored and token not in stored


def test_expired_payment_link(client: BillingClient, engine: Any):
    c = fresh_customer(engine)
    link = client.create_payment_method_link(c["cid"], idempotency_key=new_key())
    with Session(engine) as session:
        row = session.scalars(select(m.PaymentMethodLink).where(
            m.PaymentMethodLink.customer_id == c["cid"])).one()
        row.expires_at = m.utcnow() - dt.timedelta(minutes=1)
        session.commit()
    assert requests.get(link.url, timeout=5).status_code == 410


# --- account mail ------------------------------------------------------------------------


def link_in(body: str, path: str) -> str:
    found = re.search(r"(http://\S+" + re.escape(path) + r"\?token=[\w-]+)", body)
    assert found, body
    return found.group(1)


def test_password_reset(client: BillingClient, engine: Any, billing_url: str):
    c = fresh_customer(engine)
    key = new_key()
    client.request_password_reset(c["email"].upper(), idempotency_key=key)
    client.request_password_reset(c["email"].upper(), idempotency_key=key)
    [mail] = outbox(engine, c["email"])
    assert mail.kind == "password_reset" and link_in(mail.body, "/account/reset")
    assert count(engine, m.PasswordReset, m.PasswordReset.customer_id == c["cid"]) == 1
    nobody = "nobody-" + c["email"]
    client.request_password_reset(nobody, idempotency_key=new_key())  # same answer, no mail
    assert outbox(engine, nobody) == []
    with pytest.raises(Conflict):
        client.request_password_reset(nobody, idempotency_key=key)
    assert_error(post(f"{billing_url}/password-resets", json={"email": "no-at-sign"}),
                 400, "invalid_field")


def test_account_unlock(client: BillingClient, engine: Any):
    locked, unlocked = fresh_customer(engine, locked=True), fresh_customer(engine)
    assert client.get_customer(locked["cid"]).locked is True
    client.request_account_unlock(locked["email"], idempotency_key=new_key())
    client.request_account_unlock(unlocked["email"], idempotency_key=new_key())
    [unlock] = outbox(engine, locked["email"])
    [help_mail] = outbox(engine, unlocked["email"])
    assert (unlock.kind, help_mail.kind) == ("account_unlock", "sign_in_help")
    url = link_in(unlock.body, "/account/unlock")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and "unlocked" in page.text
    assert client.get_customer(locked["cid"]).locked is False
    assert requests.get(url, timeout=5).status_code == 410
    assert client.get_customer("C-1004").locked is True  # the seeded locked customer


def test_rename_and_email_change(client: BillingClient, engine: Any, billing_url: str):
    c = fresh_customer(engine)
    cid = c["cid"]
    assert client.update_customer_name(cid, "  Renée Zoë ", idempotency_key=new_key()).name \
        == "Renée Zoë"
    for name in ["", "x" * 201, "nul\u0000"]:
        response = api.patch(f"{billing_url}/customers/{cid}", json={"name": name},
                             headers={"Idempotency-Key": new_key()}, timeout=5)
        assert_error(response, 400, "invalid_field")
    with pytest.raises(NotFound):
        client.update_customer_name("C-9999", "x", idempotency_key=new_key())

    with pytest.raises(InvalidRequest) as same:
        client.request_email_change(cid, c["email"], idempotency_key=new_key())
    assert same.value.code == "same_email"
    with pytest.raises(Conflict) as taken:
        client.request_email_change(cid, "ALICE@example.com", idempotency_key=new_key())
    assert taken.value.code == "email_taken"
    new_email = "new-" + c["email"]
    key = new_key()
    client.request_email_change(cid, new_email, idempotency_key=key)
    client.request_email_change(cid, new_email, idempotency_key=key)
    [mail] = outbox(engine, new_email)
    assert mail.kind == "email_change"
    assert requests.get(link_in(mail.body, "/account/confirm-email"), timeout=5).ok
    assert client.get_customer(cid).email == new_email


# --- every write: key required, body validated -------------------------------------------

WRITES = [
    ("post", "/customers/C-1002/disputes", {"payment_id": "P-000011", "reason": "x"}),
    # an order that does not exist: input is checked first, and no seeded order can change
    ("post", "/customers/C-1002/orders/9999999/cancel", {"reason": "x"}),
    ("put", "/customers/C-1002/orders/9999999/shipping-address", {"address": "x"}),
    ("post", "/customers/C-1002/subscriptions/S-1002/cancel", {"reason": "x"}),
    ("post", "/customers/C-1002/subscriptions/S-1002/retention-offer", {"offer_id": "x"}),
    ("post", "/customers/C-1002/subscriptions/S-1002/plan-change", {"plan_id": "x"}),
    ("post", "/customers/C-1002/payment-method-links", {}),
    ("post", "/customers/C-1002/email-changes", {"new_email": "x@example.com"}),
    ("patch", "/customers/C-1002", {"name": "x"}),
    ("post", "/password-resets", {"email": "x@example.com"}),
    ("post", "/account-unlocks", {"email": "x@example.com"}),
]


@pytest.mark.parametrize("method, path, body", WRITES)
def test_every_write_needs_a_key_and_json(billing_url: str, method: str, path: str, body: dict):
    url = billing_url + path
    assert_error(api.request(method, url, json=body, timeout=5),
                 400, "idempotency_key_required")
    assert_error(api.request(method, url, data=b'{"x": ', timeout=5,
                             headers={"Idempotency-Key": new_key()}), 400, "malformed_json")


@pytest.mark.parametrize("method, path, body", [w for w in WRITES if w[2]])
def test_every_write_validates_fields(billing_url: str, method: str, path: str, body: dict):
    field = next(iter(body))
    for bad, code in [({}, "missing_field"), ({field: "x" * 1000}, "invalid_field"),
                      ({field: "a\u0000b"}, "invalid_field"), ({field: 42}, "invalid_field")]:
        if field == "reason" and code == "missing_field":
            continue  # a cancellation reason is optional
        response = api.request(method, billing_url + path, json=bad, timeout=5,
                               headers={"Idempotency-Key": new_key()})
        assert_error(response, 400, code)


def test_client_parsing_rejects_surprises():
    good = {"id": "S-1", "customer_id": "C-1", "plan_id": "plus", "plan_name": "Plus",
            "monthly_price": "19.00", "currency": "USD", "status": "active",
            "renews_at": "2026-05-01", "ends_at": None, "started_at": "2026-01-01T00:00:00Z",
            "discount_percent": 0, "discount_months": 0,
            "retention_offer": {"id": "o", "description": "d", "percent_off": 50, "months": 3}}
    sub = _parse(_subscription, good, "subscription")
    assert sub.renews_at == dt.date(2026, 5, 1) and sub.retention_offer.percent_off == 50
    for broken in [{**good, "discount_percent": "50"}, {**good, "renews_at": "soon"},
                   {k: v for k, v in good.items() if k != "plan_name"},
                   {**good, "retention_offer": {"id": "o"}}]:
        with pytest.raises(BackendUnavailable):
            _parse(_subscription, broken, "subscription")
