"""Web chat sessions on the real Rasa server's socket.io channel (docs/web-widget.md#sessions):
a session belongs to the client it was issued to (its session key) and, when opened with a
signed token, to that customer; nobody else joins it, sends into it, reads its replies or
uses its feedback and state endpoints; only the allowed origins connect; and the channel's
limits apply as on REST."""
from __future__ import annotations

import json
import queue
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests
import socketio
from socketio.exceptions import ConnectionError as SocketIOConnectionError

from supportbot.channels import TOO_LONG, Limits, SessionKeys, allowed_origins, session_secret
from supportbot.identity import issue_token

pytestmark = pytest.mark.slow

EVENTS = ("session_confirm", "bot_uttered", "bot_turn_done", "request_refused")


class Chat:
    """One socket.io client of the Rasa server that records every event it receives."""

    def __init__(self, url: str, origin: Optional[str] = None) -> None:
        self.client = socketio.Client(reconnection=False)
        self.inbox: queue.Queue[Tuple[str, Any]] = queue.Queue()
        self.received: List[Tuple[str, Any]] = []
        for name in EVENTS:
            self.client.on(name, lambda data=None, name=name: self.inbox.put((name, data)))
        self.client.connect(url, headers={"Origin": origin} if origin else {}, wait_timeout=10)

    def next(self, wanted: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                name, data = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {wanted} within {timeout} s; received {self.received}") from None
            self.received.append((name, data))
            if name == wanted:
                return data

    def session(self, **request: Any) -> Dict[str, str]:
        self.client.emit("session_request", request)
        return self.next("session_confirm", timeout=10)

    def send(self, session_id: str, text: str, metadata: Optional[Dict[str, Any]] = None,
             message_id: Optional[str] = None) -> None:
        packet = {"session_id": session_id, "message": text, "metadata": metadata or {}}
        self.client.emit("user_uttered", {**packet, "message_id": message_id} if message_id else packet)

    def turn(self, session_id: str, text: str, **kwargs: Any) -> List[Dict[str, Any]]:
        """Send a message and return the bot messages up to the channel's bot_turn_done."""
        start = len(self.received)
        self.send(session_id, text, **kwargs)
        self.next("bot_turn_done")
        return [data for name, data in self.received[start:] if name == "bot_uttered"]

    def drain(self, seconds: float = 1.0) -> List[Tuple[str, Any]]:
        """Everything received so far, after waiting `seconds` for stragglers."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.received.append(self.inbox.get(timeout=0.1))
            except queue.Empty:
                pass
        return self.received

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def chats(stack):
    """Make clients of the stack's Rasa server; all are closed after the test."""
    opened: List[Chat] = []

    def chat(origin: Optional[str] = None) -> Chat:
        opened.append(Chat(stack.rasa_url, origin))
        return opened[-1]

    yield chat
    for client in opened:
        client.close()


def user_texts(stack, session_id: str) -> List[str]:
    return [e["text"] for e in stack.tracker(session_id)["events"] if e["event"] == "user"]


def bot_texts(messages: List[Dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def test_a_second_client_without_the_key_gets_its_own_session(stack, chats):
    first = chats()
    session = first.session(session_id=None)
    assert session["session_id"].startswith("web-") and session["session_key"]
    intruder = chats()
    for attempt in ({"session_id": session["session_id"]},
                    {"session_id": session["session_id"], "session_key": "anon." + "0" * 64},
                    {"session_id": session["session_id"], "session_key": session["session_key"] + "x"}):
        other = intruder.session(**attempt)
        assert other["session_id"] != session["session_id"]
        assert other["session_key"] != session["session_key"]

    assert first.turn(session["session_id"], "hello")
    # The intruder, still connected, never hears the first session's answers ...
    assert [name for name, _ in intruder.drain(1.5) if name in ("bot_uttered", "bot_turn_done")] == []
    # ... and cannot send into it (a user_uttered for a session this socket was not given).
    intruder.send(session["session_id"], "where is my order 4817263")
    assert "session_request" in intruder.next("request_refused", timeout=10)["error"]
    assert user_texts(stack, session["session_id"]) == ["hello"]


def test_a_reload_with_the_key_rejoins_the_conversation(stack, chats):
    first = chats()
    session = first.session(session_id=None)
    assert first.turn(session["session_id"], "hello")
    first.close()

    reloaded = chats()
    assert reloaded.session(**session) == session
    assert reloaded.turn(session["session_id"], "what payment methods do you accept?")
    assert user_texts(stack, session["session_id"]) == ["hello", "what payment methods do you accept?"]


def test_a_signed_in_customers_session_is_theirs_alone(stack, chats, identity_secret):
    alice, bob = (issue_token(customer, identity_secret) for customer in ("C-1001", "C-1002"))
    owner = chats()
    session = owner.session(session_id=None, customer_token=alice)
    for token in (bob, None, issue_token("C-1001", "a-forged-signature-secret-of-32b!")):
        other = chats().session(**session, customer_token=token)
        assert other["session_id"] != session["session_id"], token
    # The same customer, with a new token (the host page signs one per page load), rejoins.
    again = chats()
    assert again.session(**session, customer_token=issue_token("C-1001", identity_secret)) == session
    # Within the session, a message carrying another customer's token is refused.
    again.send(session["session_id"], "where is my order", metadata={"customer_token": bob})
    assert "someone else" in again.next("request_refused", timeout=10)["error"]
    assert "4817263" in bot_texts(again.turn(session["session_id"], "where is my order 4817263",
                                             metadata={"customer_token": alice}))


def test_messages_need_a_session_the_socket_was_confirmed_for(stack, chats):
    lone = chats()
    lone.send("web-" + "0" * 32, "hello")  # never asked for a session
    assert lone.next("request_refused", timeout=10)["error"]
    session = lone.session(session_id=None)
    lone.send("web-" + "1" * 32, "hello")  # a session, but not this one
    assert lone.next("request_refused", timeout=10)["error"]
    for unknown in ("web-" + "0" * 32, "web-" + "1" * 32):
        assert user_texts(stack, unknown) == []
    assert lone.turn(session["session_id"], "hello")


def test_an_invalid_session_id_gets_a_new_session(chats):
    client = chats()
    for wanted in ("s" * 300, "a\u0000b", 42, ["x"]):
        assert client.session(session_id=wanted)["session_id"].startswith("web-")


def test_over_long_message_gets_the_too_long_reply_and_is_not_stored(stack, chats):
    limit = Limits.from_env(stack.env).message_chars
    client = chats()
    session_id = client.session()["session_id"]
    started = time.monotonic()
    replies = client.turn(session_id, "a " * 50_000)
    assert time.monotonic() - started < 5
    assert [m["text"] for m in replies] == [TOO_LONG.format(length=len(("a " * 50_000).strip()), limit=limit)]
    assert user_texts(stack, session_id) == []
    assert client.turn(session_id, "x" * limit)  # at the cap: processed
    assert client.turn(session_id, "hello")
    assert user_texts(stack, session_id) == ["x" * limit, "hello"]


def test_a_retried_message_is_answered_once_and_its_answer_sent_again(stack, chats):
    """The widget's "Not delivered — Retry" sends the same message_id: one turn, the same answer."""
    client = chats()
    session_id = client.session()["session_id"]
    first = client.turn(session_id, "what payment methods do you accept?", message_id="c-0a1b2c3d4e5f")
    assert first and {m["metadata"]["reply_to"] for m in first} == {"c-0a1b2c3d4e5f"}
    again = client.turn(session_id, "what payment methods do you accept?", message_id="c-0a1b2c3d4e5f")
    assert [(m["text"], m["metadata"]) for m in again] == [(m["text"], m["metadata"]) for m in first]
    assert user_texts(stack, session_id) == ["what payment methods do you accept?"]
    # Sent twice at once (a double click): still one turn.
    client.send(session_id, "hello", message_id="c-twice")
    client.send(session_id, "hello", message_id="c-twice")
    client.next("bot_turn_done")
    client.drain(1.0)
    assert user_texts(stack, session_id) == ["what payment methods do you accept?", "hello"]
    # An id the channel cannot keep is ignored: the message is answered as a new one.
    assert client.turn(session_id, "hello", message_id="not an id! " * 10)
    assert user_texts(stack, session_id)[-1] == "hello" and len(user_texts(stack, session_id)) == 3


def test_lone_surrogates_become_replacement_characters(stack, chats):
    client = chats()
    session_id = client.session()["session_id"]
    replies = client.turn(session_id, "hi \ud800 there", metadata={"page": {"path": "/\udfff"}})
    assert replies and all(m.get("text") or m.get("quick_replies") for m in replies)
    [user] = [e for e in stack.tracker(session_id)["events"] if e["event"] == "user"]
    assert user["text"] == "hi \ufffd there" and user["metadata"]["page"]["path"] == "/\ufffd"


@pytest.mark.parametrize("metadata", [
    {"x": "y" * 9_000}, json.dumps({"page": {"path": "/"}})[:-1],
    {"deep": json.loads("[" * 40 + "]" * 40)}, "[" * 1000 + "]" * 1000, ["not", "an", "object"],
], ids=["oversize", "broken-json-string", "nested-40", "nested-1000-string", "list"])
def test_bad_metadata_is_refused_and_the_session_goes_on(stack, chats, metadata):
    client = chats()
    session_id = client.session()["session_id"]
    client.send(session_id, "hello", metadata=metadata)
    assert "metadata" in client.next("request_refused", timeout=10)["error"]
    assert user_texts(stack, session_id) == []
    assert client.turn(session_id, "hello")


def test_a_deeply_nested_packet_harms_no_one(stack, chats):
    hostile = chats()
    hostile.session()
    try:
        hostile.client.emit("user_uttered", json.loads("[" * 900 + "]" * 900))
    except Exception:  # noqa: BLE001 - the server may drop this client; that is fine
        pass
    other = chats()
    assert other.turn(other.session()["session_id"], "hello")


def test_only_allowed_origins_may_connect(stack, chats):
    with pytest.raises(SocketIOConnectionError):
        chats(origin="https://evil.example")
    store = chats(origin=allowed_origins(stack.env)[0])
    assert store.session()["session_id"]


def test_feedback_and_state_need_the_session_key(stack, chats):
    client = chats()
    session = client.session()
    answers = client.turn(session["session_id"], "hello")
    vote = {"conversation_id": session["session_id"], "message_id": answers[-1]["metadata"]["reply_to"],
            "index": answers[-1]["metadata"]["index"], "vote": "up"}
    base = f"{stack.rasa_url}/webhooks/socketio"
    state = f"{base}/conversations/{session['session_id']}/state"
    other_key = SessionKeys(session_secret(stack.env)).issue("web-someone-else", None)
    for headers in ({}, {"X-Session-Key": other_key}, {"X-Session-Key": "anon.nope"}):
        assert requests.post(f"{base}/feedback", json=vote, headers=headers, timeout=10).status_code == 403
        assert requests.get(state, headers=headers, timeout=10).status_code == 403
    key = {"X-Session-Key": session["session_key"]}
    assert requests.post(f"{base}/feedback", json=vote, headers=key, timeout=10).status_code == 201
    response = requests.get(state, headers=key, timeout=10)
    assert response.status_code == 200 and response.json() == {"paused": False}
