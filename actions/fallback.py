"""When NLU is unsure: ask to rephrase with the two likeliest goals as buttons; on a second
miss in a row, hand off to a person."""
from __future__ import annotations

from typing import List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import hand_off

# Intents worth offering as a button, with how the button reads.
CHOICES = {
    "order_status": "Where's my order?",
    "cancel_order": "Cancel an order",
    "change_shipping_address": "Change delivery address",
    "request_refund": "Get a refund",
    "refund_status": "Where's my refund?",
    "get_invoice": "Get an invoice",
    "payment_problem": "A payment problem",
    "dispute_charge": "Dispute a charge",
    "cancel_subscription": "Cancel my subscription",
    "change_plan": "Change my plan",
    "update_payment_method": "Update my card",
    "reset_password": "Reset my password",
    "account_access": "Can't get into my account",
    "update_account": "Change account details",
    "delete_account": "Delete my account",
    "report_bug": "Report a problem with the site",
    "ticket_status": "Status of my ticket",
    "complaint": "Make a complaint",
}


class ActionHandleNluFallback(Action):
    def name(self) -> str:
        return "action_handle_nlu_fallback"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        if _previous_turn_was_fallback(tracker):
            dispatcher.utter_message(response="utter_still_not_understood")
            return hand_off(dispatcher, tracker, reason="not_understood")
        ranking = tracker.latest_message.get("intent_ranking") or []
        choices = [r["name"] for r in ranking if r.get("name") in CHOICES][:2]
        buttons = [{"title": CHOICES[name], "payload": f"/{name}"} for name in choices]
        buttons.append({"title": "Talk to a person", "payload": "/request_human"})
        dispatcher.utter_message(response="utter_ask_rephrase", buttons=buttons)
        return []


def _previous_turn_was_fallback(tracker: Tracker) -> bool:
    """Whether the customer's message before this one also ended in this fallback."""
    users_seen = 0
    last_action: Optional[str] = None
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            users_seen += 1
            if users_seen == 2:
                return last_action == "action_handle_nlu_fallback"
        elif event.get("event") == "action" and users_seen == 1:
            if event.get("name") not in ("action_listen", None):
                last_action = last_action or event.get("name")
    return False
