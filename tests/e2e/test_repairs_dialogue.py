"""Dialogue repairs through the real servers (tests/plugins/stack.py): every message inside a
form gets an answer that keeps the form going or says what happens next, the reply when nothing
fits says what we were doing and what can be done, and an order page's order wins.

Alice (C-1001) owns 4817263 (shipped) and 4817264 (delivered). Replies that only check the
dialogue send intents as the buttons do ("/affirm"); the customer's phrasings go through NLU."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from supportbot.identity import issue_token

ASK_ORDER = "What's the order number?"
LOST = ("lost track", "Goodbye")


def buttons(replies: List[Dict[str, Any]]) -> Dict[str, str]:
    return {b["title"]: b["payload"] for message in replies for b in message.get("buttons", [])}


@pytest.mark.parametrize("go_on", ["ok, go on", "continue", "yes"])
def test_go_on_inside_a_form_asks_the_question_again(stack, sender, go_on):
    assert ASK_ORDER in stack.texts(sender, "I'd like a refund please")
    answer = stack.texts(sender, go_on)
    assert ASK_ORDER in answer and not any(word in answer for word in LOST), answer
    # the form is still waiting for its answer
    assert "email" in stack.texts(sender, "4817264").lower()


def test_side_questions_are_answered_then_the_form_carries_on(stack, sender):
    stack.texts(sender, "I'd like a refund please")
    answer = stack.texts(sender, "/greet")
    assert answer.startswith("Hi! Let's carry on") and ASK_ORDER in answer
    answer = stack.texts(sender, "/out_of_scope")
    assert "outside what I can help with" in answer and ASK_ORDER in answer


def test_an_answer_the_form_cannot_use_says_what_is_missing(stack, sender):
    stack.texts(sender, "where is my order?")
    answer = stack.texts(sender, "/inform")
    assert "To check an order, I still need the order number" in answer and ASK_ORDER in answer
    answer = stack.texts(sender, "/order_status")
    assert "We're already checking an order: I just need the order number" in answer


def test_another_goal_inside_a_form_offers_to_switch_and_yes_switches(stack, sender, identity_secret):
    token = {"customer_token": issue_token("C-1001", identity_secret)}
    stack.texts(sender, "I'd like a refund please", metadata=token)
    offer = stack.say(sender, "/order_status", metadata=token)
    assert "Do you want to stop the refund and check an order instead?" in offer[0]["text"]
    assert buttons(offer) == {"Yes": "/affirm", "No, carry on": "/deny"}
    assert ASK_ORDER in stack.texts(sender, "/affirm", metadata=token)
    assert "Order 4817263 is on its way" in stack.texts(sender, "4817263", metadata=token)


def test_no_to_the_switch_goes_back_to_the_form_where_it_was(stack, sender, identity_secret):
    token = {"customer_token": issue_token("C-1001", identity_secret)}
    stack.texts(sender, "I'd like a refund please", metadata=token)
    assert "How much" in stack.texts(sender, "4817264", metadata=token)
    assert "stop the refund and change your plan" in stack.texts(sender, "/change_plan", metadata=token)
    answer = stack.texts(sender, "/deny", metadata=token)
    assert "OK, let's carry on with the refund." in answer and "How much" in answer
    assert "What went wrong" in stack.texts(sender, "the full amount", metadata=token)


def test_nothing_fits_says_what_we_were_doing_and_what_can_be_done(stack, sender, identity_secret):
    token = {"customer_token": issue_token("C-1001", identity_secret)}
    assert "on its way" in stack.texts(sender, "where is order 4817263?", metadata=token)
    replies = stack.say(sender, "/deny", metadata=token)
    text = "\n".join(r.get("text", "") for r in replies)
    assert "lost track" not in text
    assert "Last, we were checking an order." in text
    offered = buttons(replies)
    assert offered["Start over"] == "/restart" and offered["Talk to a person"] == "/request_human"
    assert offered["Check an order"] == "/order_status"
    # the unexpected message was taken back: the conversation goes on from before it
    assert "Goodbye" in stack.texts(sender, "/goodbye", metadata=token)


def order_page(identity_secret: str, order_id: str) -> Dict[str, Any]:
    return {"customer_token": issue_token("C-1001", identity_secret),
            "page": {"path": f"/account/orders/{order_id}", "order_id": order_id}}


@pytest.mark.parametrize("question", [
    "where is my order?",
    "where is it?",
])
def test_the_order_page_order_wins_over_one_discussed_before(stack, sender, identity_secret, question):
    home = {"customer_token": issue_token("C-1001", identity_secret), "page": {"path": "/"}}
    assert "Order 4817264 was delivered" in stack.texts(sender, "where is order 4817264?", metadata=home)
    answer = stack.texts(sender, question, metadata=order_page(identity_secret, "4817263"))
    assert "Order 4817263 is on its way" in answer, answer
    assert "4817264" not in answer


def test_an_order_named_on_the_page_still_wins_over_the_page(stack, sender, identity_secret):
    answer = stack.texts(sender, "where is order 4817264?", metadata=order_page(identity_secret, "4817263"))
    assert "Order 4817264 was delivered" in answer and "4817263" not in answer
