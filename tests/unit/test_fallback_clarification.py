"""Clarifications (actions/fallback.py): a vague message naming a topic gets that topic's goals,
never a flow and never a handoff, whether NLU read it as ask_about_topic or was unsure."""
from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import (
    ActionClarifyTopic,
    ActionHandleNluFallback,
    clarification_buttons,
    likeliest_topic,
    misspelt_topic,
    named_topic,
)

RANKING = [{"name": "nlu_fallback", "confidence": 0.4}, {"name": "delete_account", "confidence": 0.38},
           {"name": "account_access", "confidence": 0.36}, {"name": "order_status", "confidence": 0.1}]
TOPIC_RANKING = [{"name": "ask_about_topic", "confidence": 0.9}, {"name": "change_plan", "confidence": 0.04},
                 {"name": "cancel_subscription", "confidence": 0.03}, {"name": "order_status", "confidence": 0.02}]


def tracker(text, events=(), intent="nlu_fallback", ranking=RANKING, entities=()):
    latest = {"text": text, "intent": {"name": intent}, "intent_ranking": ranking, "entities": list(entities)}
    return Tracker("c", {}, latest, list(events), False, None, {}, "action_listen")


def payloads(message):
    return [b["payload"] for b in message["buttons"]]


def test_the_topic_a_message_names_is_found_by_its_words():
    assert named_topic("help with my account") == "account"
    assert named_topic("I have a problem with my order") == "order"
    assert named_topic("question about my orders") == "order"
    assert named_topic("something about my subscription") == "subscription"
    assert named_topic("help with billing") == "payment"
    assert named_topic("a question about a refund for my order") == "refund"  # the narrower topic
    assert named_topic("blorf zzkx wibble") is None
    assert named_topic("reorder") is None  # whole words only


def test_a_misspelt_topic_is_found_but_real_words_near_one_are_not():
    assert [misspelt_topic(t) for t in ("biling", "membersip question", "oder help", "refnd", "accnt")] == [
        "payment", "subscription", "order", "refund", "account"]
    assert misspelt_topic("I have a question") is None
    assert misspelt_topic("change stuff") is None


def test_a_topic_no_word_names_comes_from_the_ranking():
    assert likeliest_topic(TOPIC_RANKING) == "subscription"
    assert likeliest_topic([{"name": "ask_about_topic", "confidence": 1.0}]) is None
    tie = [{"name": "payment_problem", "confidence": 0.01}]  # a goal of two topics
    assert likeliest_topic(tie) is None


def test_a_topic_offers_its_goals_likeliest_first_something_else_and_a_person():
    titles = [b["payload"] for b in clarification_buttons(RANKING, "account")]
    assert titles[:2] == ["/delete_account", "/account_access"]
    assert len(titles) == 6 and titles[-2:] == ['/ask_about_topic{"topic": "other"}', "/request_human"]
    assert [b["payload"] for b in clarification_buttons(RANKING, None)] == [
        "/delete_account", "/account_access", "/request_human"]


def test_a_vague_first_message_gets_a_clarification_not_a_handoff():
    dispatcher = CollectingDispatcher()
    events = ActionHandleNluFallback().run(dispatcher, tracker("help with my account"), {})
    assert events == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_which_goal" and message["topic"] == "your account"
    assert "/account_access" in payloads(message)


def test_ask_about_topic_offers_the_named_topics_goals_and_never_hands_off():
    dispatcher = CollectingDispatcher()
    events = ActionClarifyTopic().run(dispatcher, tracker("billing", intent="ask_about_topic",
                                                          ranking=TOPIC_RANKING), {})
    assert events == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_which_goal" and message["topic"] == "billing and payments"
    assert payloads(message)[:4] == ["/payment_problem", "/get_invoice", "/dispute_charge",
                                     "/update_payment_method"]
    assert payloads(message)[-1] == "/request_human"


def test_ask_about_topic_with_a_typo_still_finds_the_topic():
    dispatcher = CollectingDispatcher()
    ActionClarifyTopic().run(dispatcher, tracker("subscriptn stuff", intent="ask_about_topic",
                                                 ranking=TOPIC_RANKING), {})
    [message] = dispatcher.messages
    assert message["topic"] == "your subscription" and payloads(message)[0] == "/change_plan"


def test_a_button_topic_wins_and_something_else_lists_the_topics():
    button = [{"entity": "topic", "value": "account"}]
    dispatcher = CollectingDispatcher()
    ActionClarifyTopic().run(dispatcher, tracker("/ask_about_topic", intent="ask_about_topic",
                                                 ranking=[], entities=button), {})
    [message] = dispatcher.messages
    assert message["topic"] == "your account" and "/delete_account" not in payloads(message)
    dispatcher = CollectingDispatcher()
    ActionClarifyTopic().run(dispatcher, tracker("/ask_about_topic", intent="ask_about_topic", ranking=[],
                                                 entities=[{"entity": "topic", "value": "other"}]), {})
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_which_topic"
    assert '/ask_about_topic{"topic": "refund"}' in payloads(message) and payloads(message)[-1] == "/request_human"


def test_a_vague_topic_after_an_unclear_message_is_still_no_handoff():
    events = [{"event": "user", "text": "blorf"}, {"event": "action", "name": "action_handle_nlu_fallback"},
              {"event": "action", "name": "action_listen"}, {"event": "user", "text": "acount"}]
    dispatcher = CollectingDispatcher()
    clarify = tracker("acount", events, "ask_about_topic", TOPIC_RANKING)
    assert ActionClarifyTopic().run(dispatcher, clarify, {}) == []
    assert dispatcher.messages[0]["topic"] == "your account"


def test_ask_about_topic_naming_no_topic_lists_the_topics():
    dispatcher = CollectingDispatcher()
    ActionClarifyTopic().run(dispatcher, tracker("I have a question", intent="ask_about_topic",
                                                 ranking=[{"name": "ask_about_topic", "confidence": 0.9}]), {})
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_which_topic" and len(message["buttons"]) == 6
