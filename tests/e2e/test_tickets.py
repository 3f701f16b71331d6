"""Support tickets over the REST channel against the real servers (see conftest): bug reports,
feature requests, the customer's own tickets and comments, read back through the ticketing
adapter the action server uses (the embedded queue)."""
from __future__ import annotations

import json
import re

from sqlalchemy.orm import Session

from supportbot.identity import issue_token
from supportbot.ticketing.sql import TicketRow

CREATED = re.compile(r"as ticket (\d+)")


def _row(stack, ticket_id: str) -> TicketRow:
    with Session(stack.tickets().engine) as session:
        row = session.get(TicketRow, int(ticket_id))
        session.expunge_all()
        return row


def _count(stack) -> int:
    with Session(stack.tickets().engine) as session:
        return session.query(TicketRow).count()


def test_bug_report_files_a_ticket_with_the_transcript(stack, sender):
    steps = stack.texts(sender, "the wishlist page shows an error every time I open it")
    assert "make it happen again" in steps  # the first message was the description
    assert "How badly" in stack.texts(sender, "log in, open the wishlist, then the page goes blank")
    assert "email" in stack.texts(sender, "high").lower()
    done = stack.texts(sender, "carla.m@example.org")
    ticket_id = CREATED.search(done).group(1)
    row = _row(stack, ticket_id)
    assert row.requester == "carla.m@example.org"
    assert json.loads(row.tags_json) == ["bug", "severity-high"]
    assert "Detected intent: report_bug (" in row.body
    assert "What happened: the wishlist page shows an error every time I open it" in row.body
    assert "Steps to reproduce: log in, open the wishlist, then the page goes blank" in row.body
    assert "customer: the wishlist page shows an error every time I open it" in row.body
    assert "bot: How badly does it affect you?" in row.body


def test_bug_report_abandoned_files_nothing(stack, sender):
    before = _count(stack)
    # "Report a problem" as the fallback's button sends it: nothing said yet about what happened
    assert "What happened" in stack.texts(sender, "/report_bug")
    assert "make it happen again" in stack.texts(sender, "the checkout button does nothing")
    assert "stopped that" in stack.texts(sender, "no, forget it")
    assert _count(stack) == before
    assert not stack.tracker(sender)["active_loop"].get("name")


def test_retried_bug_ticket_action_files_once(stack, sender):
    stack.texts(sender, "hello")
    before = _count(stack)
    slots = {"bug_description": "search returns nothing", "bug_steps": "search for lamp",
             "bug_severity": "low", "email": "dana@example.org"}
    first, second = stack.run_action_twice(sender, "action_create_bug_ticket", "dana@example.org", "inform", slots)
    assert first["responses"] == second["responses"]
    [done] = first["responses"]
    assert done["response"] == "utter_bug_ticket_created"
    assert _count(stack) == before + 1
    assert json.loads(_row(stack, done["ticket_id"]).tags_json) == ["bug", "severity-low"]


def test_feature_request_files_a_ticket_once_per_turn(stack, sender):
    text = "could you add a dark mode to the app"
    done = stack.texts(sender, text)
    ticket_id = CREATED.search(done).group(1)
    row = _row(stack, ticket_id)
    assert json.loads(row.tags_json) == ["feature-request"]
    assert f"Request: {text}" in row.body and f"customer: {text}" in row.body
    assert "Detected intent: feature_request (" in row.body
    before = _count(stack)
    first, second = stack.run_action_twice(sender, "action_create_feature_request", "please add dark mode",
                               "feature_request", {})
    assert first["responses"] == second["responses"]
    assert _count(stack) == before + 1


def _alice_ticket(stack, key: str, subject: str = "Bug: the basket empties itself") -> str:
    return stack.tickets().create_ticket(requester="alice@example.com", subject=subject, body="test",
                                         tags=["bug"], idempotency_key=key).id


def test_ticket_status_after_verification_then_a_comment(stack, sender):
    ticket_id = _alice_ticket(stack, f"{sender}-1")
    assert "email" in stack.texts(sender, f"any news on my ticket TKT-{ticket_id}?").lower()
    assert "order" in stack.texts(sender, "alice@example.com").lower()
    shown = stack.texts(sender, "4817263")
    assert f"Ticket {ticket_id}: \"Bug: the basket empties itself\", new" in shown
    assert f"add information to ticket {ticket_id}" in shown
    assert f"add to ticket {ticket_id}" in stack.texts(sender, "/affirm")
    added = stack.texts(sender, "it also happens on my laptop and on my phone")
    assert f"added that to ticket {ticket_id}" in added
    assert stack.tickets().comments(ticket_id) == ["it also happens on my laptop and on my phone"]


def test_another_customers_ticket_gets_the_not_found_reply(stack, sender, identity_secret):
    token = {"customer_token": issue_token("C-1001", identity_secret)}  # Alice
    bobs = stack.tickets().create_ticket(requester="bob@example.com", subject="Bob's secret chair problem",
                                         body="private", idempotency_key=f"{sender}-bob").id
    refused = stack.texts(sender, f"what's the status of ticket {bobs}", metadata=token)
    missing = stack.texts(sender + "-2", "what's the status of ticket 987654", metadata=token)
    assert "couldn't find that ticket among yours" in refused
    assert refused == missing  # nothing tells whether the ticket exists
    assert "chair" not in refused and "Bob" not in refused


def test_open_tickets_are_listed_newest_first(stack, sender, identity_secret):
    token = {"customer_token": issue_token("C-1001", identity_secret)}
    ids = [_alice_ticket(stack, f"{sender}-list-{n}", subject=f"Issue {n}") for n in range(6)]
    stack.tickets().set_status(ids[-1], "resolved")
    listed = stack.texts(sender, "what's happening with my support tickets?", metadata=token)
    shown = re.findall(r"Ticket (\d+):", listed)
    assert len(shown) == 5 and ids[-1] not in shown
    assert shown == sorted(shown, key=int, reverse=True) and shown[0] == ids[-2]
