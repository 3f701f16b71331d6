"""Clarifications. A vague mention of a topic ("help with my account", intent ask_about_topic)
gets that topic's goals as buttons, never a flow and never a handoff. When NLU is unsure
(nlu_fallback): the same topic buttons if the message names a topic, else the two likeliest goals;
on a second miss in a row, hand off to a person. A first unclear message never hands off."""
from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Dict, List, NamedTuple, Optional, Tuple

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


class Topic(NamedTuple):
    words: Tuple[str, ...]  # whole words (plural "s" too) that name the topic in a message
    goals: Tuple[str, ...]  # the goals offered for it, most common first
    phrase: str  # how the reply names it: "I can help with {phrase}."


# Topics a vague message may name. named_topic tries them in this order, the narrowest first, so
# "a refund for my order" is about refunds and "billing for my account" about payments.
TOPICS: Dict[str, Topic] = {
    "refund": Topic(("refund", "money back", "reimbursement"),
                    ("request_refund", "refund_status"), "refunds"),
    "subscription": Topic(("subscription", "subscribtion", "subscripton", "sub", "plan", "membership"),
                          ("change_plan", "cancel_subscription", "payment_problem"), "your subscription"),
    "payment": Topic(("payment", "billing", "bill", "charge", "charged", "invoice", "card"),
                     ("payment_problem", "get_invoice", "dispute_charge", "update_payment_method"),
                     "billing and payments"),
    "order": Topic(("order", "package", "parcel", "delivery", "deliveries", "shipment", "shipping"),
                   ("order_status", "change_shipping_address", "cancel_order", "request_refund"),
                   "your orders"),
    "account": Topic(("account", "acount", "acc", "acct", "login", "log in", "sign in", "password", "profile"),
                     ("account_access", "reset_password", "update_account", "update_payment_method",
                      "delete_account"), "your account"),
}
TOPIC_BUTTONS = 4
SOMETHING_ELSE = {"title": "Something else", "payload": '/ask_about_topic{"topic": "other"}'}
PERSON = {"title": "Talk to a person", "payload": "/request_human"}
# Real words one letter away from a topic's word ("change": "charge"), never read as a misspelling.
NEAR_MISSES = {"change", "older", "plane", "plant"}


def named_topic(text: str) -> Optional[str]:
    """The first topic (in TOPICS order) one of whose words the message contains, if any."""
    lowered = (text or "").lower()
    for topic, spec in TOPICS.items():
        if any(re.search(rf"\b{re.escape(word)}s?\b", lowered) for word in spec.words):
            return topic
    return None


def misspelt_topic(text: str, cutoff: float = 0.8) -> Optional[str]:
    """The topic one of whose words a word of the message is closest to, above `cutoff` similarity
    ("biling", "membersip", "oder"): only for a message NLU read as naming a topic."""
    best: Tuple[float, Optional[str]] = (cutoff, None)
    for token in set(re.findall(r"[a-z]{4,}", (text or "").lower())) - NEAR_MISSES:
        for topic, spec in TOPICS.items():
            for word in spec.words:
                ratio = SequenceMatcher(None, token, word).ratio() if len(word) >= 4 else 0.0
                if ratio > best[0] or (ratio == best[0] and best[1] is None):
                    best = (ratio, topic)
    return best[1]


def likeliest_topic(ranking: List[Dict]) -> Optional[str]:
    """The topic whose goals NLU ranks highest in total, if one alone does."""
    confidence = {r.get("name"): r.get("confidence") or 0.0 for r in ranking}
    scores = {topic: sum(confidence.get(goal, 0.0) for goal in spec.goals) for topic, spec in TOPICS.items()}
    ordered = sorted(scores.values(), reverse=True)
    best = max(scores, key=lambda topic: scores[topic])
    return best if ordered[0] > 0 and ordered[0] > ordered[1] else None


def clarification_buttons(ranking: List[Dict], topic: Optional[str]) -> List[Dict[str, str]]:
    """The topic's goals, likeliest first, and "something else" (or the two likeliest goals
    overall), then a person."""
    confidence = {r.get("name"): r.get("confidence") or 0.0 for r in ranking}
    if topic:
        goals = sorted(TOPICS[topic].goals, key=lambda name: -confidence.get(name, 0.0))[:TOPIC_BUTTONS]
        extra = [SOMETHING_ELSE]
    else:
        goals, extra = [r["name"] for r in ranking if r.get("name") in CHOICES][:2], []
    return [{"title": CHOICES[name], "payload": f"/{name}"} for name in goals] + extra + [PERSON]


def topic_menu() -> List[Dict[str, str]]:
    """Every topic as a button, then a person: for "something else" or a topic no word names."""
    titles = {topic: spec.phrase.replace("your ", "my ") for topic, spec in TOPICS.items()}
    return [{"title": title[0].upper() + title[1:], "payload": f'/ask_about_topic{{"topic": "{topic}"}}'}
            for topic, title in titles.items()] + [PERSON]


class ActionClarifyTopic(Action):
    """ask_about_topic: offer the topic's goals (from the `topic` of a button, the message's words,
    misspelt or not, or the intent ranking); a button's "other", or no topic found, gets the topics."""

    def name(self) -> str:
        return "action_clarify_topic"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        message = tracker.latest_message
        ranking = message.get("intent_ranking") or []
        given = next(tracker.get_latest_entity_values("topic"), None)
        if given is not None:
            topic = given if given in TOPICS else None
        else:
            text = message.get("text")
            topic = named_topic(text) or misspelt_topic(text) or likeliest_topic(ranking)
        if topic:
            dispatcher.utter_message(response="utter_ask_which_goal", topic=TOPICS[topic].phrase,
                                     buttons=clarification_buttons(ranking, topic))
        else:
            dispatcher.utter_message(response="utter_ask_which_topic", buttons=topic_menu())
        return []


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
            dispatcher.utter_message(response="utter_ask_which_goal", topic=TOPICS[topic].phrase,
                                     buttons=buttons)
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
