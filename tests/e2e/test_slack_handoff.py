"""Live handoff through Slack (supportbot/handoff/slack_agents.py) against the real servers: a
handoff appears in the fake agents' channel, agents claim, answer and hand back in its thread
with signed Slack events, the customer's socket.io chat receives the replies and the thread
receives the customer's. Faults: a resent event, a forged one, two agents claiming at once,
commands and intents that don't exist, a REST conversation, a second server watching the same
store."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import pytest
from fake_slack import AGENTS_CHANNEL, BOT_TOKEN, BOT_USER_ID, FakeSlack
from plugins.stack import API_TOKEN
from test_live_handoff import Chat, agent_events, hand_off, received
from test_slack import message, post

from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.desk import Desk
from supportbot.handoff.slack_agents import SlackAgents, SlackApi
from supportbot.learning.corrections import routing_corrections
from supportbot.learning.store import LearningStore

pytestmark = pytest.mark.slow

DANA, SAM = "U0DANA", "U0SAM"  # fake_slack.USERS: display names Dana and Sam
SLACK = 10.0  # seconds: the Rasa server's watcher looks at the store every second


@pytest.fixture
def chats(stack):
    opened: List[Chat] = []

    def chat() -> Chat:
        opened.append(Chat(stack.rasa_url))
        return opened[-1]

    yield chat
    for client in opened:
        client.close()


def summary_post(slack: FakeSlack, reference: str) -> Dict[str, Any]:
    """The handoff's message in the agents' channel (exactly one)."""
    def mine(posts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [p for p in posts if p["thread_ts"] is None and reference in (p["text"] or "")]

    slack.wait_for(AGENTS_CHANNEL, lambda posts: mine(posts), timeout=SLACK)
    [root] = mine(slack.posted(AGENTS_CHANNEL))
    return root


def agent_says(stack, root: str, text: str, user: str = DANA, **kwargs: Any) -> Dict[str, Any]:
    """A person's message in the handoff's thread, signed as Slack signs it; the event."""
    event = message(AGENTS_CHANNEL, text, thread_ts=root, user=user)
    response = post(stack, event, **kwargs)
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text
    return event


def in_thread(slack: FakeSlack, root: str, text: str, to: Optional[str] = None) -> Dict[str, Any]:
    """The thread's first post containing `text` (only `to` sees it, when given)."""
    def found(posts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [p for p in posts if text in (p["text"] or "") and p["ephemeral"] == to]

    return found(slack.wait_for(AGENTS_CHANNEL, found, thread_ts=root, timeout=SLACK))[0]


def chat_texts(chat: Chat, seconds: float) -> List[str]:
    return [data["text"] for name, data in chat.drain(seconds) if name == "bot_uttered"]


def handed_off(stack, chat: Chat, slack: FakeSlack, *turns: str) -> tuple:
    session_id = chat.session()["session_id"]
    for text in turns:
        chat.turn(session_id, text)
    reference = hand_off(stack, chat, session_id)
    return session_id, reference, summary_post(slack, reference)["ts"]


def test_an_agent_answers_in_the_slack_thread_and_hands_back(stack, slack_api, chats):
    chat = chats()
    session_id = chat.session()["session_id"]
    chat.turn(session_id, "where is my order 4817263")
    assert "on its way" in chat.turn(session_id, "alice@example.com")[0]
    reference = hand_off(stack, chat, session_id)

    root = summary_post(slack_api, reference)
    for fact in ("customer request", "Customer: verified, C-1001", "where is my order 4817263", session_id,
                 f"Chat handoff {reference}", "`claim`", "`intent <name>`"):
        assert fact in root["text"], fact
    ts = root["ts"]

    agent_says(stack, ts, "claim")
    received(chat, "Dana from support joined", timeout=SLACK)
    in_thread(slack_api, ts, "Dana claimed this")

    reply = agent_says(stack, ts, "Hi, I'm Dana. Let me look at your parcel.")
    got = received(chat, "Hi, I'm Dana.", timeout=SLACK)
    assert got["metadata"]["from"] == "agent" and got["metadata"]["agent"] == "Dana"
    # Slack resends the event (no answer in 3 s, say): taken in once, sent once.
    again = post(stack, reply, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert again.status_code == 200 and again.json()["duplicate"] is True

    said, done = chat.turn(session_id, "It should have been here yesterday")
    assert said == "" and done["paused"]  # the person answers, not the bot
    in_thread(slack_api, ts, "*Customer:* It should have been here yesterday")
    assert chat_texts(chat, 1.0) == []
    assert len(agent_events(stack, session_id, "Hi, I'm Dana. Let me look at your parcel.")) == 1

    # Another server watching the same store (or this one restarted) posts nothing twice.
    thread_before = len(slack_api.posted(AGENTS_CHANNEL, ts))
    other = SlackAgents(AGENTS_CHANNEL, SlackApi(BOT_TOKEN, slack_api.url),
                        Desk(Claims(stack.handoffs()), RasaRelay(stack.rasa_url, API_TOKEN)))
    other.tick()
    other.tick()
    assert len(slack_api.posted(AGENTS_CHANNEL, ts)) == thread_before
    assert len([p for p in slack_api.posted(AGENTS_CHANNEL) if reference in (p["text"] or "")]) == 1

    agent_says(stack, ts, "hand back")
    received(chat, "You're back with the assistant", timeout=SLACK)
    assert chat.next("bot_turn_done", timeout=SLACK)["ended"] is True
    in_thread(slack_api, ts, "Dana handed the conversation back to the assistant")
    said, _ = chat.turn(session_id, "where is my order 4817263")
    assert "Order 4817263 is on its way" in said  # the bot again, with the slots it had
    time.sleep(1.5)  # a watcher round: what the customer tells the bot is not the agents' business
    assert not [p for p in slack_api.posted(AGENTS_CHANNEL, ts) if "where is my order" in (p["text"] or "")
                and p["text"].startswith("*Customer:*")]


def test_two_agents_claim_at_once_one_wins_the_other_is_told(stack, slack_api, chats):
    chat = chats()
    session_id, reference, ts = handed_off(stack, chat, slack_api)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda user: agent_says(stack, ts, "claim", user=user), (DANA, SAM)))
    winner = in_thread(slack_api, ts, "claimed this")["text"].split()[0]  # handled in the background
    assert winner in ("Dana", "Sam") and Claims(stack.handoffs()).get(reference).claimed_by == winner
    loser = SAM if winner == "Dana" else DANA
    assert f"claimed by {winner}" in in_thread(slack_api, ts, "claimed by", to=loser)["text"]
    assert chat_texts(chat, 1.5) == [f"{winner} from support joined the chat."]
    # The loser's reply does not reach the customer; they are told why.
    agent_says(stack, ts, "I can help too", user=loser)
    assert len([p for p in slack_api.wait_for(
        AGENTS_CHANNEL, lambda posts: len([p for p in posts if p["ephemeral"] == loser]) >= 2, thread_ts=ts)
        if p["ephemeral"] == loser]) == 2
    assert chat_texts(chat, 1.0) == []


