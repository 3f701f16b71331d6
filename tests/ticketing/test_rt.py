"""The Request Tracker adapter against a real RT 5 server (rt_server.py): failures, timeouts,
and the idempotency ledger's crash window."""
from __future__ import annotations

import time

import pytest
from hung_server import HungServer
from ticket_backends import make_rt

from supportbot import processes
from supportbot.errors import BackendUnavailable, Conflict, Forbidden
from supportbot.ticketing.ledger import KeyLedger
from supportbot.ticketing.rt import RtTicketing


def test_rt_down_is_unavailable_and_a_later_retry_creates_the_ticket(rt_url, db_url, customer, key):
    down = make_rt(f"http://127.0.0.1:{processes.free_port()}", db_url, retries=1)
    k = key()
    with pytest.raises(BackendUnavailable) as error:
        down.create_ticket(requester=customer, subject="s", body="b", idempotency_key=k)
    assert error.value.code == "unreachable"
    with pytest.raises(BackendUnavailable):
        down.list_tickets(customer)
    # Refused means never sent: the claim was released, so the retry on a live RT just creates.
    ticket = make_rt(rt_url, db_url).create_ticket(requester=customer, subject="s", body="b", idempotency_key=k)
    assert ticket.requester == customer


def test_slow_rt_times_out_and_a_create_is_not_retried(db_url, customer, key):
    hung = HungServer()
    try:
        slow = make_rt(hung.url, db_url, timeout=0.5, retries=2)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as error:
            slow.get_ticket("1", requester=customer)
        assert error.value.code == "timeout"
        assert len(hung.connections) == 3  # a GET is retried
        assert time.monotonic() - started < 5
        with pytest.raises(BackendUnavailable) as error:
            slow.create_ticket(requester=customer, subject="s", body="b", idempotency_key=key())
        assert error.value.code == "timeout"
        assert len(hung.connections) == 4  # the POST went once
    finally:
        hung.close()


def test_crash_between_rt_create_and_our_record_still_makes_one_ticket(rt_url, db_url, customer, key,
                                                                         monkeypatch):
    rt = make_rt(rt_url, db_url)
    k = key()

    def crash(*args):
        raise RuntimeError("action server died here")

    with monkeypatch.context() as patch:
        patch.setattr(KeyLedger, "_complete", crash)
        with pytest.raises(RuntimeError):
            rt.create_ticket(requester=customer, subject="Handoff H-CRASH", body="b", idempotency_key=k)
    [created] = rt.list_tickets(customer)  # RT made it; we never recorded its id
    again = rt.create_ticket(requester=customer, subject="Handoff H-CRASH", body="b", idempotency_key=k)
    assert again.id == created.id
    assert [t.id for t in rt.list_tickets(customer)] == [created.id]


def test_unknown_outcome_is_a_conflict_until_the_claim_is_stale(rt_url, db_url, customer, key, monkeypatch):
    k = key()
    rt = make_rt(rt_url, db_url, stale_after=1.0)

    def lost(*args, **kwargs):  # RT never got the POST, but we cannot know that
        raise BackendUnavailable("timed out", code="timeout")

    with monkeypatch.context() as patch:
        patch.setattr(rt.api, "request", lost)
        with pytest.raises(BackendUnavailable):
            rt.create_ticket(requester=customer, subject="s", body="b", idempotency_key=k)
    with pytest.raises(Conflict) as error:
        rt.create_ticket(requester=customer, subject="s", body="b", idempotency_key=k)
    assert error.value.code == "in_progress"
    assert rt.list_tickets(customer) == []
    time.sleep(1.1)
    ticket = rt.create_ticket(requester=customer, subject="s", body="b", idempotency_key=k)
    assert [t.id for t in rt.list_tickets(customer)] == [ticket.id]


def test_wrong_password_is_forbidden(rt_url, db_url, customer):
    bad = RtTicketing(rt_url, "root", "wrong", KeyLedger(db_url))
    with pytest.raises(Forbidden):
        bad.list_tickets(customer)
