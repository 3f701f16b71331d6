"""The verification rate limit: failed `/customers/verify` attempts are counted per
conversation, per customer (or unknown email) and per client, in the database.

These tests verify as the `limits` and `sweeper` clients (billing_api.API_KEYS), so their failures
never lock the `assistant` client that the other billing tests use. Each uses fresh
conversation ids and customers of its own.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import requests
from billing_api import (
    ASSISTANT_KEY,
    LIMITS_KEY,
    SWEEPER_KEY,
    Api,
    assert_error,
    billing_process,
    run_in_threads,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from supportbot import processes
from supportbot.billing import models as m
from supportbot.billing.limits import Limits, verify_scopes
from supportbot.clients.billing import BillingClient, Customer
from supportbot.errors import NotFound, RateLimited

pytestmark = pytest.mark.timeout(120)
WINDOW = 900
limits_api = Api(LIMITS_KEY)


def conversation() -> str:
    return f"conv-{uuid.uuid4().hex[:12]}"


def nobody() -> str:
    return f"nobody-{uuid.uuid4().hex[:12]}@example.com"


def fresh_person(engine: Any) -> Dict[str, str]:
    """A new customer with one order: the right details for a verification."""
    n = uuid.uuid4().hex[:8]
    with Session(engine) as session:
        while True:  # 7 digits, clear of the seeded ranges and of other tests' 8/9 millions
            oid = f"3{secrets.randbelow(10**6):06d}"
            if session.scalar(select(m.Order.id).where(m.Order.id == oid)) is None:
                break
        session.add(m.Customer(id=f"C-{n}", name="Verify Tester", email=f"{n}@example.com"))
        session.flush()
        session.add(m.Order(id=oid, customer_id=f"C-{n}", status="processing", total=1,
                            shipping_address="1 Test Street\nLeeds", currency="USD",
                            placed_at=m.utcnow()))
        session.commit()
    return {"cid": f"C-{n}", "email": f"{n}@example.com", "order_id": oid}


def verify(url: str, email: str, order_id: str, conversation_id: Optional[str] = None,
           api: Api = limits_api) -> requests.Response:
    headers = {"X-Conversation-Id": conversation_id} if conversation_id else {}
    return api.post(f"{url}/customers/verify", json={"email": email, "order_id": order_id},
                    headers=headers, timeout=10)


def assert_locked(response: requests.Response) -> int:
    assert_error(response, 429, "too_many_attempts")
    seconds = int(response.headers["Retry-After"])
    assert 0 < seconds <= WINDOW
    return seconds


def end_window(engine: Any, client: str, conversation_id: str) -> None:
    """Move a conversation's window into the past, as if 15 minutes had gone by."""
    [*_, scope] = verify_scopes(Limits(), client, "-", conversation_id)
    with Session(engine) as session:
        session.execute(update(m.VerifyCounter).where(m.VerifyCounter.scope == scope.key)
                        .values(window_start=m.VerifyCounter.window_start
                                - dt.timedelta(seconds=WINDOW)))
        session.commit()


def test_lockout_per_conversation(billing_url: str, engine: Any):
    person, chat = fresh_person(engine), conversation()
    for _ in range(5):  # a different unknown email each time: only the conversation fills up
        assert_error(verify(billing_url, nobody(), person["order_id"], chat), 404, "not_found")
    assert_locked(verify(billing_url, nobody(), person["order_id"], chat))
    # Locked means locked: the right details are refused too, in this conversation only.
    assert_locked(verify(billing_url, person["email"], person["order_id"], chat))
    assert verify(billing_url, person["email"], person["order_id"], conversation()).ok
    assert verify(billing_url, person["email"], person["order_id"]).ok

    end_window(engine, "limits", chat)
    assert verify(billing_url, person["email"], person["order_id"], chat).json()["id"] == \
        person["cid"]


