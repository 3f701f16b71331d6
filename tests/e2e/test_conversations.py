"""Whole conversations over the REST channel against the real servers (see conftest)."""
from __future__ import annotations

from decimal import Decimal

import requests

from supportbot.identity import issue_token


def test_order_status_after_verification(stack, sender):
    first = stack.texts(sender, "where is my order 4817263")
    assert "email" in first.lower()
    assert "UPS" not in first  # nothing shown before the customer is verified
    answer = stack.texts(sender, "alice@example.com")
    assert "Order 4817263 is on its way" in answer
    assert "UPS" in answer and "1Z999AA10123456784" in answer
    assert "Expected delivery" in answer


def test_wrong_email_shows_nothing(stack, sender):
    stack.texts(sender, "where is my order 4817263")
    answer = stack.texts(sender, "bob@example.com")
    assert "don't match" in answer
    assert "UPS" not in answer and "1Z999" not in answer


def test_verified_customer_cannot_see_another_customers_order(stack, sender):
    stack.texts(sender, "where is my order 4817263")
    stack.texts(sender, "alice@example.com")
    answer = stack.texts(sender, "and where is order 5529002?")
    assert "can't find order 5529002 on your account" in answer
    assert "499" not in answer and "delivered" not in answer


def test_signed_token_identifies_the_customer(stack, sender, identity_secret):
    token = issue_token("C-1001", identity_secret)
    answer = stack.texts(sender, "where is order 4817263?", metadata={"customer_token": token})
    assert "Order 4817263 is on its way" in answer


def test_forged_token_is_ignored(stack, sender):
    forged = issue_token("C-1001", "forged-secret-also-32-bytes-long!!")
    answer = stack.texts(sender, "where is order 4817263?",
                         metadata={"customer_token": forged, "customer_id": "C-1001"})
    assert "email" in answer.lower()
    assert "on its way" not in answer


def _refund_conversation(stack, sender):
    stack.texts(sender, "I'd like a refund for order 4817264")
    stack.texts(sender, "alice@example.com")
    stack.texts(sender, "the full amount")
    return stack.texts(sender, "it arrived broken")


def test_refund_is_confirmed_then_made_once(stack, sender):
    customer = "C-1001"
    before = stack.billing().list_refunds(customer, order_id="4817264")
    summary = _refund_conversation(stack, sender)
    assert "49.99 USD" in summary and "Shall I go ahead" in summary
    done = stack.texts(sender, "yes please")
    assert "Done: refund R-" in done
    after = stack.billing().list_refunds(customer, order_id="4817264")
    assert len(after) == len(before) + 1
    assert after[0].amount == Decimal("49.99")  # newest first
    assert stack.texts(sender, "thanks")  # the bot still answers afterwards
    status = stack.texts(sender, "has the refund for order 4817264 gone through?")
    assert f"Refund {after[0].id}: 49.99 USD for order 4817264, approved" in status


def test_retried_refund_action_refunds_once(stack, sender):
    """The action server receives the same request twice (Rasa's retry, a channel resend):
    the billing service sees one idempotency key and makes one refund."""
    # Bob's order is 499.00 in all: a partial refund of 20 stays under the automatic limit.
    stack.texts(sender, "refund for order 5529002 please")
    stack.texts(sender, "bob@example.com")
    stack.texts(sender, "$20")
    summary = stack.texts(sender, "wrong colour")
    assert "20.00 USD" in summary
    tracker = stack.tracker(sender)
    # Rasa runs action_create_refund after this "yes"; replay exactly that request twice.
    user_yes = {
        "event": "user", "text": "yes", "parse_data": {
            "intent": {"name": "affirm", "confidence": 1.0}, "entities": [], "text": "yes",
            "message_id": "fixed-message-id-1",
        },
    }
    tracker["events"].append(user_yes)
    tracker["latest_message"] = user_yes["parse_data"]
    domain = stack.api("/domain")
    request = {"next_action": "action_create_refund", "sender_id": sender, "tracker": tracker,
               "domain": domain, "version": "3.6.21"}
    first = requests.post(f"{stack.actions_url}/webhook", json=request, timeout=30,
                          headers=stack.actions_auth).json()
    second = requests.post(f"{stack.actions_url}/webhook", json=request, timeout=30,
                           headers=stack.actions_auth).json()
    assert first["responses"] == second["responses"]
    [done] = first["responses"]
    assert done["response"] == "utter_refund_done" and done["refund_id"].startswith("R-")
    refunds = stack.billing().list_refunds("C-1002", order_id="5529002")
    assert len(refunds) == 1 and refunds[0].amount == Decimal("20.00")


def test_refund_above_limit_goes_to_a_person(stack, sender):
    stack.texts(sender, "refund order 5529002")
    stack.texts(sender, "bob@example.com")
    stack.texts(sender, "all of it")
    answer = stack.texts(sender, "it stopped working")
    assert "approved by a person" in answer and "Your reference is H-" in answer
    assert not stack.say(sender, "hello?")  # paused: the bot stays quiet
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "refund_review" and record.customer_id == "C-1002"
    assert (record.team, record.priority) == ("billing", "high")  # the amount at stake: 200 or more


def test_handoff_records_context_and_pauses_until_resumed(stack, sender, monkeypatch, api_token):
    stack.texts(sender, "hi")
    answer = stack.texts(sender, "I want to talk to a real person")
    assert "handing you over" in answer
    [record] = stack.handoffs().list(conversation_id=sender)
    assert record.reason == "customer_request" and record.status == "open"
    transcript = record.context["transcript"]
    assert [t["text"] for t in transcript if t["from"] == "customer"] == ["hi", "I want to talk to a real person"]
    assert transcript[-1]["intent"] == "request_human" and transcript[-1]["confidence"] > 0.5
    assert record.context["intent_ranking"]
    assert not stack.say(sender, "are you there?")  # paused
    from supportbot.cli import main as cli

    monkeypatch.setenv("SUPPORTBOT_DB_URL", stack.store_db_url)
    assert cli(["resume", sender, "--rasa-url", stack.rasa_url]) == 1  # no token: refused
    assert stack.handoffs().list(conversation_id=sender)[0].status == "open"
    assert cli(["resume", sender, "--rasa-url", stack.rasa_url, "--token", api_token]) == 0
    assert stack.handoffs().list(conversation_id=sender)[0].status == "resolved"
    assert stack.texts(sender, "hello")  # the bot answers again


def test_two_unclear_messages_in_a_row_hand_off(stack, sender):
    # Both misses are sent as an explicit intent: what NLU makes of any one gibberish string
    # (unclear, or out of scope) is the NLU gate's business; this test is about what the
    # dialogue does with two misses in a row.
    first = stack.say(sender, "/nlu_fallback")
    assert "say it another way" in first[0]["text"]
    assert first[0]["buttons"][-1]["payload"] == "/request_human"
    second = stack.texts(sender, "/nlu_fallback")
    assert "handing you over" in second
    assert stack.handoffs().list(conversation_id=sender)[0].reason == "not_understood"


def test_angry_complaint_goes_to_a_person_calm_one_does_not(stack, sender):
    calm = stack.texts(sender + "-calm", "I'm a bit disappointed with the quality of the mug")
    assert "sorry" in calm.lower() and "handing you over" not in calm
    angry = stack.texts(sender, "THIS IS UNACCEPTABLE, worst service ever!!!")
    assert "handing you over" in angry
