"""The verified identity is one fact per session (actions/identity.py): a typed email is a
claim that never becomes the requester of a ticket and never switches the account silently."""
from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import requester_email
from actions.identity import VerifiedFormValidation

ALICE = {"customer_id": "C-1001", "customer_verified": True, "customer_email": "alice@example.com"}


class OrderForm(VerifiedFormValidation):
    def name(self) -> str:
        return "validate_order_status_form"


def tracker(slots, text: str = "hi", emails=()) -> Tracker:
    entities = [{"entity": "email", "value": email} for email in emails]
    latest = {"text": text, "message_id": "m-1", "intent": {"name": "inform"}, "entities": entities}
    return Tracker("conv-1", slots, latest, [], False, None, {"name": "order_status_form"}, None)


def run_form(slots, emails):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(OrderForm().run(dispatcher, tracker(slots, "it's " + " ".join(emails), emails), {}))
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}, dispatcher.messages


def test_the_requester_is_the_verified_address_whatever_was_typed():
    assert requester_email(tracker({**ALICE, "email": "bob@example.com"})) == "alice@example.com"


def test_an_unverified_chat_files_under_a_placeholder_that_reaches_nobody():
    assert requester_email(tracker({"email": "bob@example.com"})).endswith("@anonymous.invalid")


def test_another_address_in_a_form_starts_a_new_verification():
    slots, said = run_form({**ALICE, "order_id": "4817263"}, ["bob@example.com"])
    assert slots == {"customer_id": None, "customer_email": None, "customer_verified": False,
                     "email": "bob@example.com", "order_id": None, "requested_slot": "order_id"}
    assert said[0]["response"] == "utter_verify_other_account" and said[0]["email"] == "bob@example.com"


@pytest.mark.parametrize("typed", ["alice@example.com", "Alice@Example.com"])
def test_the_verified_address_typed_again_changes_nothing(typed):
    dispatcher = CollectingDispatcher()
    assert VerifiedFormValidation._other_account_named(dispatcher, tracker(ALICE, typed, [typed])) is None
    assert not dispatcher.messages


def test_a_token_verified_customer_cannot_switch_by_typing():
    token_verified = {"customer_id": "C-1001", "customer_verified": True}  # no address on record
    slots, said = run_form(token_verified, ["bob@example.com"])
    assert slots == {"email": None}
    assert said[0]["response"] == "utter_signed_in_other_account"