def test_lockout_per_customer(billing_url: str, engine: Any):
    person, other = fresh_person(engine), fresh_person(engine)
    for wrong in ("4817263", "5529001", "9999999", other["order_id"], "0000001"):
        response = verify(billing_url, person["email"], wrong, conversation())  # a new chat each
        assert_error(response, 404, "not_found")
    chat = conversation()
    seconds = assert_locked(verify(billing_url, person["email"], person["order_id"], chat))
    assert seconds > WINDOW - 60
    client = BillingClient(billing_url, retries=0, api_key=LIMITS_KEY)
    with pytest.raises(RateLimited) as error:
        client.verify_customer(person["email"].upper(), person["order_id"],
                               conversation_id=conversation())
    assert (error.value.status, error.value.code) == (429, "too_many_attempts")
    assert 0 < error.value.retry_after <= WINDOW
    # Another customer in the same conversation is not affected.
    assert client.verify_customer(other["email"], other["order_id"],
                                  conversation_id=chat).id == other["cid"]


def test_an_unknown_email_locks_like_a_known_one(billing_url: str, engine: Any):
    """Otherwise a 429 after five failures would tell that an account exists."""
    email, order_id = nobody(), fresh_person(engine)["order_id"]
    for _ in range(5):
        assert_error(verify(billing_url, email, order_id, conversation()), 404, "not_found")
    assert_locked(verify(billing_url, email.upper(), order_id, conversation()))


def test_lockout_per_client(billing_url: str, engine: Any):
    """One client cannot sweep emails: 10x the conversation cap, then every attempt waits."""
    person, sweeper = fresh_person(engine), Api(SWEEPER_KEY)
    for _ in range(50):
        response = verify(billing_url, nobody(), "4817263", conversation(), api=sweeper)
        assert_error(response, 404, "not_found")
    assert_locked(verify(billing_url, nobody(), "4817263", conversation(), api=sweeper))
    assert_locked(verify(billing_url, person["email"], person["order_id"], conversation(),
                         api=sweeper))
    assert verify(billing_url, person["email"], person["order_id"], conversation()).ok
    assert verify(billing_url, person["email"], person["order_id"], conversation(),
                  api=Api(ASSISTANT_KEY)).ok


def test_concurrent_failures_never_pass_the_cap(any_billing_server: Any):
    url, chat = any_billing_server.url, conversation()
    clients = [BillingClient(url, timeout=30, retries=0, api_key=LIMITS_KEY) for _ in range(15)]
    results = run_in_threads(15, lambda i: clients[i].verify_customer(
        nobody(), "4817263", conversation_id=chat))
    assert sum(isinstance(r, NotFound) for r in results) == 5, results
    assert sum(isinstance(r, RateLimited) for r in results) == 10, results


def test_refused_requests_are_not_counted(billing_url: str, engine: Any):
    person, chat = fresh_person(engine), conversation()
    headers = {"X-Conversation-Id": chat}
    for _ in range(6):
        response = limits_api.post(f"{billing_url}/customers/verify", headers=headers, timeout=5,
                                   json={"email": person["email"]})
        assert_error(response, 400, "missing_field")
        response = requests.post(f"{billing_url}/customers/verify", headers=headers, timeout=5,
                                 json={"email": nobody(), "order_id": person["order_id"]})
        assert_error(response, 401, "unauthorized")
    assert verify(billing_url, person["email"], person["order_id"], chat).ok
    assert_error(verify(billing_url, person["email"], person["order_id"], "c" * 256), 400,
                 "invalid_conversation_id")


def test_counters_survive_a_restart(tmp_path: Path):
    db_url, chat = f"sqlite:///{tmp_path / 'billing.db'}", conversation()
    with processes.running([billing_process(db_url, tmp_path)], timeout=60) as [server]:
        for _ in range(5):
            assert_error(verify(server.url, nobody(), "4817263", chat), 404, "not_found")
    with processes.running([billing_process(db_url, tmp_path, reset=False)],
                           timeout=60) as [server]:
        assert_locked(verify(server.url, "alice@example.com", "4817263", chat))
        alice = BillingClient(server.url, retries=0, api_key=LIMITS_KEY).verify_customer(
            "alice@example.com", "4817263", conversation_id=conversation())
        assert isinstance(alice, Customer) and alice.id == "C-1001"
