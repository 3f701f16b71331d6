"""When NLU is unsure: ask to rephrase with the two likeliest goals as buttons, or, when the message
names a topic but no goal ("help with my account"), with that topic's goals; on a second miss in a
row, hand off to a person. A first unclear message never hands off."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

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

# Topics a vague message may name, the words that name them, and the goals offered for each.
TOPICS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "account": (("account", "login", "log in", "sign in", "password", "profile"),
                ("account_access", "reset_password", "update_account", "update_payment_method", "delete_account")),
    "order": (("order", "package", "parcel", "delivery", "shipment"),
              ("order_status", "change_shipping_address", "cancel_order", "request_refund")),
    "subscription": (("subscription", "plan", "membership"),
                     ("change_plan", "cancel_subscription", "payment_problem")),
    "payment": (("payment", "charge", "charged", "invoice", "bill", "card"),
                ("payment_problem", "get_invoice", "dispute_charge", "update_payment_method")),
}
TOPIC_BUTTONS = 4


def named_topic(text: str) -> Optional[str]:
    """The first topic (in TOPICS order) one of whose words the message contains, if any."""
    lowered = (text or "").lower()
    for topic, (words, _) in TOPICS.items():
        if any(re.search(rf"\b{re.escape(word)}s?\b", lowered) for word in words):
            return topic
    return None


def clarification_buttons(ranking: List[Dict], topic: Optional[str]) -> List[Dict[str, str]]:
    """The topic's goals, likeliest first (or the two likeliest goals overall), then a person."""
    confidence = {r.get("name"): r.get("confidence") or 0.0 for r in ranking}
    if topic:
        goals = sorted(TOPICS[topic][1], key=lambda name: -confidence.get(name, 0.0))[:TOPIC_BUTTONS]
    else:
        goals = [r["name"] for r in ranking if r.get("name") in CHOICES][:2]
    return [{"title": CHOICES[name], "payload": f"/{name}"} for name in goals] + [
        {"title": "Talk to a person", "payload": "/request_human"}]


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
        topic = named_topic(tracker.latest_message.get("text"))
        buttons = clarification_buttons(ranking, topic)
        if topic:
            dispatcher.utter_message(response="utter_ask_which_goal", topic=topic, buttons=buttons)
        else:
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
