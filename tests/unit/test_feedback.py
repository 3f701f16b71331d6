"""Feedback requests: what a client may send, and what is read from the tracker instead."""
import uuid

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from supportbot import feedback
from supportbot.store import FeedbackStore


@pytest.mark.parametrize("body, error", [
    ([], "JSON object"),
    ({"vote": "up", "message_id": "abc"}, "conversation_id"),
    ({"conversation_id": "", "vote": "up", "message_id": "abc"}, "conversation_id"),
    ({"conversation_id": "c", "vote": "meh", "message_id": "abc"}, "vote"),
    ({"conversation_id": "c", "vote": "up"}, "message_id"),
    ({"conversation_id": "c", "vote": "up", "message_id": "a b<script>"}, "message_id"),
    ({"conversation_id": "c", "vote": "up", "message_id": "abc", "index": -1}, "index"),
    ({"conversation_id": "c", "vote": "up", "message_id": "abc", "index": "0"}, "index"),
    ({"conversation_id": "c", "vote": "up", "message_id": "abc", "index": True}, "index"),
    ({"conversation_id": "c", "rating": 6}, "rating"),
    ({"conversation_id": "c", "rating": 4.5}, "rating"),
    ({"conversation_id": "c", "rating": True}, "rating"),
])
def test_malformed_requests_say_what_is_wrong(body, error):
    with pytest.raises(feedback.FeedbackError, match=error):
        feedback.parse(body)


def test_parse_vote_and_rating():
    assert feedback.parse({"conversation_id": "c", "message_id": "m1", "index": 2, "vote": "down"}) == \
        feedback.FeedbackRequest("c", "answer", -1, "m1", 2)
    rating = feedback.parse({"conversation_id": "c", "rating": 5})
    assert rating == feedback.FeedbackRequest("c", "conversation", 5)


def conversation():
    return [
        UserUttered("hi", {"name": "greet", "confidence": 0.98}, message_id="m1"),
        BotUttered("Hello!"), BotUttered("How can I help?"),
        SlotSet("customer_id", "C-1001"), SlotSet("customer_verified", True),
        ActionExecuted("action_listen"),
        UserUttered("where is my order", {"name": "order_status", "confidence": 0.91}, message_id="m2"),
        BotUttered("What's the order number?"),
    ]


def test_intent_confidence_and_texts_come_from_the_tracker():
    wanted = feedback.parse({"conversation_id": "c", "message_id": "m1", "index": 1, "vote": "up"})
    assert feedback.details_from_events(wanted, conversation()) == {
        "user_text": "hi", "bot_text": "How can I help?", "intent": "greet", "confidence": 0.98,
        "customer_id": "C-1001",
    }


@pytest.mark.parametrize("message_id, index", [("m1", 2), ("m3", 0), ("m2", 1)])
def test_answers_not_in_the_conversation_are_unknown(message_id, index):
    wanted = feedback.FeedbackRequest("c", "answer", 1, message_id, index)
    with pytest.raises(feedback.UnknownMessage):
        feedback.details_from_events(wanted, conversation())


@pytest.fixture
def store(db_url):
    return FeedbackStore(db_url)


def test_one_row_per_answer_and_the_last_vote_counts(store):
    conversation_id = f"c-{uuid.uuid4().hex}"
    details = {"user_text": "hi", "bot_text": "Hello! 😀", "intent": "greet", "confidence": 0.98}
    first, created = store.save(conversation_id=conversation_id, kind="answer", value=1, message_id="m1",
                                **details)
    again, created_again = store.save(conversation_id=conversation_id, kind="answer", value=1, message_id="m1",
                                      **details)
    changed, _ = store.save(conversation_id=conversation_id, kind="answer", value=-1, message_id="m1", **details)
    store.save(conversation_id=conversation_id, kind="conversation", value=4)
    assert (created, created_again) == (True, False)
    assert first.id == again.id == changed.id
    rows = store.list(conversation_id)
    assert [(r.kind, r.value, r.intent, r.bot_text) for r in rows] == [
        ("answer", -1, "greet", "Hello! 😀"), ("conversation", 4, None, None)]
    assert rows[0].confidence == pytest.approx(0.98)
