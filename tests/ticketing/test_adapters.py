"""The same behaviour from every ticketing adapter: the embedded SQLite queue, a real Request
Tracker 5 server, and Zendesk (against the local fake of its API, fake_zendesk.py)."""
from __future__ import annotations

import datetime as dt

import pytest
import rt_server

from supportbot.errors import Conflict, Forbidden, InvalidRequest, NotFound
from supportbot.ticketing.base import TicketQueue
from supportbot.ticketing.rt import PRIORITY as RT_PRIORITY


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


def test_replies_are_the_agents_public_answers_in_order(backend, customer, key):
    ticket = backend.adapter.create_ticket(requester=customer, subject="Chat handoff H-5E1F0A2B",
                                           body="Transcript:\ncustomer: a person please", idempotency_key=key())
    backend.adapter.add_comment(ticket.id, "I'm still waiting", requester=customer, idempotency_key=key())
    assert backend.adapter.replies(ticket.id) == []  # the ticket's body and the customer's comment are ours
    backend.reply(ticket.id, "Hi, I'm looking into your order now.", True)
    backend.reply(ticket.id, "Internal: the courier lost it, refund approved.", False)
    backend.reply(ticket.id, "Good news: the refund is on its way.", True)
    replies = backend.adapter.replies(ticket.id)
    assert [r.text for r in replies] == ["Hi, I'm looking into your order now.",
                                         "Good news: the refund is on its way."]
    assert {r.author for r in replies} == {backend.agent}
    assert int(replies[0].id) < int(replies[1].id) and replies[0].at <= replies[1].at
    assert abs(replies[1].at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=2)
    assert backend.adapter.replies(ticket.id, after=replies[0].id) == replies[1:]
    assert backend.adapter.replies(ticket.id, after=replies[1].id) == []


def test_replies_refuse_bad_tickets_and_cursors(backend, customer, key):
    ticket = backend.adapter.create_ticket(requester=customer, subject="s", body="b", idempotency_key=key())
    with pytest.raises(NotFound):
        backend.adapter.replies("99999999")
    with pytest.raises(InvalidRequest, match="reply id is a number"):
        backend.adapter.replies(ticket.id, after="1; DROP TABLE")


TEAMS = {"billing": TicketQueue("billing", "Billing", 360001), "trust": TicketQueue("trust", "Trust", 360004)}


def placed(backend, request, ticket_id: str):
    """(the team queue, the priority) the backend shows the ticket in, in our words."""
    adapter = backend.adapter
    if adapter.name == "sqlite":
        return adapter.queue_of(ticket_id)
    if adapter.name == "rt":
        raw = adapter.api.request("GET", f"/ticket/{ticket_id}")
        queue = adapter.api.request("GET", f"/queue/{raw['Queue']['id']}")["Name"]
        team = next((t.team for t in TEAMS.values() if t.rt_queue == queue), queue)
        return team, {v: k for k, v in RT_PRIORITY.items()}[int(raw["Priority"])]
    raw = request.getfixturevalue("fake_zendesk").tickets[int(ticket_id)]
    return next(t.team for t in TEAMS.values() if t.zendesk_group == raw["group_id"]), raw["priority"]


def test_a_routed_ticket_is_in_its_teams_queue_with_its_priority_and_moves(backend, customer, key, request):
    if backend.adapter.name == "rt":
        rt_server.create_queues(backend.adapter.base_url, [t.rt_queue for t in TEAMS.values()])
    k = key()
    ticket = backend.adapter.create_ticket(requester=customer, subject="Chat handoff H-0A0B0C0D: legal", body="b",
                                           idempotency_key=k, queue=TEAMS["billing"], priority="urgent")
    assert placed(backend, request, ticket.id) == ("billing", "urgent")
    again = backend.adapter.create_ticket(requester=customer, subject="Chat handoff H-0A0B0C0D: legal", body="b",
                                          idempotency_key=k, queue=TEAMS["billing"], priority="urgent")
    assert again.id == ticket.id
    backend.adapter.move_ticket(ticket.id, TEAMS["trust"])
    backend.adapter.move_ticket(ticket.id, TEAMS["trust"])  # a retry: the same place
    assert placed(backend, request, ticket.id) == ("trust", "urgent")
    assert backend.adapter.get_ticket(ticket.id, requester=customer).id == ticket.id
    with pytest.raises(InvalidRequest, match="unknown priority 'asap'"):
        backend.adapter.create_ticket(requester=customer, subject="s", body="b", idempotency_key=key(),
                                      priority="asap")
    with pytest.raises(NotFound):
        backend.adapter.move_ticket("99999999", TEAMS["trust"])
