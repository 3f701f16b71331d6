"""POST /webhooks/socketio/feedback on the real Rasa server: validation, the session key,
idempotency, and intent/confidence read from the tracker, not from the client."""
from __future__ import annotations

import pytest
import requests

from supportbot.channels import SessionKeys, session_secret
from supportbot.store import FeedbackStore

pytestmark = pytest.mark.slow


def feedback_url(stack) -> str:
    return f"{stack.rasa_url}/webhooks/socketio/feedback"


def key(stack, conversation_id: str) -> dict:
    """The X-Session-Key header the widget sends: the key the socket.io channel gives the
    client that opened a session. These conversations are opened over REST, so the test
    issues it with the stack's secret."""
    return {"X-Session-Key": SessionKeys(session_secret(stack.env)).issue(conversation_id, None)}


def last_user_message_id(stack, sender: str) -> str:
    events = stack.tracker(sender)["events"]
    return [e for e in events if e["event"] == "user"][-1]["message_id"]


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"conversation_id": 5, "vote": "up", "message_id": "x"}',
    b'{"conversation_id": "c", "vote": "sideways", "message_id": "x"}',
    b'{"conversation_id": "c", "rating": 11}', b"",
])
def test_malformed_feedback_is_a_400(stack, body):
    response = requests.post(feedback_url(stack), data=body, headers={"Content-Type": "application/json"},
                             timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_vote_is_stored_once_with_the_trackers_intent(stack, sender):
    stack.say(sender, "hello")
    message_id = last_user_message_id(stack, sender)
    # The client's own "intent" and "confidence" are ignored: the tracker's are stored.
    vote = {"conversation_id": sender, "message_id": message_id, "index": 0, "vote": "down",
            "intent": "forged", "confidence": 1.0}
    first = requests.post(feedback_url(stack), json=vote, headers=key(stack, sender), timeout=10)
    second = requests.post(feedback_url(stack), json=vote, headers=key(stack, sender), timeout=10)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    rows = FeedbackStore(stack.store_db_url).list(sender)
    assert len(rows) == 1
    parse = [e for e in stack.tracker(sender)["events"] if e["event"] == "user"][-1]["parse_data"]
    assert (rows[0].value, rows[0].user_text, rows[0].intent) == (-1, "hello", parse["intent"]["name"])
    assert rows[0].confidence == pytest.approx(parse["intent"]["confidence"])
    assert rows[0].bot_text


def test_unknown_answers_and_conversations_are_a_404(stack, sender):
    stack.say(sender, "hello")
    message_id = last_user_message_id(stack, sender)
    for body in ({"conversation_id": sender, "message_id": message_id, "index": 40, "vote": "up"},
                 {"conversation_id": sender, "message_id": "nope", "vote": "up"},
                 {"conversation_id": sender + "-other", "message_id": message_id, "vote": "up"},
                 {"conversation_id": sender + "-other", "rating": 3}):
        answer = requests.post(feedback_url(stack), json=body, headers=key(stack, body["conversation_id"]),
                               timeout=10)
        assert answer.status_code == 404, body


def test_feedback_needs_the_conversations_session_key(stack, sender):
    stack.say(sender, "hello")
    vote = {"conversation_id": sender, "message_id": last_user_message_id(stack, sender), "index": 0,
            "vote": "up"}
    for headers in ({}, key(stack, sender + "-other"), {"X-Session-Key": "anon.forged"}):
        response = requests.post(feedback_url(stack), json=vote, headers=headers, timeout=10)
        assert response.status_code == 403 and response.json()["error"]
    assert FeedbackStore(stack.store_db_url).list(sender) == []


def test_satisfaction_rating_once_per_conversation(stack, sender):
    stack.say(sender, "hello")
    for rating, status in ((2, 201), (5, 200)):
        response = requests.post(feedback_url(stack), json={"conversation_id": sender, "rating": rating},
                                 headers=key(stack, sender), timeout=10)
        assert response.status_code == status
    rows = FeedbackStore(stack.store_db_url).list(sender)
    assert [(r.kind, r.value) for r in rows] == [("conversation", 5)]


def test_feedback_from_the_demo_store_origin_passes_cors(stack):
    store = f"http://127.0.0.1:{stack.demo_port}"  # the origin the stack allows
    preflight = requests.options(feedback_url(stack), timeout=10, headers={
        "Origin": store, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-session-key"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers.get("Access-Control-Allow-Origin") == store
    assert "x-session-key" in preflight.headers.get("Access-Control-Allow-Headers", "").lower()
