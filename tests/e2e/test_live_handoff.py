"""Live handoff through the real servers (docs/handoff.md): a customer in the socket.io chat asks
for a person, an agent claims through the desk (supportbot/handoff/desk.py) and answers, the
reply reaches the customer's open socket within a second, the customer's answer reaches the
agent, and the hand back gives the bot the conversation with its slots and a rating question.
Faults: two agents at once, a retried send, the customer gone when the agent replies, Rasa
restarted while the customer waits, Rasa's own API delivering nothing to an unregistered channel,
no agent in time, a REST conversation."""
from __future__ import annotations

import queue
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Tuple

import pytest
import requests
import socketio
import sqlalchemy
from plugins.stack import API_TOKEN
from socketio import packet
from sqlalchemy import select
from sqlalchemy.orm import Session

from supportbot.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound, Unauthorized
from supportbot.handoff import messages
from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.desk import Desk
from supportbot.handoff.estimate import BusinessHours
from supportbot.ticketing.sql import TicketRow

pytestmark = pytest.mark.slow

EVENTS = ("session_confirm", "bot_uttered", "bot_turn_done", "handoff_state", "request_refused")
LIVE = 1.0  # seconds: an agent's message must be in the customer's chat within this


class Chat:
    """One socket.io client of the Rasa server that records every event it receives."""

    def __init__(self, url: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.inbox: queue.Queue[Tuple[str, Any]] = queue.Queue()
        for name in EVENTS:
            self.client.on(name, lambda data=None, name=name: self.inbox.put((name, data)))
        self.client.connect(url, wait_timeout=10)

    def next(self, wanted: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                name, data = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {wanted} within {timeout} s") from None
            if name == wanted:
                return data

    def session(self, **request: Any) -> Dict[str, str]:
        self.client.emit("session_request", request)
        return self.next("session_confirm", timeout=10)

    def send(self, session_id: str, text: str) -> None:
        self.client.emit("user_uttered", {"session_id": session_id, "message": text, "metadata": {}})

    def turn(self, session_id: str, text: str) -> Tuple[str, Dict[str, Any]]:
        """Send a message; the bot's texts up to bot_turn_done, and bot_turn_done itself."""
        self.send(session_id, text)
        said: List[str] = []
        while True:
            name, data = self.inbox.get(timeout=60)
            if name == "bot_uttered":
                said.append(data.get("text") or "")
            elif name == "bot_turn_done":
                return "\n".join(said), data

    def drain(self, seconds: float) -> List[Tuple[str, Any]]:
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.inbox.get(timeout=0.1))
            except queue.Empty:
                pass
        return got

    def close(self) -> None:
        self.client.disconnect()

    def leave(self) -> None:
        """Close the chat as a browser tab does. `disconnect()` aborts the polling transport
        before its goodbye is sent (a browser's WebSocket close is seen at once; this client has
        no WebSocket), and the server would notice only at the ping timeout: say goodbye first."""
        for namespace in self.client.namespaces:
            self.client._send_packet(self.client.packet_class(packet.DISCONNECT, namespace=namespace))
        self.client.eio.queue.join()  # posted to the server
        self.client.disconnect()


@pytest.fixture
def chats(stack):
    opened: List[Chat] = []

    def chat() -> Chat:
        opened.append(Chat(stack.rasa_url))
        return opened[-1]

    yield chat
    for client in opened:
        client.close()


@pytest.fixture
def desk(stack) -> Desk:
    return Desk(Claims(stack.handoffs()), RasaRelay(stack.rasa_url, API_TOKEN))


def open_now(stack) -> bool:
    return BusinessHours.from_env(stack.env).is_open(datetime.now(timezone.utc))


def hand_off(stack, chat: Chat, session_id: str) -> str:
    """Ask for a person; checks what the customer is told and returns the handoff's reference."""
    said, done = chat.turn(session_id, "I want to talk to a real person")
    assert "handing you over" in said and done["paused"]
    [record] = stack.handoffs().list(conversation_id=session_id)
    if open_now(stack):
        assert f"about {record.told_wait_minutes} min" in said
    else:
        assert "not in right now" in said and record.reference in said
    return record.reference


def received(chat: Chat, text: str, timeout: float = LIVE) -> Dict[str, Any]:
    message = chat.next("bot_uttered", timeout=timeout)
    assert text in message["text"], message
    return message


def agent_events(stack, session_id: str, text: str) -> List[Dict[str, Any]]:
    return [e for e in stack.tracker(session_id)["events"] if e["event"] == "bot" and e.get("text") == text]


def test_a_person_answers_in_the_chat_and_hands_back(stack, chats, desk):
    chat = chats()
    session_id = chat.session()["session_id"]
    chat.turn(session_id, "where is my order 4817263")
    assert "on its way" in chat.turn(session_id, "alice@example.com")[0]
    reference = hand_off(stack, chat, session_id)

    [item] = [i for i in desk.queue() if i.conversation_id == session_id]
    assert item.reference == reference and item.status == "open" and item.reason == "customer_request"
    assert item.verified and item.customer_id == "C-1001" and item.waiting_seconds >= 0
    assert item.summary["slots"]["customer_verified"] is True
    assert [i["intent"] for i in item.summary["intents"]][-1] == "request_human"

    started = time.monotonic()
    desk.claim(reference, "Dana")
    joined = received(chat, "Dana from support joined")
    assert time.monotonic() - started < LIVE
    assert joined["metadata"]["from"] == "support" and joined["metadata"]["kind"] == "joined"

    started = time.monotonic()
    sent = desk.say(reference, "Dana", "Hi, I'm Dana. What can I do for you?", key="m1")
    reply = received(chat, "Hi, I'm Dana")
    assert time.monotonic() - started < LIVE
    assert sent.delivered and not sent.duplicate
    assert reply["metadata"]["from"] == "agent" and reply["metadata"]["agent"] == "Dana"

    said, done = chat.turn(session_id, "The parcel should have been here yesterday")
    assert said == "" and done["paused"]  # the bot stays quiet: the person answers
    lines = desk.conversation(reference)
    assert [(line.who, line.text) for line in lines[-2:]] == [
        ("agent", "Hi, I'm Dana. What can I do for you?"),
        ("customer", "The parcel should have been here yesterday")]
    assert lines[-2].agent == "Dana"
    assert desk.conversation(reference, since=lines[-2].at)[-1].text.startswith("The parcel")

    desk.hand_back(reference, "Dana")
    received(chat, "You're back with the assistant")
    done = chat.next("bot_turn_done", timeout=LIVE)
    assert done == {"reply_to": None, "paused": False, "ended": True}  # the widget's rating question
    said, _ = chat.turn(session_id, "where is my order 4817263")
    assert "Order 4817263 is on its way" in said and "email" not in said.lower()  # slots kept: still verified
    assert stack.tracker(session_id)["slots"]["customer_verified"] is True
    assert stack.handoffs().list(conversation_id=session_id)[0].status == "handed_back"
    # Asked once: a second hand back (a retry) changes nothing and sends nothing.
    desk.hand_back(reference, "Dana")
    assert [name for name, _ in chat.drain(1.0) if name in ("bot_uttered", "bot_turn_done")] == []


def test_two_agents_claiming_at_once_one_wins_and_the_customer_hears_once(stack, chats, desk):
    chat = chats()
    session_id = chat.session()["session_id"]
    reference = hand_off(stack, chat, session_id)
    start, won, lost = threading.Barrier(2), [], []

    def claim(agent: str) -> None:
        start.wait()
        try:
            won.append(Desk(Claims(stack.handoffs()), desk.relay).claim(reference, agent).claimed_by)
        except Conflict:
            lost.append(agent)

    threads = [threading.Thread(target=claim, args=(agent,)) for agent in ("Dana", "Sam")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(lost) == 1
    texts = [data["text"] for name, data in chat.drain(1.5) if name == "bot_uttered"]
    assert texts == [f"{won[0]} from support joined the chat."]
    with pytest.raises(Conflict, match=f"claimed by {won[0]}"):
        desk.say(reference, lost[0], "me too")


def test_a_retried_send_delivers_once(stack, chats, desk):
    chat = chats()
    session_id = chat.session()["session_id"]
    reference = hand_off(stack, chat, session_id)
    desk.claim(reference, "Dana")
    received(chat, "joined")
    first = desk.say(reference, "Dana", "Let me check that for you.", key="retry-1")
    again = desk.say(reference, "Dana", "Let me check that for you.", key="retry-1")
    assert again.duplicate and again.message.id == first.message.id and again.delivered
    texts = [data["text"] for name, data in chat.drain(1.5) if name == "bot_uttered"]
    assert texts == ["Let me check that for you."]
    assert len(agent_events(stack, session_id, "Let me check that for you.")) == 1


def test_the_customer_gone_gets_the_reply_on_return(stack, chats, desk):
    chat = chats()
    session = chat.session()
    session_id = session["session_id"]
    reference = hand_off(stack, chat, session_id)
    desk.claim(reference, "Dana")
    received(chat, "joined")
    chat.leave()
    deadline = time.monotonic() + 10
    while desk.relay.sync(session_id)["sockets"] and time.monotonic() < deadline:  # the server sees it go
        time.sleep(0.1)

    sent = desk.say(reference, "Dana", "Your refund is on its way.", key="gone-1")
    assert not sent.delivered and sent.message.delivered_at is None
    assert len(agent_events(stack, session_id, "Your refund is on its way.")) == 1  # in the transcript already

    back = chats()
    assert back.session(**session) == session  # the widget rejoins with its stored id and key
    message = received(back, "Your refund is on its way.", timeout=5)
    assert message["metadata"]["agent"] == "Dana"
    assert Claims(stack.handoffs()).message(sent.message.id).delivered_at is not None
    once_more = chats()
    once_more.session(**session)
    assert [d for name, d in once_more.drain(1.0) if name == "bot_uttered"] == []  # delivered once
    state = requests.get(f"{stack.rasa_url}/webhooks/socketio/conversations/{session_id}/state",
                         headers={"X-Session-Key": session["session_key"]}, timeout=10).json()
    assert state["paused"] and state["handoff"]["status"] == "claimed" and state["handoff"]["agent"] == "Dana"


def test_a_rasa_restart_while_waiting_loses_nothing(stack, chats, desk):
    """Handoffs, claims and queued messages are in the stores, not in the server: a customer
    waiting through a restart of Rasa gets the agent's message written meanwhile, and the chat
    goes on live afterwards."""
    chat = chats()
    session = chat.session()
    session_id = session["session_id"]
    reference = hand_off(stack, chat, session_id)
    chat.leave()
    stack.restart_rasa()
    desk.claim(reference, "Dana")
    waiting = desk.say(reference, "Dana", "Sorry for the wait, I'm here now.", key="restart-1")
    assert not waiting.delivered  # nobody is connected to the new server yet

    back = chats()
    assert back.session(**session) == session
    received(back, "joined", timeout=5)
    received(back, "Sorry for the wait", timeout=5)
    assert desk.say(reference, "Dana", "Which order is it?", key="restart-2").delivered
    received(back, "Which order is it?")
    said, done = back.turn(session_id, "order 4817263")
    assert said == "" and done["paused"]  # still with the person, not the bot
    assert [line.text for line in desk.conversation(reference) if line.who == "customer"][-1] == "order 4817263"
    desk.hand_back(reference, "Dana")
    assert "back with the assistant" in received(back, "back with the assistant", timeout=5)["text"]


def test_rasas_own_api_delivers_nothing_to_an_unregistered_channel_the_relay_refuses(stack, chats, desk):
    chat = chats()
    session_id = chat.session()["session_id"]
    hand_off(stack, chat, session_id)
    # The pitfall: Rasa answers 200 and falls back to a collecting channel; nothing arrives.
    event = {"event": "bot", "text": "Hello from an agent", "metadata": {"from": "agent"}}
    response = requests.post(f"{stack.rasa_url}/conversations/{session_id}/tracker/events",
                             params={"token": API_TOKEN, "output_channel": "webchat",
                                     "execute_side_effects": "true"},
                             json=event, timeout=10)
    assert response.status_code == 200
    assert [d for name, d in chat.drain(1.5) if name == "bot_uttered"] == []
    # The relay says so instead: no relay on that server, a wrong token, an unknown conversation.
    with pytest.raises(BackendUnavailable, match="no handoff relay") as no_relay:
        RasaRelay(stack.billing_url, API_TOKEN).sync(session_id)
    assert no_relay.value.code == "no_relay"
    with pytest.raises(Unauthorized):
        RasaRelay(stack.rasa_url, "wrong-token").sync(session_id)
    with pytest.raises(NotFound):
        desk.relay.sync("web-" + "9" * 32)


def test_a_rest_conversation_takes_no_live_reply_but_is_closed_and_answered_again(stack, sender, desk):
    stack.texts(sender, "hi")
    assert "handing you over" in stack.texts(sender, "I want to talk to a real person")
    [record] = stack.handoffs().list(conversation_id=sender)
    # No topic named: routing.yml's default team, at the default priority, the ticket in its queue.
    assert (record.team, record.priority) == ("orders", "normal")
    assert stack.tickets().queue_of(record.ticket_id) == ("orders", "normal")
    desk.claim(record.reference, "Dana")
    with pytest.raises(InvalidRequest, match="only the web chat") as refused:
        desk.say(record.reference, "Dana", "hello")
    assert refused.value.code == "not_live"
    assert not stack.say(sender, "anyone?")  # still with a person
    desk.close(record.reference, "Dana")
    assert stack.handoffs().list(conversation_id=sender)[0].status == "closed"
    events = stack.tracker(sender)["events"]
    assert [e["text"] for e in events if e["event"] == "bot"][-1].startswith("Dana from support closed this chat")
    assert stack.texts(sender, "hello")  # the bot answers again


def test_no_agent_in_time_the_customer_is_offered_email_and_the_ticket_stays_open(stack, chats):
    chat = chats()
    session_id = chat.session()["session_id"]
    reference = hand_off(stack, chat, session_id)
    claims = Claims(stack.handoffs())
    [record] = stack.handoffs().list(conversation_id=session_id)
    # Out of hours the first answer was already the offer (and the watcher leaves it at that).
    assert (record.email_offered_at is None) is open_now(stack)
    with claims.store.engine.begin() as db:  # waiting for a week, past any timeout in business time
        db.execute(sqlalchemy.text("UPDATE handoffs SET created_at = :at, email_offered_at = NULL WHERE id = :id"),
                   {"at": datetime.now(timezone.utc) - timedelta(days=7), "id": record.id})
    notice = received(chat, "nobody from our team is free yet", timeout=45)  # the watcher runs every 30 s
    assert reference in notice["text"] and "leave your email address" in notice["text"]
    assert notice["metadata"]["kind"] == messages.TIMEOUT
    after = claims.get(reference)
    assert after.status == "open" and after.email_offered_at is not None  # still in the queue
    with Session(stack.tickets().engine) as session:
        [status] = session.scalars(select(TicketRow.status).where(TicketRow.subject.contains(reference))).all()
    assert status in ("new", "open")  # nobody resolved it
    assert [m.kind for m in claims.messages(session_id)] == [messages.TIMEOUT]  # offered once
