"""Agents' replies on a handoff's ticket into the chat (supportbot/handoff/ticket_replies.py), with
the embedded queue and the store on SQLite: what is stored, once, in whose name, for which
handoffs, and a backend that is down. The whole path through real servers and RT is
tests/e2e/test_ticket_replies.py."""
from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import List

import pytest
import sqlalchemy

from supportbot.handoff import messages
from supportbot.handoff.claims import MAX_TEXT, Claims
from supportbot.handoff.ticket_replies import TicketReplies, chat_text, display_name
from supportbot.store import HandoffStore
from supportbot.ticketing.rt import RtTicketing
from supportbot.ticketing.sql import SqlTicketing

ENV = {"SUPPORTBOT_TICKET_REPLIES_SECONDS": "0.05", "SUPPORTBOT_TICKET_REPLIES_HOURS": "24"}


@pytest.fixture
def claims(tmp_path) -> Claims:
    return Claims(HandoffStore(f"sqlite:///{tmp_path / 'store.db'}"))


@pytest.fixture
def queue(tmp_path) -> SqlTicketing:
    return SqlTicketing(f"sqlite:///{tmp_path / 'tickets.db'}")


@pytest.fixture
def bridge(claims, queue) -> TicketReplies:
    return TicketReplies(claims, queue, ENV)


def handoff(claims: Claims, queue: SqlTicketing, with_ticket: bool = True):
    conversation = f"c-{uuid.uuid4().hex}"
    record = claims.store.record(conversation_id=conversation, idempotency_key=conversation,
                                 reason="customer_request", customer_id=None, context={"transcript": []})
    if with_ticket:
        ticket = queue.create_ticket(requester="chat-1@anonymous.invalid", body="transcript",
                                     subject=f"Chat handoff {record.reference}", idempotency_key=conversation)
        claims.store.set_ticket(record.id, ticket.id)
    return claims.get(record.id)


def reply(queue: SqlTicketing, ticket_id: str, text: str, author: str = "Dana", public: bool = True) -> None:
    queue.reply(ticket_id, author, text, public=public, idempotency_key=uuid.uuid4().hex)


def said(claims: Claims, conversation_id: str):
    return [(m.kind, m.agent, m.text) for m in claims.messages(conversation_id)]


def test_a_reply_on_a_waiting_handoff_is_its_author_joining_and_is_stored_once(bridge, claims, queue):
    waiting = handoff(claims, queue)
    reply(queue, waiting.ticket_id, "Hi, Dana here. Your card 4111 1111 1111 1111 is fine.")
    reply(queue, waiting.ticket_id, "internal: call the courier", public=False)
    assert bridge.tick() == [waiting.conversation_id]
    assert said(claims, waiting.conversation_id) == [
        (messages.JOINED, "Dana", "Dana from support joined the chat."),
        (messages.AGENT, "Dana", "Hi, Dana here. Your card [card number ending 1111] is fine.")]
    after = claims.get(waiting.id)
    assert (after.status, after.claimed_by) == ("claimed", "Dana")
    # Read again, by this bridge or another (a restart, a second Rasa server): nothing new.
    assert bridge.tick() == [] and TicketReplies(claims, queue, ENV).tick() == []
    reply(queue, waiting.ticket_id, "Anything else?")
    assert bridge.tick() == [waiting.conversation_id]
    assert [text for _, _, text in said(claims, waiting.conversation_id)][-1] == "Anything else?"
    assert len(claims.messages(waiting.conversation_id)) == 3


def test_a_reply_reaches_a_handoff_someone_else_claimed_and_one_ended_lately(bridge, claims, queue):
    claimed, ended, long_ago, no_ticket = (handoff(claims, queue, n < 3) for n in range(4))
    claims.claim(claimed.id, "Sam")
    claims.claim(ended.id, "Sam")
    claims.finish(ended.id, "Sam", "handed_back")
    claims.finish(long_ago.id, "Sam", "closed")
    with claims.store.engine.begin() as db:  # ended two days ago: out of the window
        db.execute(sqlalchemy.text("UPDATE handoffs SET resolved_at = :at WHERE id = :id"),
                   {"at": datetime.now(timezone.utc) - timedelta(days=2), "id": long_ago.id})
    for record in (claimed, ended, long_ago):
        reply(queue, record.ticket_id, f"About {record.reference}", author="Dana")
    assert {h.id for h in bridge.followed()} == {claimed.id, ended.id}
    assert sorted(bridge.tick()) == sorted([claimed.conversation_id, ended.conversation_id])
    assert said(claims, claimed.conversation_id) == [(messages.AGENT, "Dana", f"About {claimed.reference}")]
    assert claims.get(claimed.id).claimed_by == "Sam"  # Dana's reply goes out; Sam keeps the claim
    assert said(claims, ended.conversation_id) == [(messages.AGENT, "Dana", f"About {ended.reference}")]
    assert claims.get(ended.id).status == "handed_back"
    assert said(claims, long_ago.conversation_id) == [] and no_ticket.ticket_id is None


def test_a_backend_that_is_down_is_logged_and_the_other_tickets_still_read(claims, queue, caplog):
    first, second = handoff(claims, queue), handoff(claims, queue)
    reply(queue, second.ticket_id, "Hello")
    claims.store.set_ticket(first.id, "999999")  # a ticket the queue does not have: NotFound
    down = TicketReplies(claims, RtTicketing("http://127.0.0.1:9", "root", "pw", ledger=None, retries=0), ENV)
    with caplog.at_level(logging.WARNING):
        assert down.tick() == []
    assert "not read" in caplog.text and "unreachable" in caplog.text
    assert TicketReplies(claims, queue, ENV).tick() == [second.conversation_id]  # the unknown ticket skipped


def test_names_and_texts_fit_the_chat():
    assert display_name("  Dana\tde   la Cruz\x07 ") == "Dana de la Cruz"
    assert display_name("") == "Support" and len(display_name("x" * 300)) == 64
    long = chat_text("word " * 1000)
    assert len(long) == MAX_TEXT and long.endswith("(the whole reply is on your ticket)")


def test_the_watcher_delivers_and_tries_a_failed_delivery_again(bridge, claims, queue):
    record = handoff(claims, queue)
    reply(queue, record.ticket_id, "Hello")
    calls: List[str] = []

    async def sync(conversation_id: str) -> None:
        calls.append(conversation_id)
        if len(calls) == 1:
            raise RuntimeError("Rasa's lock store is down")

    async def run() -> None:
        task = asyncio.get_running_loop().create_task(bridge.watch(sync))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(calls) >= 2:
                break
        task.cancel()

    asyncio.run(run())
    assert calls[:2] == [record.conversation_id] * 2  # failed, then again the next round
    assert len(claims.messages(record.conversation_id)) == 2  # joined + the reply, stored once


def test_bad_settings_stop_the_start():
    with pytest.raises(ValueError, match="SUPPORTBOT_TICKET_REPLIES_SECONDS"):
        TicketReplies(environ={"SUPPORTBOT_TICKET_REPLIES_SECONDS": "soon"})
