"""action_handle_nlu_fallback: a vague message naming a topic gets that topic's goals, never a handoff."""
from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionHandleNluFallback, clarification_buttons, named_topic

RANKING = [{"name": "nlu_fallback", "confidence": 0.4}, {"name": "delete_account", "confidence": 0.38},
           {"name": "account_access", "confidence": 0.36}, {"name": "order_status", "confidence": 0.1}]


def tracker(text, events=()):
    latest = {"text": text, "intent": {"name": "nlu_fallback"}, "intent_ranking": RANKING}
    return Tracker("c", {}, latest, list(events), False, None, {}, "action_listen")


def test_the_topic_a_message_names_is_found_by_its_words():
    assert named_topic("help with my account") == "account"
    assert named_topic("I have a problem with my order") == "order"
    assert named_topic("question about my orders") == "order"
    assert named_topic("something about my subscription") == "subscription"
    assert named_topic("blorf zzkx wibble") is None
    assert named_topic("reorder") is None  # whole words only


def test_a_topic_offers_its_goals_likeliest_first_and_a_person():
    titles = [b["payload"] for b in clarification_buttons(RANKING, "account")]
    assert titles[:2] == ["/delete_account", "/account_access"]
    assert len(titles) == 5 and titles[-1] == "/request_human"
    assert [b["payload"] for b in clarification_buttons(RANKING, None)] == [
        "/delete_account", "/account_access", "/request_human"]


def test_a_vague_first_message_gets_a_clarification_not_a_handoff():
    dispatcher = CollectingDispatcher()
    events = ActionHandleNluFallback().run(dispatcher, tracker("help with my account"), {})
    assert events == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_which_goal" and message["topic"] == "account"
    assert "/account_access" in [b["payload"] for b in message["buttons"]]
