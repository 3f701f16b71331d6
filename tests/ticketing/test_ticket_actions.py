"""The ticket actions (actions/tickets.py) against the embedded queue, without Rasa: what the
bug form reads from answers, one ticket or comment per turn, and nothing about other
customers' tickets."""
from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import common, tickets
from supportbot.ticketing.sql import SqlTicketing

ALICE = {"customer_id": "C-1001", "customer_verified": True, "customer_email": "alice@example.com",
         "email": "alice@example.com"}


@pytest.fixture
def queue(monkeypatch, db_url) -> SqlTicketing:
    adapter = SqlTicketing(db_url)
    monkeypatch.setattr(tickets, "ticketing", lambda: adapter)
    yield adapter
    common.ticketing.cache_clear()


def tracker(text: str, intent: str, slots=None, message_id: str = "m-1") -> Tracker:
    events = [{"event": "user", "text": text,
               "parse_data": {"intent": {"name": intent, "confidence": 0.93}, "entities": []}}]
    latest = {"text": text, "message_id": message_id, "intent": {"name": intent}, "entities": []}
    return Tracker("conv-1", slots or {}, latest, events, False, None, {}, None)


@pytest.mark.parametrize("text, described", [
    ("I want to report a bug", False), ("I found a bug on your site", False),
    ("hi, there's a problem with the app", False), ("checkout is broken", True),
    ("the wishlist page shows an error every time I open it", True)])
def test_the_first_message_is_the_description_only_when_it_says_what_happened(text, described):
    form = tickets.ValidateBugReportForm()
    found = asyncio.run(form.extract_bug_description(CollectingDispatcher(), tracker(text, "report_bug"), {}))
    assert found == ({"bug_description": text} if described else {})


@pytest.mark.parametrize("answer, severity", [
    ("low", "low"), ("medium", "medium"), ("high", "high"), ("critical", "critical"),
    ("it's blocking me", "critical"), ("just a minor thing", "low"), ("meh", None)])
def test_severity_from_the_answer(answer, severity):
    dispatcher = CollectingDispatcher()
    slot = tickets.ValidateBugReportForm().validate_bug_severity(answer, dispatcher, tracker(answer, "inform"), {})
    assert slot == {"bug_severity": severity}
    assert bool(dispatcher.messages) == (severity is None)


def test_bug_ticket_is_filed_once_per_turn(queue):
    slots = {"bug_description": "search is empty", "bug_steps": "search lamp", "bug_severity": "high",
             "email": "carla@example.org"}
    for _ in range(2):  # the action server retrying the same turn
        dispatcher = CollectingDispatcher()
        tickets.ActionCreateBugTicket().run(dispatcher, tracker("carla@example.org", "inform", slots), {})
    [ticket] = queue.list_tickets("carla@example.org")
    assert dispatcher.messages[0]["ticket_id"] == ticket.id and ticket.subject == "Bug: search is empty"


def test_someone_elses_ticket_gets_the_not_found_reply(queue):
    bobs = queue.create_ticket(requester="bob@example.com", subject="b", body="b", idempotency_key="k1")
    replies = []
    for ticket_id in (bobs.id, "4242"):
        dispatcher = CollectingDispatcher()
        asked = tracker("?", "ticket_status", dict(ALICE, ticket_id=ticket_id))
        tickets.ActionTicketStatus().run(dispatcher, asked, {})
        replies.append(dispatcher.messages)
    assert replies[0] == replies[1] and replies[0][0]["response"] == "utter_ticket_not_found"


def test_comment_is_added_once_per_turn(queue):
    mine = queue.create_ticket(requester="alice@example.com", subject="a", body="a", idempotency_key="k2")
    slots = dict(ALICE, ticket_id=mine.id, ticket_comment="also on my laptop")
    for _ in range(2):
        said = tracker("also on my laptop", "inform", slots)
        tickets.ActionAddTicketComment().run(CollectingDispatcher(), said, {})
    assert queue.comments(mine.id) == ["also on my laptop"]
