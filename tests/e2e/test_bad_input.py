"""Bad input through the REST channel: each gets a sensible reply or a clear 400, nothing
crashes, nothing is lost, an over-long message is answered without being processed or stored,
no conversation is shared by accident, and card numbers are never echoed or stored."""
from __future__ import annotations

import json
import sqlite3
import time
import uuid

import pytest
import requests

from supportbot.channels import TOO_LONG, Limits

CARD = "4111 1111 1111 1111"


def post(stack, body) -> requests.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{stack.rasa_url}/webhooks/rest/webhook", data=raw,
                         headers={"Content-Type": "application/json"}, timeout=60)


def user_texts(stack, sender: str):
    return [e["text"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]


def still_answers(stack) -> bool:
    return bool(stack.texts(f"after-{uuid.uuid4().hex[:8]}", "hi"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "where is my order " * 100,
        "😡😡😡 где мой заказ? 我的订单在哪里? طلبي",
        "<script>alert('hi')</script> where is my order?",
        "'; DROP TABLE orders; -- where is my order",
        "\u0000\u200b\ufeff",
    ],
    ids=["empty", "spaces", "long-sentence", "emoji-scripts", "html", "sql", "control"],
)
def test_bad_input_gets_a_reply_and_is_stored(stack, sender, text):
    replies = stack.say(sender, text)
    assert replies and all(r.get("text") or r.get("buttons") for r in replies)
    # Rasa strips surrounding white space; everything else is kept as sent.
    assert user_texts(stack, sender) == [text.strip()]
    assert stack.texts(sender, "hi")  # the conversation goes on


def test_a_message_at_the_cap_is_processed(stack, sender):
    limit = Limits.from_env(stack.env).message_chars
    text = ("where is my order " * limit)[:limit]
    assert stack.say(sender, text)
    assert user_texts(stack, sender) == [text.strip()]


@pytest.mark.parametrize(
    "text",
    ["x" * 10_000, "where is my order " * 600, "a " * 50_000, "x" * 1_000_000],
    ids=["10k-chars", "long-sentence-10k", "100k-words", "1M-chars"],
)
def test_an_over_long_message_gets_the_too_long_reply_and_is_not_stored(stack, sender, text):
    limit = Limits.from_env(stack.env).message_chars
    started = time.monotonic()
    replies = stack.say(sender, text)
    assert time.monotonic() - started < 5  # refused before any parsing
    assert replies == [{"recipient_id": sender, "text": TOO_LONG.format(length=len(text.strip()), limit=limit)}]
    assert f"({len(text.strip()):,} characters)" in replies[0]["text"]
    assert user_texts(stack, sender) == []
    assert stack.texts(sender, "hi")  # the conversation goes on
    assert user_texts(stack, sender) == ["hi"]


def test_a_lone_surrogate_becomes_a_replacement_character_and_gets_an_answer(stack, sender):
    # json.dumps writes a lone surrogate as the escape "\\ud800", as a broken client would.
    body = {"sender": sender, "message": "hi \ud800 there", "metadata": {"page": {"path": "/\udfff"}}}
    response = post(stack, body)
    assert response.status_code == 200, response.text
    assert response.json() and all(r.get("text") or r.get("buttons") for r in response.json())
    [user] = [e for e in stack.tracker(sender)["events"] if e["event"] == "user"]
    assert user["text"] == "hi \ufffd there" and user["metadata"]["page"]["path"] == "/\ufffd"


def test_card_number_is_masked_everywhere(stack, sender):
    replies = stack.texts(sender, f"my card is {CARD} exp 12/29, can you update it?")
    assert "removed a card number" in replies
    assert CARD not in replies and "4111111111111111" not in replies
    tracker_text = str(stack.tracker(sender))
    assert "4111111111111111" not in tracker_text and CARD not in tracker_text
    assert "card number ending 1111" in tracker_text
    stored = stack.stored_text()
    assert "4111111111111111" not in stored and CARD not in stored
    for log in stack.log_dir.glob("*.log"):
        assert CARD not in log.read_text(errors="replace")


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'{"sender": "x"}', b'{"message": 42, "sender": {}}', b"\xff\xfe",
     b"[" * 1000 + b"]" * 1000,
     b'{"sender": "deep", "message": "hi", "metadata": ' + b"[" * 1000 + b"]" * 1000 + b"}",
     {"sender": "deep", "message": "hi", "metadata": {"a": json.loads("[" * 40 + "]" * 40)}},
     {"sender": "big", "message": "hi", "metadata": {"x": "y" * 9_000}},
     {"sender": "list", "message": "hi", "metadata": ["not", "an", "object"]},
     {"message": "where is my order 4817263"},
     {"sender": "", "message": "hi"}, {"sender": "  ", "message": "hi"},
     {"sender": "s" * 129, "message": "hi"}, {"sender": "s" * 300_000, "message": "hi"},
     {"sender": "a\u0000b", "message": "hi"}, {"sender": "a\nb", "message": "hi"},
     {"sender": "a\u200bb", "message": "hi"}, {"sender": "x\ud800", "message": "hi"},
     {"sender": "web-" + "0" * 32, "message": "hi"}, {"sender": "T1:C1:1712345678.0001", "message": "hi"},
     {"sender": "x", "message": "hi", "input_channel": 5}],
    ids=["empty-body", "broken-json", "list", "no-message", "wrong-types", "binary", "nested-1000",
         "metadata-nested-1000", "metadata-nested-40", "metadata-9kB", "metadata-list", "no-sender",
         "empty-sender", "blank-sender", "sender-129", "sender-300k", "sender-nul", "sender-newline",
         "sender-zero-width", "sender-surrogate", "web-session-sender", "slack-thread-sender",
         "input-channel-number"],
)
def test_malformed_payloads_get_a_clear_400(stack, body):
    response = post(stack, body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert stack.api("/status")["model_id"]  # still serving
    assert still_answers(stack)


def test_nothing_lands_in_a_shared_or_oversized_conversation(stack):
    limit = Limits.from_env(stack.env).sender_id_chars
    for body in ({"message": "where is my order 4817263"}, {"sender": "s" * 300_000, "message": "hi"}):
        assert post(stack, body).status_code == 400
    assert user_texts(stack, "default") == []
    with sqlite3.connect(stack.tracker_db) as connection:
        [oversized] = connection.execute("SELECT count(*) FROM events WHERE length(sender_id) > ?",
                                         (limit,)).fetchone()
    assert oversized == 0
