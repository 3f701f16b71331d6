"""Contract tests of the Zendesk adapter. Zendesk's cloud cannot be reached from here, so the
adapter's real HTTP code runs against a LOCAL HTTP server (fake_zendesk.py) that answers with
response bodies written from Zendesk's documented response formats (fixtures/zendesk/): these
tests check what we send and how we read Zendesk's answers, not Zendesk itself."""
from __future__ import annotations

import base64

import pytest
from fake_zendesk import AGENT_ID, fixture
from ticket_backends import make_zendesk

from supportbot.errors import BackendUnavailable, Conflict, NotFound
from supportbot.ticketing.base import TicketQueue


@pytest.fixture
def zendesk(fake_zendesk, db_url):
    return make_zendesk(fake_zendesk.url, db_url)


def test_create_sends_the_documented_request_with_an_idempotency_key(zendesk, fake_zendesk, customer):
    ticket = zendesk.create_ticket(requester=customer, subject="Handoff H-1", body="transcript",
                                   tags=["handoff", "legal"], idempotency_key="turn-key-1")
    [post] = fake_zendesk.requests_to("POST", "/api/v2/tickets.json")
    assert post.headers["Idempotency-Key"] == "turn-key-1"
    assert post.body == {"ticket": {
        "subject": "Handoff H-1", "comment": {"body": "transcript"}, "tags": ["handoff", "legal"],
        "requester": {"email": customer, "name": customer}}}
    user, token = base64.b64decode(post.headers["Authorization"].split()[1]).decode().split(":")
    assert (user, token) == ("agent@example.com/token", "test-token")
    assert ticket.url == f"{fake_zendesk.url}/agent/tickets/{ticket.id}"


def test_a_routed_ticket_names_its_group_and_priority_and_a_move_only_its_group(zendesk, fake_zendesk, customer):
    ticket = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="routed",
                                   queue=TicketQueue("billing", "Billing", 360001), priority="high")
    [post] = fake_zendesk.requests_to("POST", "/api/v2/tickets.json")
    assert (post.body["ticket"]["group_id"], post.body["ticket"]["priority"]) == (360001, "high")
    zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="no-group",
                          queue=TicketQueue("orders", "Orders"), priority="low")
    assert "group_id" not in fake_zendesk.requests_to("POST", "/api/v2/tickets.json")[1].body["ticket"]
    zendesk.move_ticket(ticket.id, TicketQueue("orders", "Orders"))  # a team without a group: none
    [put] = fake_zendesk.requests_to("PUT", rf"/api/v2/tickets/{ticket.id}\.json")
    assert put.body == {"ticket": {"group_id": None}}
    assert fake_zendesk.tickets[int(ticket.id)]["group_id"] is None


def test_retried_create_is_answered_from_zendesks_idempotency_store(zendesk, fake_zendesk, customer):
    first = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="k")
    again = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="k")
    assert again.id == first.id and len(fake_zendesk.tickets) == 1
    assert len(fake_zendesk.requests_to("POST", "/api/v2/tickets.json")) == 2  # no ledger: Zendesk dedupes


def test_idempotency_key_with_another_body_is_a_conflict(zendesk, customer):
    zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="k")
    with pytest.raises(Conflict) as error:
        zendesk.create_ticket(requester=customer, subject="s", body="other", idempotency_key="k")
    assert error.value.code == "key_reused"


def test_create_is_retried_through_5xx_and_429_with_the_same_key(zendesk, fake_zendesk, customer):
    fake_zendesk.fail_next(503)
    fake_zendesk.fail_next(429, headers={"Retry-After": "0"}, body=fixture("error_rate_limited.json"))
    ticket = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="k")
    posts = fake_zendesk.requests_to("POST", "/api/v2/tickets.json")
    assert len(posts) == 3 and {p.headers["Idempotency-Key"] for p in posts} == {"k"}
    assert list(fake_zendesk.tickets) == [int(ticket.id)]


def test_persistent_5xx_and_429_become_unavailable(zendesk, fake_zendesk, customer):
    fake_zendesk.fail_next(500, times=3)
    with pytest.raises(BackendUnavailable) as error:
        zendesk.list_tickets(customer)
    assert error.value.code == "server_error" and error.value.status == 500
    assert len(fake_zendesk.seen) == 3  # one try and two retries
    fake_zendesk.fail_next(429, times=3, headers={"Retry-After": "0"}, body=fixture("error_rate_limited.json"))
    with pytest.raises(BackendUnavailable) as error:
        zendesk.get_ticket("35436", requester=customer)
    assert error.value.code == "rate_limited" and error.value.status == 429


