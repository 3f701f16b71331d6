"""A promoted model goes into the running Rasa server through its HTTP API (`PUT /model`), with no
restart and no conversation lost: slots set before the swap are there after it."""
from __future__ import annotations

import shutil
import threading
import time

import requests

from supportbot.learning import retrain


def test_swap_loads_the_model_without_losing_the_conversation(stack, sender, model, api_token, tmp_path):
    first = stack.texts(sender, "where is my order 4817263")
    assert "email" in first.lower()
    promoted = tmp_path / "promoted.tar.gz"
    shutil.copy2(model, promoted)
    # A second conversation keeps talking while the model loads: it is held, not dropped.
    other, answers = f"{sender}-other", []
    talker = threading.Thread(target=lambda: answers.append(stack.texts(other, "hello")))
    started = time.monotonic()
    talker.start()
    outcome = retrain.swap([stack.rasa_url], promoted, api_token)
    talker.join(timeout=120)
    assert outcome[stack.rasa_url].endswith(" s"), outcome
    assert answers and answers[0], "the message sent during the swap got no answer"
    status = requests.get(f"{stack.rasa_url}/status", params={"token": api_token}, timeout=30).json()
    assert status["model_file"].endswith("promoted.tar.gz")
    # The conversation goes on where it was: the order id asked about before the swap is kept.
    answer = stack.texts(sender, "alice@example.com")
    assert "Order 4817263" in answer, answer
    assert time.monotonic() - started < 300


def test_swap_with_a_wrong_token_is_refused_and_said(stack, model):
    outcome = retrain.swap([stack.rasa_url], model, "not-the-token")
    assert outcome[stack.rasa_url].startswith("failed: HTTP 401"), outcome
