"""Locust scenarios for the bounded load test (`python -m supportbot.benchmark.load`, which passes
--load-log and runs Locust headless with a user count and run time, so it stops by itself).

Each simulated customer holds whole conversations, half over REST and half over socket.io:
order status with verification, the refund form up to a confirmed refund, FAQs, and a handoff
to a person. Each turn is one Locust request named `<channel> <scenario> <step>`; every
conversation held is appended to the --load-log file for the checker (checker.py).
"""
from __future__ import annotations

import json
import queue
import re
import time
import uuid
from typing import List, Optional

import socketio
from locust import HttpUser, between, events, task

from supportbot.benchmark.load.checker import Conversation

SCENARIOS = {
    "order_status": ["where is my order 4817263", "alice@example.com", "thanks"],
    # Bob's order is 499.00: refunds of 20 stay under the automatic limit until the order is used up.
    "refund": ["refund for order 5529002 please", "bob@example.com", "$20", "wrong colour", "yes please"],
    "faq": ["hi", "how long does delivery take?", "which payment methods do you take?", "thanks"],
    "handoff": ["hi", "I want to talk to a real person"],
}
REFUND_DONE = re.compile(r"Done: refund (R-\d+)")
TURN_TIMEOUT = 120


@events.init_command_line_parser.add_listener
def _load_log_option(parser) -> None:
    parser.add_argument("--load-log", required=True, help="the file each conversation held is appended to")


def log(conversation: Conversation, path: str) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(conversation.__dict__) + "\n")


class Customer(HttpUser):
    wait_time = between(0.5, 2)

    def hold(self, scenario: str, channel: str) -> None:
        send = self.rest_turn if channel == "rest" else self.socket_turn
        conversation = Conversation(sender="", channel=channel, scenario=scenario)
        sio = None
        if channel == "rest":
            conversation.sender = f"load-{uuid.uuid4().hex[:16]}"
        else:
            sio, conversation.sender = self.socket_session()
        try:
            for step, text in enumerate(SCENARIOS[scenario], 1):
                conversation.in_flight = text
                texts = send(conversation, sio, text, f"{channel} {scenario} {step}")
                conversation.in_flight = None
                if texts is None:
                    return  # failed turn: the rest of the script would not make sense
                conversation.sent.append(text)
                conversation.refunds += REFUND_DONE.findall(texts)
        finally:
            if sio is not None:
                sio.disconnect()
            log(conversation, self.environment.parsed_options.load_log)

    def rest_turn(self, conversation: Conversation, _: None, text: str, name: str) -> Optional[str]:
        with self.client.post("/webhooks/rest/webhook", json={"sender": conversation.sender, "message": text},
                              name=name, timeout=TURN_TIMEOUT, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return None
            return "\n".join(m.get("text") or "" for m in response.json())

    def socket_session(self) -> tuple:
        client = socketio.Client(reconnection=False)
        inbox: queue.Queue = queue.Queue()
        for event in ("session_confirm", "bot_uttered", "bot_turn_done"):
            client.on(event, lambda data=None, event=event: inbox.put((event, data)))
        # Long polling: the websocket transport needs websocket-client, which Rasa does not install.
        client.connect(self.host, transports=["polling"], wait_timeout=30)
        client.emit("session_request", {})
        name, data = inbox.get(timeout=30)
        client.inbox = inbox
        return client, data["session_id"]

    def socket_turn(self, conversation: Conversation, client: socketio.Client, text: str,
                    name: str) -> Optional[str]:
        started = time.perf_counter()
        client.emit("user_uttered", {"session_id": conversation.sender, "message": text})
        texts: List[str] = []
        exception = None
        try:
            while True:
                event, data = client.inbox.get(timeout=TURN_TIMEOUT)
                if event == "bot_uttered":
                    texts.append((data or {}).get("text") or "")
                elif event == "bot_turn_done":
                    break
        except queue.Empty:
            exception = TimeoutError(f"no bot_turn_done within {TURN_TIMEOUT} s")
        self.environment.events.request.fire(
            request_type="socketio", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=sum(map(len, texts)), exception=exception, context={})
        return None if exception else "\n".join(texts)

    @task(3)
    def order_status_rest(self) -> None:
        self.hold("order_status", "rest")

    @task(3)
    def order_status_socketio(self) -> None:
        self.hold("order_status", "socketio")

    @task(2)
    def refund_rest(self) -> None:
        self.hold("refund", "rest")

    @task(1)
    def refund_socketio(self) -> None:
        self.hold("refund", "socketio")

    @task(3)
    def faq_rest(self) -> None:
        self.hold("faq", "rest")

    @task(3)
    def faq_socketio(self) -> None:
        self.hold("faq", "socketio")

    @task(1)
    def handoff_rest(self) -> None:
        self.hold("handoff", "rest")

    @task(1)
    def handoff_socketio(self) -> None:
        self.hold("handoff", "socketio")
