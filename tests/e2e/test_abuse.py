"""A bounded abuse run against the real stack (loopback only; stops by itself).

Normal conversations run alone first (the baseline), then again while hostile clients send the
payloads the security probe used: huge messages and sender ids, deep JSON, lone surrogates,
missing senders, oversized metadata, card numbers in every format, forged action calls,
unauthenticated billing calls and verification guessing. Afterwards every normal conversation
must have had its replies, their p95 within 2x the baseline's, no test card number in any store
or log, and every server healthy. docs/security.md explains the probes.
"""
from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List

import pytest
import requests
from card_leaks import card_numbers_in

pytestmark = pytest.mark.slow

NORMAL_CONVERSATIONS = 100
HOSTILE_CONVERSATIONS = 100
CLIENTS = 16  # concurrent HTTP clients
NORMAL_SCRIPT = ["hi", "what payment methods do you accept?", "thanks, bye"]
PANS = ["4111111111111111", "2223003122003222", "378282246310005"]  # Visa, Mastercard, Amex


def _grouped(pan: str, separator: str) -> str:
    return separator.join(pan[i:i + 4] for i in range(0, len(pan), 4))


CARD_MESSAGES = [
    f"my card is {_grouped(PANS[0], '.')}", f"card {_grouped(PANS[1], chr(0xA0))} please",
    f"{_grouped(PANS[0], ' - ')} exp 12/29", f"number {_grouped(PANS[1], '/')}",
    f"{_grouped(PANS[0], '_')}", f"card:\t{_grouped(PANS[1], chr(9))}", f"{_grouped(PANS[0], chr(10))}",
    f"{PANS[2]} 123", f"{PANS[0]}123", f"use {_grouped(PANS[1], '  ')} thanks",
]


def _post(stack, body, raw: bool = False, timeout: float = 120) -> requests.Response:
    url = f"{stack.rasa_url}/webhooks/rest/webhook"
    if raw:
        return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout)
    return requests.post(url, json=body, timeout=timeout)


def _normal(stack, sender: str) -> List[float]:
    seconds = []
    for text in NORMAL_SCRIPT:
        started = time.monotonic()
        replies = _post(stack, {"sender": sender, "message": text}).json()
        seconds.append(time.monotonic() - started)
        assert replies and all(r.get("text") or r.get("buttons") for r in replies), (sender, text)
    return seconds


def _hostile_payloads(stack) -> List[Callable[[], object]]:
    def new() -> str:
        return f"hostile-{uuid.uuid4().hex[:10]}"

    deep = ('{"sender": "deep", "message": "hi", "metadata": ' + "[" * 1000 + "]" * 1000 + "}").encode()
    verify = [(f"guess{n}@example.com", "4817263") for n in range(3)]
    probes: List[Callable[[], object]] = [
        lambda: _post(stack, {"sender": new(), "message": "a " * 50_000}),
        lambda: _post(stack, {"sender": new(), "message": "x" * 1_000_000}),
        lambda: _post(stack, {"sender": "s" * 300_000, "message": "hi"}),
        lambda: _post(stack, deep, raw=True),
        lambda: _post(stack, b'{"sender": "surrogate", "message": "hi \\ud800 there"}', raw=True),
        lambda: _post(stack, {"message": "where is my order 4817263"}),
        lambda: _post(stack, {"sender": new(), "message": "hi", "metadata": {"x": "y" * 200_000}}),
        lambda: _post(stack, {"sender": new(), "message": "hi", "metadata": {"note": f"card {PANS[0]}"}}),
        lambda: requests.post(f"{stack.actions_url}/webhook", json={"next_action": "action_create_refund"},
                              timeout=30),
        lambda: requests.get(f"{stack.billing_url}/customers/C-1001/orders", timeout=30),
        lambda: [_post(stack, {"sender": s, "message": m})
                 for s in [new()] for step in verify for m in ("what's the status of my tickets?", *step)],
    ]
    for text in CARD_MESSAGES:
        probes.append(lambda text=text: _post(stack, {"sender": new(), "message": text}))
    split_sender = new()
    probes.append(lambda: [_post(stack, {"sender": split_sender, "message": part})
                           for part in (f"my card is {PANS[0][:8]}", PANS[0][8:])])
    return probes


def _p95(values: List[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def _run_normal(stack, pool: ThreadPoolExecutor, tag: str) -> List:
    return [pool.submit(_normal, stack, f"{tag}-{n}-{uuid.uuid4().hex[:6]}") for n in range(NORMAL_CONVERSATIONS)]


def test_hostile_traffic_leaves_normal_conversations_answered(stack):
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        baseline = [s for f in _run_normal(stack, pool, "base") for s in f.result()]
    probes = _hostile_payloads(stack)
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        hostile = [pool.submit(probes[n % len(probes)]) for n in range(HOSTILE_CONVERSATIONS)]
        normal = _run_normal(stack, pool, "mixed")
        mixed = [s for f in normal for s in f.result()]  # raises if any normal reply was missing
        for future in hostile:
            future.result()  # a hostile client may get a 4xx; none may crash the test's client
    base_p95, mixed_p95 = _p95(baseline), _p95(mixed)
    print(f"\nnormal replies: baseline p95 {base_p95:.3f}s, with hostile traffic p95 {mixed_p95:.3f}s "
          f"(ratio {mixed_p95 / base_p95:.2f})")
    assert mixed_p95 <= 2 * base_p95
    for name, url in (("billing", f"{stack.billing_url}/health"), ("actions", f"{stack.actions_url}/health"),
                      ("rasa", f"{stack.rasa_url}/webhooks/rest/")):
        assert requests.get(url, timeout=10).ok, name
    assert stack.texts(f"after-{uuid.uuid4().hex[:6]}", "hi")
    assert not card_numbers_in(stack.log_dir)
    with sqlite3.connect(stack.tracker_db) as connection:
        [longest] = connection.execute("SELECT max(length(sender_id)) FROM events").fetchone()
    assert longest <= 128  # no 300,000-character sender id was stored
