"""The handoff files its ticket through the configured adapter, and survives ticketing failures."""
from __future__ import annotations

from decimal import Decimal

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions import common, handoff
from supportbot.errors import BackendUnavailable
from supportbot.store import HandoffStore
from supportbot.ticketing.sql import SqlTicketing, TicketRow


@pytest.fixture
def fresh_backends(monkeypatch, db_url):
    monkeypatch.setenv("SUPPORTBOT_DB_URL", db_url)
    monkeypatch.delenv("SUPPORTBOT_TICKETING", raising=False)
    monkeypatch.delenv("SUPPORTBOT_TICKETING_DB_URL", raising=False)
    for cached in (common.handoff_store, common.ticketing):
        cached.cache_clear()
    yield
    for cached in (common.handoff_store, common.ticketing):
        cached.cache_clear()


def tracker(sender: str, slots=None) -> Tracker:
    events = [{"event": "user", "text": "I want a person", "timestamp": 1.0,
               "parse_data": {"intent": {"name": "request_human", "confidence": 0.97}, "entities": []}}]
    latest = {"text": "I want a person", "message_id": "m-1", "intent": {"name": "request_human"}}
    return Tracker(sender, slots or {}, latest, events, False, None, {}, None)


def test_handoff_files_one_ticket_per_turn(fresh_backends, db_url):
    verified = {"customer_id": "C-1002", "customer_verified": True, "customer_email": "bob@example.com"}
    for _ in range(2):  # the action server retrying the same turn
        dispatcher = CollectingDispatcher()
        events = handoff.hand_off(dispatcher, tracker("conv-1", verified), "customer_request")
    [record] = HandoffStore(db_url).list(conversation_id="conv-1")
    [ticket] = SqlTicketing(db_url).list_tickets("bob@example.com")
    assert ticket.subject == f"Chat handoff {record.reference}: customer_request"
    assert dispatcher.messages[0]["response"] == "utter_handoff" and events == [ConversationPaused()]
    anonymous = handoff.requester_email(tracker("conv-2"))
    assert anonymous.endswith("@anonymous.invalid") and anonymous == handoff.requester_email(tracker("conv-2"))


def test_handoff_without_ticketing_still_records_and_tells_the_customer(fresh_backends, db_url, monkeypatch):
    def down():
        raise BackendUnavailable("ticketing down")

    monkeypatch.setattr(handoff, "ticketing", down)
    dispatcher = CollectingDispatcher()
    events = handoff.hand_off(dispatcher, tracker("conv-3"), "legal")
    [record] = HandoffStore(db_url).list(conversation_id="conv-3")
    assert record.reason == "legal" and events == [ConversationPaused()]
    assert dispatcher.messages[0]["response"] == "utter_handoff"
    assert dispatcher.messages[0]["handoff_reference"] == record.reference


def test_ticket_body_summarises_the_transcript(fresh_backends, db_url):
    handoff.hand_off(CollectingDispatcher(), tracker("conv-4"), "customer_request")
    [record] = HandoffStore(db_url).list(conversation_id="conv-4")
    body = handoff.ticket_body(record)
    assert "customer: I want a person" in body and record.reference in body and "not verified" in body


def test_a_handoff_is_filed_in_its_teams_queue_with_its_priority(fresh_backends, db_url):
    verified = {"customer_id": "C-1002", "customer_verified": True, "customer_email": "bob@example.com"}
    handoff.hand_off(CollectingDispatcher(), tracker("conv-5", verified), "refund_review", amount=Decimal("250"))
    [record] = HandoffStore(db_url).list(conversation_id="conv-5")
    assert (record.team, record.priority) == ("billing", "high")
    queue = SqlTicketing(db_url)
    assert queue.queue_of(record.ticket_id) == ("billing", "high")
    with Session(queue.engine) as session:
        body = session.get(TicketRow, int(record.ticket_id)).body
    assert "Routed to billing, priority high (amount 250 ≥ 200)." in body