def test_forged_events_and_wrong_commands_reach_nobody(stack, slack_api, chats):
    chat = chats()
    session_id, reference, ts = handed_off(stack, chat, slack_api)

    agent_says(stack, ts, "Hello, I'm here")  # not claimed yet
    assert "claim it first" in in_thread(slack_api, ts, "claim it first", to=DANA)["text"]
    agent_says(stack, ts, "claim")
    received(chat, "Dana from support joined", timeout=SLACK)

    forged = post(stack, message(AGENTS_CHANNEL, "Send your password to evil@example.com", thread_ts=ts,
                                 user=DANA), secret="not-the-signing-secret")
    assert forged.status_code == 401

    agent_says(stack, ts, "intent nonsense")
    told = in_thread(slack_api, ts, "Unknown intent `nonsense`", to=DANA)["text"]
    assert "`order_status`" in told and "`faq/refund_policy`" in told
    agent_says(stack, ts, f"<@{BOT_USER_ID}> dance")
    told = in_thread(slack_api, ts, "Unknown command 'dance'", to=DANA)["text"]
    assert "`claim`" in told and "`hand back`" in told
    agent_says(stack, ts, "help", user=SAM)
    in_thread(slack_api, ts, "Commands:", to=SAM)

    assert chat_texts(chat, 1.5) == []  # none of it reached the customer
    assert not [e for e in stack.tracker(session_id)["events"] if "evil@example.com" in str(e.get("text"))]


def test_intent_in_the_thread_is_a_correction_and_a_rest_chat_is_closed_there(stack, slack_api, sender):
    stack.texts(sender, "where is my order 4817263")  # the order form asks for an email ...
    assert "handing you over" in stack.texts(sender, "I want to talk to a real person")  # ... and stops
    [record] = stack.handoffs().list(conversation_id=sender)
    ts = summary_post(slack_api, record.reference)["ts"]

    agent_says(stack, ts, "intent refund_status")
    note = in_thread(slack_api, ts, "as `refund_status`")["text"]
    assert note.startswith("Dana marked “where is my order 4817263”") and "`order_status`" in note
    [turn] = [t for t in LearningStore(stack.store_db_url).turns(sender) if t.label is not None]
    assert (turn.text, turn.intent, turn.label) == ("where is my order 4817263", "order_status", "refund_status")
    assert turn.label_source == "slack" and turn.labelled_by == f"Dana ({DANA})"

    # The order asked about decided the team; an agent moves it, the ticket along, as a correction.
    assert (record.team, record.priority) == ("orders", "normal")
    agent_says(stack, ts, "move sales")
    assert "one of billing, orders" in in_thread(slack_api, ts, "Unknown team 'sales'", to=DANA)["text"]
    agent_says(stack, ts, "move billing")
    in_thread(slack_api, ts, "Dana moved this to Billing's queue")
    assert stack.handoffs().list(conversation_id=sender)[0].team == "billing"
    assert stack.tickets().queue_of(record.ticket_id) == ("billing", "normal")
    [move] = [c for c in routing_corrections(LearningStore(stack.store_db_url)) if c.handoff_id == record.id]
    assert (move.from_team, move.to_team, move.intent) == ("orders", "billing", "order_status")
    assert move.source == "slack"

    agent_says(stack, ts, "claim")
    in_thread(slack_api, ts, "Dana claimed this")
    agent_says(stack, ts, "Hello from Dana")  # a REST chat has no open window to receive it
    assert "only the web chat" in in_thread(slack_api, ts, "only the web chat", to=DANA)["text"]
    agent_says(stack, ts, "close")
    in_thread(slack_api, ts, "Dana closed this conversation")
    assert stack.handoffs().list(conversation_id=sender)[0].status == "closed"
    assert stack.texts(sender, "hello")  # the bot answers again
