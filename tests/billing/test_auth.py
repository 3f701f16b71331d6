"""Who may call the billing service, and what an assistant may do on its own.

Every route of the app's own route table, except the public ones, must refuse a request
without a valid key; the refund and dispute auto-limits hold for an `assistant` key on every
refund path, while an `agent` key may go above them but not past the refund policy.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import yaml
from billing_api import AGENT_KEY, API_KEYS, ASSISTANT_KEY, Api, api, assert_error, new_key
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from supportbot.billing import models as m
from supportbot.billing.auth import ApiKeys, Caller, ConfigError
from supportbot.billing.limits import Limits
from supportbot.billing.service import OPENAPI_PATH, create_app
from supportbot.clients.billing import BillingClient, Dispute, OrderCancellation, Refund
from supportbot.errors import InvalidRequest, NeedsReview, Unauthorized

pytestmark = pytest.mark.timeout(120)
D = Decimal
REPO = Path(__file__).resolve().parents[2]

# Public on purpose; adding to this set is a security decision, so it is spelled out here.
PUBLIC_ROUTES = {("GET", "/health"), ("GET", "/openapi.yaml"), ("GET", "/metrics"),
                 ("GET", "/documents/invoices/<iid>"), ("GET", "/pay/update"),
                 ("POST", "/pay/update"), ("GET", "/account/unlock"),
                 ("GET", "/account/confirm-email")}
# Tables an unauthenticated request could otherwise have written to.
WRITTEN_TABLES = [m.IdempotencyKey, m.Refund, m.Dispute, m.Outbox, m.PaymentMethodLink,
                  m.AccountToken, m.PasswordReset, m.Invoice, m.VerifyCounter]


def routes() -> List[Tuple[str, str]]:
    """(method, path) of every route the service registers, parameters as `<name>`."""
    app = create_app("sqlite://", api_keys=ApiKeys.parse(API_KEYS), limits=Limits())
    found = set()
    for route in app.router.routes:
        path = "/" + re.sub(r"<(\w+)(:[^>]*)?>", r"<\1>", route.path)
        found.update((method, path) for method in route.methods)
        assert bool(getattr(route.ctx, "public", False)) == (
            all((method, path) in PUBLIC_ROUTES for method in route.methods)), path
    return sorted(found)


PROTECTED = [route for route in routes() if route not in PUBLIC_ROUTES]


def concrete(path: str, cid: str) -> str:
    return path.replace("<cid>", cid).replace("<oid>", "4817263").replace("<sid>", "S-1001") \
        .replace("<rid>", "R-000001").replace("<item_id>", "4817263").replace("<iid>", "x")


def table_counts(engine: Any) -> Dict[str, int]:
    with Session(engine) as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in WRITTEN_TABLES}


# --- authentication ----------------------------------------------------------------------


def test_the_public_routes_are_exactly_the_intended_ones():
    assert set(routes()) - set(PROTECTED) == PUBLIC_ROUTES
    assert len(PROTECTED) >= 28  # every JSON route of the API


def test_the_openapi_document_marks_the_same_routes_public():
    spec = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert spec["security"] == [{"apiKey": []}]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    documented = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            protected = op.get("security") != []
            documented[(method.upper(), re.sub(r"\{\w+\}", "<>", path))] = protected
            assert ("401" in op["responses"]) == protected, (method, path)
    served = {(method, re.sub(r"<\w+>", "<>", path)): (method, path) not in PUBLIC_ROUTES
              for method, path in routes()}
    assert documented == served  # True where a key is needed


BAD_AUTHORIZATION = {
    "none": None,
    "wrong key": f"Bearer {'x' * len(ASSISTANT_KEY)}",
    "key plus a character": f"Bearer {ASSISTANT_KEY}x",
    "key prefix": f"Bearer {ASSISTANT_KEY[:-1]}",
    "basic scheme": f"Basic {ASSISTANT_KEY}",
    "no scheme": ASSISTANT_KEY,
    "empty bearer": "Bearer ",
    "two tokens": f"Bearer {ASSISTANT_KEY} {AGENT_KEY}",
    "non-ascii": "Bearer clé-secrète-0123456789",
}


@pytest.mark.parametrize("method, path", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_protected_route_refuses_a_missing_or_wrong_key(billing_url: str, engine: Any,
                                                              method: str, path: str):
    before = table_counts(engine)
    answers = set()
    for cid in ("C-1001", "C-9999"):  # an existing and a missing customer: the same answer
        for name, value in BAD_AUTHORIZATION.items():
            headers = {"Idempotency-Key": new_key(), "X-Conversation-Id": "sweep"}
            if value is not None:
                headers["Authorization"] = value
            # A complete, valid-looking request: only the key is wrong.
            body = {"email": "alice@example.com", "order_id": "4817263", "amount": "1",
                    "reason": "x", "name": "x", "payment_id": "P-000001", "plan_id": "basic",
                    "offer_id": "half_price_3_months", "address": "1 Long Street, Leeds",
                    "new_email": "new@example.com"}
            response = requests.request(method, billing_url + concrete(path, cid), json=body,
                                        headers=headers, timeout=5)
            assert_error(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="billing"', name
            answers.add(response.text)
    assert len(answers) == 1  # nothing tells which key, route or customer it was
    assert table_counts(engine) == before


def test_public_routes_answer_without_a_key(billing_url: str, client: BillingClient):
    assert requests.get(f"{billing_url}/health", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{billing_url}/openapi.yaml", timeout=5).text.startswith("openapi:")
    document = requests.get(client.get_invoice("C-1001", "INV-2026-00042").document_url,
                            timeout=5)
    assert document.status_code == 200 and "INV-2026-00042" in document.text
    # The browser pages' own authorisation (a token or a signature) still decides.
    for response in [requests.get(f"{billing_url}/pay/update?token=nope", timeout=5),
                     requests.post(f"{billing_url}/pay/update", data={"token": "nope"}, timeout=5),
                     requests.get(f"{billing_url}/account/unlock?token=nope", timeout=5),
                     requests.get(f"{billing_url}/account/confirm-email?token=nope", timeout=5),
                     requests.get(f"{billing_url}/documents/invoices/INV-2026-00042?expires=1"
                                  "&sig=00", timeout=5)]:
        assert response.status_code == 403 and "text/html" in response.headers["Content-Type"]


def test_unknown_routes_are_not_found_with_or_without_a_key(billing_url: str):
    for send in (requests.get, api.get):
        assert_error(send(f"{billing_url}/admin", timeout=5), 404, "not_found")


def test_the_client_raises_unauthorized(billing_url: str):
    for client in [BillingClient(billing_url, retries=0),
                   BillingClient(billing_url, retries=0, api_key="not-a-configured-key-123")]:
        for call in [lambda c: c.get_customer("C-1001"), lambda c: c.get_customer("C-9999"),
                     lambda c: c.verify_customer("alice@example.com", "4817263"),
                     lambda c: c.create_refund("C-1002", order_id="5529002", amount="1",
                                               reason="x", idempotency_key=new_key())]:
            with pytest.raises(Unauthorized) as error:
                call(client)
            assert (error.value.status, error.value.code) == (401, "unauthorized")


def test_every_configured_key_works(billing_url: str):
    for key in re.findall(r":(test-[a-z]+-key-\d+)", API_KEYS):
        assert Api(key).get(f"{billing_url}/customers/C-1001", timeout=5).ok


# --- the assistant's auto-limits ---------------------------------------------------------


@pytest.fixture(scope="module")
def agent(billing_url: str) -> BillingClient:
    return BillingClient(billing_url, timeout=10, retries=0, api_key=AGENT_KEY)


def _order_id(session: Session) -> str:
    while True:  # 7 digits, clear of the seeded ranges and of test_orders' 8 million range
        oid = f"9{secrets.randbelow(10**6):06d}"
        if session.scalar(select(m.Order.id).where(m.Order.id == oid)) is None:
            return oid


def big_spender(engine: Any) -> Dict[str, str]:
    """A new customer with a delivered 500.00 order, a processing order paid 250.00, and a
    250.00 invoice charged twice (a duplicate), all paid by card."""
    n = uuid.uuid4().hex[:8]
    cid, iid, now = f"C-{n}", f"INV-L-{n}", m.utcnow() - dt.timedelta(hours=2)
    with Session(engine) as session:
        delivered, processing = _order_id(session), _order_id(session)
        rows = [
            m.Customer(id=cid, name="Big Spender", email=f"{n}@example.com"),
            m.Order(id=delivered, customer_id=cid, status="delivered", carrier="UPS",
                    tracking_number=f"1Z{n}", shipping_address="1 Long Street\nLeeds",
                    placed_at=now, delivered_at=now + dt.timedelta(hours=1), total=D("500.00"),
                    currency="USD"),
            m.Payment(id=f"P-{n}1", customer_id=cid, order_id=delivered, amount=D("500.00"),
                      currency="USD", status="succeeded", card_last4="4242", created_at=now),
            m.Order(id=processing, customer_id=cid, status="processing",
                    shipping_address="1 Long Street\nLeeds", placed_at=now, total=D("250.00"),
                    currency="USD"),
            m.Payment(id=f"P-{n}2", customer_id=cid, order_id=processing, amount=D("250.00"),
                      currency="USD", status="succeeded", card_last4="4242", created_at=now),
            m.Invoice(id=iid, customer_id=cid, amount=D("250.00"), currency="USD", status="paid",
                      issued_at=now),
            m.Payment(id=f"P-{n}3", customer_id=cid, invoice_id=iid, amount=D("250.00"),
                      currency="USD", status="succeeded", card_last4="4242", created_at=now),
            m.Payment(id=f"P-{n}4", customer_id=cid, invoice_id=iid, amount=D("250.00"),
                      currency="USD", status="succeeded", card_last4="4242",
                      created_at=now + dt.timedelta(seconds=40)),
        ]
        for row in rows:
            session.add(row)
            session.flush()
        session.commit()
    return {"cid": cid, "delivered": delivered, "processing": processing, "order_payment":
            f"P-{n}1", "processing_payment": f"P-{n}2", "duplicate": f"P-{n}4"}


def count(engine: Any, model: Any, *where: Any) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def assert_needs_review(error: pytest.ExceptionInfo) -> None:
    assert (error.value.status, error.value.code) == (403, "needs_review")
    assert "review" in error.value.message


def test_refund_above_the_limit_needs_an_agent(client: BillingClient, agent: BillingClient,
                                               engine: Any, billing_url: str):
    c = big_spender(engine)
    cid, oid, key = c["cid"], c["delivered"], new_key()
    with pytest.raises(NeedsReview) as refused:
        client.create_refund(cid, order_id=oid, amount="250.00", reason="broken",
                             idempotency_key=key)
    assert_needs_review(refused)
    assert count(engine, m.Refund, m.Refund.customer_id == cid) == 0
    assert count(engine, m.IdempotencyKey, m.IdempotencyKey.key == key) == 0
    assert client.refund_quote(cid, order_id=oid, amount="250").eligible  # policy allows it

    at_limit = client.create_refund(cid, order_id=oid, amount="200.00", reason="part",
                                    idempotency_key=(small_key := new_key()))
    assert at_limit.amount == D("200.00")  # "above the limit" means strictly above
    # The refused key decided nothing: an agent may take the same request over with it.
    taken_over = agent.create_refund(cid, order_id=oid, amount="250.00", reason="broken",
                                     idempotency_key=key)
    assert isinstance(taken_over, Refund) and taken_over.amount == D("250.00")

    # Replays return the original, whoever asks; nothing new is written.
    assert agent.create_refund(cid, order_id=oid, amount="250", reason="broken",
                               idempotency_key=key) == taken_over
    assert client.create_refund(cid, order_id=oid, amount="200", reason="part",
                                idempotency_key=small_key) == at_limit
    raw = api.post(f"{billing_url}/customers/{cid}/refunds", timeout=5,
                   headers={"Idempotency-Key": small_key},
                   json={"order_id": oid, "amount": "200.00", "reason": "part"})
    assert raw.status_code == 201 and raw.headers["Idempotent-Replayed"] == "true"
    assert raw.json()["id"] == at_limit.id
    assert count(engine, m.Refund, m.Refund.customer_id == cid) == 2

    # An agent is still held to what is left to refund.
    with pytest.raises(InvalidRequest) as too_much:
        agent.create_refund(cid, order_id=oid, amount="50.01", reason="more",
                            idempotency_key=new_key())
    assert too_much.value.code == "exceeds_refundable"


@pytest.mark.parametrize("amount", ["1.00", "250.00"])
def test_an_agent_is_held_to_the_refund_window(agent: BillingClient, amount: str):
    with pytest.raises(InvalidRequest) as refused:  # delivered 60 days ago, total 35.00
        agent.create_refund("C-1002", order_id="5529001", amount=amount, reason="late",
                            idempotency_key=new_key())
    assert refused.value.code == "outside_policy"  # the policy is checked before the amount


def test_policy_is_checked_before_the_limit(client: BillingClient, engine: Any):
    c = big_spender(engine)
    with pytest.raises(InvalidRequest) as refused:  # 600 > 500: no one may refund that
        client.create_refund(c["cid"], order_id=c["delivered"], amount="600", reason="x",
                             idempotency_key=new_key())
    assert refused.value.code == "exceeds_refundable"


def test_duplicate_charge_refund_above_the_limit(client: BillingClient, agent: BillingClient,
                                                  engine: Any):
    c = big_spender(engine)
    key = new_key()
    with pytest.raises(NeedsReview) as refused:
        client.create_refund(c["cid"], payment_id=c["duplicate"], amount="250.00",
                             reason="charged twice", idempotency_key=key)
    assert_needs_review(refused)
    assert count(engine, m.Refund, m.Refund.payment_id == c["duplicate"]) == 0
    refund = agent.create_refund(c["cid"], payment_id=c["duplicate"], amount="250.00",
                                 reason="charged twice", idempotency_key=key)
    assert refund.payment_id == c["duplicate"]
    assert {p.id: p.status for p in agent.list_payments(c["cid"])}[c["duplicate"]] == "refunded"


def test_cancellation_refund_above_the_limit(client: BillingClient, agent: BillingClient,
                                             engine: Any):
    c = big_spender(engine)
    cid, oid, key = c["cid"], c["processing"], new_key()
    with pytest.raises(NeedsReview) as refused:
        client.cancel_order(cid, oid, reason="too slow", idempotency_key=key)
    assert_needs_review(refused)
    assert client.get_order(cid, oid).status == "processing"  # nothing changed
    assert {p.id: p.status for p in client.list_payments(cid)}[c["processing_payment"]] == \
        "succeeded"
    assert count(engine, m.Refund, m.Refund.order_id == oid) == 0
    cancelled = agent.cancel_order(cid, oid, reason="too slow", idempotency_key=key)
    assert isinstance(cancelled, OrderCancellation)
    assert (cancelled.order.status, cancelled.refund.amount) == ("cancelled", D("250.00"))
    assert agent.cancel_order(cid, oid, reason="too slow", idempotency_key=key) == cancelled


def test_dispute_above_the_limit(client: BillingClient, agent: BillingClient, engine: Any):
    c = big_spender(engine)
    key = new_key()
    with pytest.raises(NeedsReview) as refused:  # a 500.00 payment
        client.create_dispute(c["cid"], payment_id=c["order_payment"], reason="not mine",
                              idempotency_key=key)
    assert_needs_review(refused)
    assert count(engine, m.Dispute, m.Dispute.customer_id == c["cid"]) == 0
    dispute = agent.create_dispute(c["cid"], payment_id=c["order_payment"], reason="not mine",
                                   idempotency_key=key)
    assert isinstance(dispute, Dispute) and dispute.amount == D("500.00")
    assert agent.create_dispute(c["cid"], payment_id=c["order_payment"], reason="not mine",
                                idempotency_key=key) == dispute


# --- configuration -----------------------------------------------------------------------


def test_api_keys_identify_their_caller():
    keys = ApiKeys.parse(f" assistant:assistant:{ASSISTANT_KEY} , helpdesk:agent:{AGENT_KEY},"
                         " tools:agent:with:colons:0123456789 ,")
    assert keys.identify(ASSISTANT_KEY.encode()) == Caller("assistant", "assistant")
    assert keys.identify(AGENT_KEY.encode()) == Caller("helpdesk", "agent")
    assert keys.identify(b"with:colons:0123456789") == Caller("tools", "agent")
    for wrong in [b"", ASSISTANT_KEY[:-1].encode(), (ASSISTANT_KEY + " ").encode(),
                  "clé".encode()]:
        assert keys.identify(wrong) is None
    assert ASSISTANT_KEY not in repr(keys)
    assert Caller("a", "assistant").within_auto_limits
    assert not Caller("h", "agent").within_auto_limits


@pytest.mark.parametrize("spec, complaint", [
    ("", "not set"),
    ("  ,  ", "holds no keys"),
    ("assistant:assistant", "client:role:key"),
    ("assistant:admin:0123456789abcdef", "role 'admin'"),
    ("assistant:assistant:short", "at least 16"),
    ("assistant:assistant:has space 0123456789", "at least 16"),
    ("bad name:assistant:0123456789abcdef", "client names"),
    ("a:assistant:0123456789abcdef,a:agent:fedcba9876543210", "listed twice"),
    ("a:assistant:0123456789abcdef,b:agent:0123456789abcdef", "share one key"),
])
def test_bad_key_settings_are_refused(spec: str, complaint: str):
    with pytest.raises(ConfigError, match=complaint):
        ApiKeys.from_env({"BILLING_API_KEYS": spec})


def test_limit_settings():
    defaults = Limits.from_env({})
    assert (defaults.refund_auto_limit, defaults.dispute_auto_limit) == (D("200"), D("100"))
    assert (defaults.verify_max_failures, defaults.verify_window.total_seconds(),
            defaults.verify_max_failures_per_client) == (5, 900, 50)
    assert Limits.from_env({"BILLING_VERIFY_MAX_FAILURES": "3"}).verify_max_failures_per_client \
        == 30
    for name, value in [("BILLING_REFUND_AUTO_LIMIT", "-1"), ("BILLING_REFUND_AUTO_LIMIT", "abc"),
                        ("BILLING_DISPUTE_AUTO_LIMIT", "NaN"), ("BILLING_VERIFY_MAX_FAILURES", "0"),
                        ("BILLING_VERIFY_WINDOW_SECONDS", "1.5")]:
        with pytest.raises(ConfigError, match=name):
            Limits.from_env({name: value})


def test_create_app_without_keys_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BILLING_API_KEYS", raising=False)
    with pytest.raises(ConfigError, match="BILLING_API_KEYS is not set"):
        create_app("sqlite://")


@pytest.fixture
def env_without_keys() -> Iterator[Dict[str, str]]:
    yield {name: value for name, value in os.environ.items() if name != "BILLING_API_KEYS"}


@pytest.mark.parametrize("keys, message", [
    (None, "BILLING_API_KEYS is not set"),
    ("assistant:root:0123456789abcdef", "BILLING_API_KEYS: client 'assistant' has role 'root'"),
])
def test_the_service_does_not_start_without_valid_keys(tmp_path: Path, env_without_keys: dict,
                                                       keys: Any, message: str):
    env = dict(env_without_keys, **({"BILLING_API_KEYS": keys} if keys else {}))
    db = tmp_path / "billing.db"
    done = subprocess.run([sys.executable, "-m", "supportbot.billing", "--db", f"sqlite:///{db}",
                           "--port", "9"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert f"billing service not started: {message}" in done.stderr
    assert not db.exists()  # refused before touching the database
