"""Bad input through the REST channel: each gets a sensible reply, nothing crashes, nothing
is lost, and card numbers are never echoed or stored."""
from __future__ import annotations

import pytest
import requests

CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "x" * 10_000,
        "where is my order " * 600,
        "😡😡😡 где мой заказ? 我的订单在哪里? طلبي",
        "<script>alert('hi')</script> where is my order?",
        "'; DROP TABLE orders; -- where is my order",
        "\u0000\u200b\ufeff",
    ],
    ids=["empty", "spaces", "10k-chars", "long-sentence", "emoji-scripts", "html", "sql", "control"],
)
def test_bad_input_gets_a_reply_and_is_stored(stack, sender, text):
    replies = stack.say(sender, text)
    assert replies and all(r.get("text") or r.get("buttons") for r in replies)
    events = stack.tracker(sender)["events"]
    # Rasa strips surrounding white space; everything else is kept as sent.
    assert [e["text"] for e in events if e["event"] == "user"] == [text.strip()]
    assert stack.texts(sender, "hi")  # the conversation goes on


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
    [b"", b"{", b"[]", b'{"sender": "x"}', b'{"message": 42, "sender": {}}', b"\xff\xfe"],
    ids=["empty-body", "broken-json", "list", "no-message", "wrong-types", "binary"],
)
def test_malformed_payloads_get_a_clear_400(stack, body):
    response = requests.post(f"{stack.rasa_url}/webhooks/rest/webhook", data=body,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]
    assert stack.api("/status")["model_id"]  # still serving
