"""The same behaviour from every ticketing adapter: the embedded SQLite queue, a real Request
Tracker 5 server, and Zendesk (against the local fake of its API, fake_zendesk.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from supportbot.errors import Conflict, Forbidden, NotFound


def test_create_get_and_list(backend, customer, key):
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    ticket = backend.adapter.create_ticket(requester=customer.upper(), subject="Handoff H-1234ABCD",
                                           body="Transcript:\ncustomer: hi", tags=["handoff"],
                                           idempotency_key=key())
    assert ticket.id.isdigit() and ticket.subject == "Handoff H-1234ABCD"
    assert ticket.requester == customer and ticket.status == "new"
    assert before <= ticket.created <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    assert backend.adapter.get_ticket(ticket.id, requester=customer) == ticket
    assert backend.adapter.list_tickets(customer) == [ticket]
    if backend.adapter.name != "sqlite":
        assert ticket.url and ticket.id in ticket.url


def test_status_changes_are_visible(backend, customer, key):
    ticket = backend.adapter.create_ticket(requester=customer, subject="s", body="b", idempotency_key=key())
    done = "solved" if backend.adapter.name == "zendesk" else "resolved"
    backend.set_status(ticket.id, done)
    assert backend.adapter.get_ticket(ticket.id, requester=customer).status == done
    assert [t.status for t in backend.adapter.list_tickets(customer)] == [done]


def test_retried_create_makes_one_ticket(backend, customer, key):
    k = key()
    first = backend.adapter.create_ticket(requester=customer, subject="once", body="b", idempotency_key=k)
    again = backend.adapter.create_ticket(requester=customer, subject="once", body="b", idempotency_key=k)
    assert again.id == first.id
    assert [t.id for t in backend.adapter.list_tickets(customer)] == [first.id]


def test_key_reused_for_another_ticket_is_a_conflict(backend, customer, key):
    k = key()
    backend.adapter.create_ticket(requester=customer, subject="one", body="b", idempotency_key=k)
    with pytest.raises(Conflict) as error:
        backend.adapter.create_ticket(requester=customer, subject="two", body="b", idempotency_key=k)
    assert error.value.code == "key_reused"
    assert len(backend.adapter.list_tickets(customer)) == 1


def test_comment_is_added_once_per_key(backend, customer, key):
    ticket = backend.adapter.create_ticket(requester=customer, subject="s", body="b", idempotency_key=key())
    k = key()
    backend.adapter.add_comment(ticket.id, "more details", requester=customer, idempotency_key=k)
    backend.adapter.add_comment(ticket.id, "more details", requester=customer, idempotency_key=k)
    backend.adapter.add_comment(ticket.id, "and another", requester=customer, idempotency_key=key())
    assert backend.comments(ticket.id) == 2


def test_customers_only_see_their_own_tickets(backend, customer, key):
    other = "other-" + customer
    mine = backend.adapter.create_ticket(requester=customer, subject="mine", body="b", idempotency_key=key())
    theirs = backend.adapter.create_ticket(requester=other, subject="theirs", body="b", idempotency_key=key())
    assert [t.id for t in backend.adapter.list_tickets(customer)] == [mine.id]
    assert [t.id for t in backend.adapter.list_tickets(other)] == [theirs.id]
    with pytest.raises(Forbidden) as error:
        backend.adapter.get_ticket(theirs.id, requester=customer)
    assert error.value.code == "not_yours"
    with pytest.raises(Forbidden):
        backend.adapter.add_comment(theirs.id, "hi", requester=customer, idempotency_key=key())
    assert backend.adapter.list_tickets("nobody-" + customer) == []


@pytest.mark.parametrize("ticket_id", ["99999999", "abc", "1/../2"])
def test_unknown_ticket_is_not_found(backend, customer, ticket_id):
    with pytest.raises(NotFound):
        backend.adapter.get_ticket(ticket_id, requester=customer)
