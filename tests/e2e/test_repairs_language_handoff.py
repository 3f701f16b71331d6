"""Dialogue repairs over the REST channel against the real servers (see conftest): a message in
another language, an explicit request for a person inside an angry or two-topic message, and a
chargeback mentioned in a payment problem or a dispute (issue 16)."""
from __future__ import annotations

import pytest

from supportbot.identity import issue_token

BOB = "C-1002"


def buttons(replies):
    return [b["payload"] for r in replies for b in r.get("buttons", [])]


def text(replies):
    return "\n".join(r.get("text") or "" for r in replies)


# --- another language ------------------------------------------------------------------


@pytest.mark.parametrize("message, words", [
    ("Hallo, wo ist meine Bestellung?", "nur auf Englisch"),
    ("Bonjour, où est ma commande ?", "qu'en anglais"),
    ("Necesito ayuda, no encuentro mi pedido", "solo puedo ayudarte en inglés"),
    ("Здравствуйте, где мой заказ? Мне нужна помощь", "I can only help in English"),
])
def test_a_message_in_another_language_gets_english_only_and_a_person(stack, sender, message, words):
    replies = stack.say(sender, message)
    assert words in text(replies) and buttons(replies) == ["/request_human"]
    assert "lost track" not in text(replies)
    handoff = stack.texts(sender, "/request_human")
    assert "Your reference is H-" in handoff
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "customer_request"


def test_english_short_replies_are_not_taken_for_another_language(stack, sender):
    assert "English" not in stack.texts(sender, "ok")
    assert "English" not in stack.texts(sender + "-2", "are you a person?")


# --- an explicit request for a person ---------------------------------------------------


@pytest.mark.parametrize("message", [
    "this is useless, get me a human NOW",
    "I've been waiting 3 weeks for my refund and I want to speak to a manager",
    "you are the worst shop ever, put me through to a real person",
])
def test_an_explicit_request_for_a_person_hands_off_whatever_else_it_says(stack, sender, message):
    assert "Your reference is H-" in stack.texts(sender, message)
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "customer_request"
    [parse] = [e["parse_data"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]
    assert parse["intent"]["name"] == "request_human"


def test_asking_whether_it_is_a_person_is_not_a_request(stack, sender):
    answer = stack.texts(sender, "am I talking to a real person?")
    assert "Your reference is H-" not in answer
    assert not stack.handoffs().list(conversation_id=sender)


# --- chargebacks -----------------------------------------------------------------------


def test_a_payment_problem_with_a_chargeback_goes_to_a_person(stack, sender, identity_secret):
    token = {"customer_token": issue_token(BOB, identity_secret)}
    message = "my payment went through twice and I'm filing a chargeback with my bank"
    answer = stack.texts(sender, message, metadata=token)
    [parse] = [e["parse_data"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]
    assert parse["intent"]["name"] == "payment_problem"
    assert "chargebacks and bank disputes are handled by our billing team" in answer
    assert "Your reference is H-" in answer and "refund the duplicate" not in answer
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "charge_dispute"


def test_a_chargeback_mentioned_inside_the_dispute_form_goes_to_a_person(stack, sender, identity_secret):
    token = {"customer_token": issue_token(BOB, identity_secret)}
    stack.texts(sender, "I want to dispute a charge", metadata=token)
    stack.texts(sender, "P-000011", metadata=token)
    answer = stack.texts(sender, "never authorised it, my bank told me to file a chargeback", metadata=token)
    assert "chargebacks and bank disputes are handled by our billing team" in answer
    assert not [d for d in stack.billing().list_disputes(BOB) if d.payment_id == "P-000011"]
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "charge_dispute"