def test_a_comment_is_never_retried_blindly(zendesk, fake_zendesk, customer):
    ticket = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="k")
    fake_zendesk.fail_next(503, method="PUT")
    with pytest.raises(BackendUnavailable):
        zendesk.add_comment(ticket.id, "more", requester=customer, idempotency_key="c")
    assert len(fake_zendesk.requests_to("PUT", r"/api/v2/tickets/\d+\.json")) == 1
    # Zendesk may have stored it: a prompt retry must not risk a second comment.
    with pytest.raises(Conflict):
        zendesk.add_comment(ticket.id, "more", requester=customer, idempotency_key="c")
    assert len(fake_zendesk.requests_to("PUT", r"/api/v2/tickets/\d+\.json")) == 1


def test_comment_is_authored_by_the_requester(zendesk, fake_zendesk, customer):
    ticket = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key="k")
    zendesk.add_comment(ticket.id, "more", requester=customer, idempotency_key="c")
    [put] = fake_zendesk.requests_to("PUT", r"/api/v2/tickets/\d+\.json")
    assert put.body["ticket"]["comment"] == {"body": "more", "public": True,
                                             "author_id": fake_zendesk.users[customer]["id"]}


def test_slow_zendesk_times_out(db_url, fake_zendesk, customer):
    fake_zendesk.stall = 1.0
    slow = make_zendesk(fake_zendesk.url, db_url, timeout=0.3, retries=0)
    with pytest.raises(BackendUnavailable) as error:
        slow.list_tickets(customer)
    assert error.value.code == "timeout"


def test_not_found_and_unexpected_bodies(zendesk, fake_zendesk, customer):
    with pytest.raises(NotFound):
        zendesk.get_ticket("424242", requester=customer)
    fake_zendesk.fail_next(200, times=3, body={"unexpected": True})
    with pytest.raises(BackendUnavailable):
        zendesk.get_ticket("424242", requester=customer)


def test_replies_are_public_agent_comments_but_the_bots_own_across_pages(zendesk, fake_zendesk, customer, key):
    ticket = zendesk.create_ticket(requester=customer, subject="Chat handoff H-1", body="transcript",
                                   idempotency_key=key())
    zendesk.add_comment(ticket.id, "from the chat", requester=customer, idempotency_key=key())
    tid = int(ticket.id)
    fake_zendesk.reply(tid, "Dana", "first answer")
    fake_zendesk.reply(tid, "Dana", "an internal note", public=False)
    fake_zendesk._comment(tid, "posted by the bot's own agent", AGENT_ID, True)
    fake_zendesk.users["cc@example.com"] = {**fixture("user.json"), "id": 555, "email": "cc@example.com"}
    fake_zendesk._comment(tid, "an end user in CC", 555, True)
    fake_zendesk.reply(tid, "Sam Agent", "second answer")
    fake_zendesk.comment_page_size = 2  # four pages of comments
    replies = zendesk.replies(ticket.id)
    assert [(r.author, r.text) for r in replies] == [("Dana", "first answer"), ("Sam Agent", "second answer")]
    pages = fake_zendesk.requests_to("GET", rf"/api/v2/tickets/{tid}/comments\.json")
    assert len(pages) == 4 and pages[0].query["include"] == ["users"] and pages[0].query["sort_order"] == ["asc"]
    assert zendesk.replies(ticket.id, after=replies[0].id) == replies[1:]
    assert len(fake_zendesk.requests_to("GET", "/api/v2/users/me.json")) == 1  # asked once


def test_replies_when_zendesk_answers_garbage_are_unavailable(zendesk, fake_zendesk, customer, key):
    ticket = zendesk.create_ticket(requester=customer, subject="s", body="b", idempotency_key=key())
    fake_zendesk.comments[int(ticket.id)].append({"id": "x", "author_id": AGENT_ID + 1, "public": True})
    fake_zendesk.users["a@support.example"] = {"id": AGENT_ID + 1, "role": "agent", "name": "A"}
    with pytest.raises(BackendUnavailable, match="unexpected comment"):
        zendesk.replies(ticket.id)
