"""An agent's reply on the handoff's Request Tracker ticket reaches the customer's chat, through
real servers (docs/handoff.md#the-ticket): a customer in the socket.io chat asks for a person, the
handoff is filed in a real RT, an RT agent (not root) answers the ticket over RT's REST API, and
the reply arrives in the customer's socket as an agent message; read again, nothing is sent
twice; a reply made while the customer is gone arrives when their widget comes back.

The session's `stack` files tickets in the embedded queue, so this module starts one stack of its
own with the `rt` backend (and no Slack agents' channel, which belongs to the session's stack)."""
from __future__ import annotations

import time

import pytest
import rt_server
from plugins.stack import API_TOKEN, running_stack
from test_live_handoff import Chat, hand_off, received

from supportbot.handoff import messages
from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.ticket_replies import TicketReplies
from supportbot.ticketing import ticketing_from_env
from supportbot.ticketing.http import JsonApi

pytestmark = pytest.mark.slow

SECONDS = 0.5  # how often the Rasa server reads the tickets here (default 5)
LIVE = 10.0  # a reply is in the chat within this: one round, RT's answers and the relay


@pytest.fixture(scope="module")
def rt_stack(tmp_path_factory, repo, model, slack_api):
    with rt_server.running_rt(tmp_path_factory.mktemp("rt")) as rt_url:
        rt_server.add_agent(rt_url)
        env = {"SUPPORTBOT_TICKETING": "rt", "RT_URL": rt_url, "RT_USER": rt_server.USER,
               "RT_PASSWORD": rt_server.PASSWORD, "SUPPORTBOT_TICKET_REPLIES_SECONDS": str(SECONDS),
               "SUPPORTBOT_AGENTS_SLACK_CHANNEL": ""}
        with running_stack(tmp_path_factory.mktemp("rt-stack"), repo, model, slack_api.url, env) as stack:
            yield stack


@pytest.fixture
def dana(rt_stack) -> JsonApi:
    """The RT agent Dana, answering tickets over RT's REST API as RT's web UI does."""
    return JsonApi("rt", rt_stack.env["RT_URL"] + "/REST/2.0", auth=(rt_server.AGENT, rt_server.AGENT_PASSWORD))


def correspond(dana: JsonApi, ticket_id: str, text: str) -> None:
    dana.request("POST", f"/ticket/{ticket_id}/correspond", body={"Content": text, "ContentType": "text/plain"})


def bot_texts(stack, session_id: str, text: str):
    return [e for e in stack.tracker(session_id)["events"] if e["event"] == "bot" and e.get("text") == text]


def test_an_rt_reply_reaches_the_customers_chat_live_once(rt_stack, dana):
    stack = rt_stack
    chat = Chat(stack.rasa_url)
    try:
        session_id = chat.session()["session_id"]
        reference = hand_off(stack, chat, session_id)
        [record] = stack.handoffs().list(conversation_id=session_id)
        ticket = dana.request("GET", f"/ticket/{record.ticket_id}")  # filed in RT, Dana can see it
        assert reference in ticket["Subject"] and ticket["Requestor"][0]["id"].endswith("@anonymous.invalid")

        started = time.monotonic()
        correspond(dana, record.ticket_id, "Hi, I'm Dana from support. Let me look at your order.")
        joined = received(chat, "Dana from support joined the chat.", timeout=LIVE)
        reply = received(chat, "Hi, I'm Dana from support.", timeout=LIVE)
        print(f"\nRT reply in the chat after {time.monotonic() - started:.1f} s")
        assert joined["metadata"]["kind"] == messages.JOINED
        assert reply["metadata"]["from"] == "agent" and reply["metadata"]["agent"] == "Dana"
        handoff = stack.handoffs().list(conversation_id=session_id)[0]
        assert (handoff.status, handoff.claimed_by) == ("claimed", "Dana")  # answering is joining

        said, done = chat.turn(session_id, "It's order 4817263, it never arrived")
        assert said == "" and done["paused"]  # the bot stays quiet: a person answers
        # Read again: by the server's next rounds, and by a fresh bridge (as after a restart).
        again = TicketReplies(Claims(stack.handoffs()), ticketing_from_env(stack.env), stack.env)
        assert again.tick() == []
        assert [name for name, _ in chat.drain(3 * SECONDS + 1) if name == "bot_uttered"] == []
        assert len(bot_texts(stack, session_id, reply["text"])) == 1
        assert [m.kind for m in Claims(stack.handoffs()).messages(session_id)] == [messages.JOINED, messages.AGENT]
    finally:
        chat.close()


def test_an_rt_reply_while_the_customer_is_gone_arrives_on_return(rt_stack, dana):
    stack = rt_stack
    chat = Chat(stack.rasa_url)
    session = chat.session()
    session_id = session["session_id"]
    hand_off(stack, chat, session_id)
    [record] = stack.handoffs().list(conversation_id=session_id)
    chat.leave()
    relay = RasaRelay(stack.rasa_url, API_TOKEN)
    deadline = time.monotonic() + 10
    while relay.sync(session_id)["sockets"] and time.monotonic() < deadline:  # the server sees it go
        time.sleep(0.1)

    text = "Sorry for the wait: your parcel is with the courier again."
    correspond(dana, record.ticket_id, text)
    claims = Claims(stack.handoffs())
    deadline = time.monotonic() + LIVE
    while not [m for m in claims.messages(session_id) if m.text == text] and time.monotonic() < deadline:
        time.sleep(0.2)
    [stored] = [m for m in claims.messages(session_id) if m.text == text]
    assert stored.delivered_at is None and len(bot_texts(stack, session_id, text)) == 1  # in the transcript

    back = Chat(stack.rasa_url)
    try:
        assert back.session(**session) == session  # the widget rejoins with its stored id and key
        received(back, "Dana from support joined the chat.", timeout=5)
        assert received(back, text, timeout=5)["metadata"]["agent"] == "Dana"
        assert claims.message(stored.id).delivered_at is not None
    finally:
        back.close()
