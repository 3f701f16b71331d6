"""The Request Tracker adapter against a real RT 5 server (rt_server.py): failures, timeouts,
and the idempotency ledger's crash window."""
from __future__ import annotations

import datetime as dt
import logging
import time

import pytest
import rt_server
from hung_server import HungServer
from ticket_backends import make_rt

from supportbot import processes
from supportbot.errors import BackendUnavailable, Conflict, Forbidden
from supportbot.ticketing.base import TicketQueue
from supportbot.ticketing.http import JsonApi
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


def test_replies_are_agents_correspondence_not_the_customers_mail(rt_url, db_url, customer, key):
    rt_server.add_agent(rt_url)
    adapter = make_rt(rt_url, db_url)
    ticket = adapter.create_ticket(requester=customer, subject="Chat handoff H-0BADCAFE", body="b",
                                   idempotency_key=key())
    dana = JsonApi("rt", rt_url + "/REST/2.0", auth=(rt_server.AGENT, rt_server.AGENT_PASSWORD))
    dana.request("POST", f"/ticket/{ticket.id}/correspond", body={  # RT's web editor sends HTML
        "Content": "<p>Hello from <b>Dana</b> &amp; team.</p><p>Line&nbsp;two</p>", "ContentType": "text/html"})
    rt_server.mail_from(rt_url, ticket.id, customer, "Thanks, that helps")
    history = adapter.api.request("GET", f"/ticket/{ticket.id}/history", params={"fields": "Type,Creator"})
    assert [i["Creator"]["id"] for i in history["items"] if i["Type"] == "Correspond"] == ["dana", customer]
    [reply] = adapter.replies(ticket.id)
    assert (reply.author, reply.text) == ("Dana", "Hello from Dana & team.\nLine two")


def test_a_team_queue_rt_lacks_means_rt_queue_and_a_warning_and_every_queue_is_read(rt_url, db_url, customer, key,
                                                                                     caplog):
    rt_server.create_queues(rt_url, ["Billing"])
    rt = make_rt(rt_url, db_url, queues=["Billing", "Legal"])  # no Legal queue in this RT
    since = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
    with caplog.at_level(logging.WARNING, logger="supportbot.ticketing.rt"):
        legal = rt.create_ticket(requester=customer, subject="Chat handoff H-0000000A: legal", body="b",
                                 idempotency_key=key(), queue=TicketQueue("trust", "Legal"), priority="high")
    assert "RT has no queue 'Legal' (team trust): the ticket goes to 'General'" in caplog.text
    billing = rt.create_ticket(requester=customer, subject="Chat handoff H-0000000B: refund_review", body="b",
                               idempotency_key=key(), queue=TicketQueue("billing", "Billing"), priority="low")
    queues = {t: rt.api.request("GET", f"/queue/{rt.api.request('GET', f'/ticket/{t}')['Queue']['id']}")["Name"]
              for t in (legal.id, billing.id)}
    assert queues == {legal.id: "General", billing.id: "Billing"}
    for ticket in (legal, billing):
        rt.set_status(ticket.id, "resolved")
    assert {legal.id, billing.id} <= {t.id for t in rt.resolved_since(since)}  # the learning loop reads both
