"""The agents' Slack channel without Rasa (supportbot/handoff/slack_agents.py): thread commands,
the summary an agent reads, what may be pasted into Slack, and the table that makes every post
happen once, on SQLite and the real Postgres server; the watcher against the fake Slack Web API.
The whole path through the real servers: tests/e2e/test_slack_handoff.py."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from fake_slack import BOT_TOKEN, FakeSlack

from supportbot.handoff.claims import Claims
from supportbot.handoff.desk import Desk
from supportbot.handoff.slack_agents import (
    AgentMessage,
    Refused,
    SlackAgents,
    SlackApi,
    Threads,
    agents_channel,
    mrkdwn,
    parse,
    summary_text,
)
from supportbot.slack import Incoming
from supportbot.store import HandoffStore

AGENTS = "C0AGENTS99"
CONTEXT = {"transcript": [
    {"from": "customer", "text": "where is my order 4817263", "intent": "order_status", "confidence": 0.91},
    {"from": "bot", "text": "What's the email address on the order?"},
    {"from": "customer", "text": "<!channel> my card 4111 1111 1111 1111 & more", "intent": "request_human",
     "confidence": 0.99}]}


def record(store: HandoffStore, customer_id=None, context=None):
    conversation = f"web-{uuid.uuid4().hex}"
    return store.record(conversation_id=conversation, idempotency_key=conversation, reason="customer_request",
                        customer_id=customer_id, context=context or CONTEXT)


@pytest.mark.parametrize("text, mentioned, expected", [
    ("claim", False, ("claim", "")),
    ("  Hand   Back ", False, ("hand_back", "")),
    ("release", False, ("hand_back", "")),
    ("CLOSE", True, ("close", "")),
    ("help", False, ("help", "")),
    ("intent refund_status", False, ("intent", "refund_status")),
    ("intent faq/refund_policy", True, ("intent", "faq/refund_policy")),
    ("Let me check that claim for you.", False, (None, "Let me check that claim for you.")),
    ("close the window and reload", False, (None, "close the window and reload")),
    ("move Billing", False, ("move", "billing")),
    ("move the delivery to Friday?", False, (None, "move the delivery to Friday?")),
])
def test_thread_commands_and_replies(text, mentioned, expected):
    assert parse(text, mentioned) == expected


@pytest.mark.parametrize("text, mentioned, says", [
    ("intent", False, "Say `intent <name>`"),
    ("intent two words", False, "Say `intent <name>`"),
    ("dance", True, "Unknown command 'dance'"),
])
def test_what_is_meant_as_a_command_but_is_none_is_refused_with_the_valid_ones(text, mentioned, says):
    with pytest.raises(Refused, match=says) as refused:
        parse(text, mentioned)
    assert "intent" in str(refused.value)


def test_text_pasted_into_slack_cannot_ping_link_or_leak_a_card():
    pasted = mrkdwn("<!channel> see <https://evil.example|your bank> & pay 4111 1111 1111 1111")
    assert "<" not in pasted and ">" not in pasted and "&amp;" in pasted
    assert "4111 1111" not in pasted and "1111" in pasted  # masked to its last four


def test_the_summary_says_who_why_what_was_understood_and_where_the_ticket_is(tmp_path):
    store = HandoffStore(f"sqlite:///{tmp_path / 'store.db'}")
    text = summary_text(record(store, customer_id="C-1001"))
    handoff = store.list()[0]
    for fact in (f"*Handoff {handoff.reference}*: customer request · open", "Customer: verified, C-1001",
                 "Understood: order_status 0.91, request_human 0.99", ">*customer:* where is my order 4817263",
                 f"“Chat handoff {handoff.reference}: customer_request”", handoff.conversation_id, "`claim`"):
        assert fact in text, fact
    assert "<!channel>" not in text and "4111 1111" not in text
    assert "Customer: not verified" in summary_text(record(store))


def test_the_channel_must_be_an_id():
    assert agents_channel("C0123ABCD") == "C0123ABCD" and agents_channel(None) is None
    for wrong in ("#support", "support", "c0123abcd", "C01"):
        with pytest.raises(ValueError, match="channel id"):
            agents_channel(wrong)


def test_only_replies_in_a_thread_are_for_the_agents():
    def incoming(ts, thread_ts, **slack):
        return Incoming("claim", "T1", AGENTS, thread_ts, [ts], {"slack": {"ts": ts, "user": "U1", **slack}})

    assert AgentMessage.from_incoming(incoming("2.0", "1.0", mentioned=True)) == AgentMessage(
        AGENTS, "1.0", "2.0", "U1", "claim", True)
    assert AgentMessage.from_incoming(incoming("1.0", "1.0")) is None  # top level: agents talking
    button = Incoming("claim", "T1", AGENTS, "1.0", ["k"], {"slack": {"user": "U1"}})  # no message ts
    assert AgentMessage.from_incoming(button) is None


def test_a_summary_is_posted_once_and_again_only_when_its_post_was_never_recorded(db_url):
    store = HandoffStore(db_url)
    threads, first, second = Threads(store.engine), record(store), record(store)
    ts = f"{uuid.uuid4().int % 10**9}.000100"  # Postgres keeps earlier runs' rows
    now = datetime.now(timezone.utc)
    lease = timedelta(seconds=60)
    assert threads.lease(first, AGENTS, now, lease)
    assert not threads.lease(first, AGENTS, now, lease)  # another server, the same moment
    threads.posted(first.id, ts)
    assert not threads.lease(first, AGENTS, now + 2 * lease, lease)  # posted: never again
    assert threads.lease(second, AGENTS, now, lease)  # never recorded (the poster died) ...
    assert not threads.lease(second, AGENTS, now + lease / 2, lease)
    assert threads.lease(second, AGENTS, now + 2 * lease, lease)  # ... taken again after the lease
    assert threads.find(AGENTS, ts).handoff_id == first.id and threads.find(AGENTS, ts + "9") is None
    assert [t.handoff_id for t in threads.following() if t.handoff_id in (first.id, second.id)] == [first.id]


def test_a_change_is_told_by_one_server(db_url):
    store = HandoffStore(db_url)
    threads, handoff = Threads(store.engine), record(store)
    threads.lease(handoff, AGENTS, datetime.now(timezone.utc), timedelta(seconds=60))
    ts = f"{uuid.uuid4().int % 10**9}.000200"  # Postgres keeps earlier runs' rows
    threads.posted(handoff.id, ts)
    seen = threads.find(AGENTS, ts)  # both servers read it
    later = seen.told_until + timedelta(seconds=5)
    assert threads.advance(seen, later, "claimed", "Dana")
    assert not threads.advance(seen, later, "claimed", "Dana")  # the other one: already told
    now = threads.find(AGENTS, ts)
    assert (now.status, now.agent, now.told_until, now.version) == ("claimed", "Dana", later, 1)


def test_two_watchers_post_each_handoff_once(tmp_path):
    store = HandoffStore(f"sqlite:///{tmp_path / 'store.db'}")
    fake = FakeSlack().start()
    try:
        watchers = [SlackAgents(AGENTS, SlackApi(BOT_TOKEN, fake.url), Desk(Claims(HandoffStore(store.db_url)),
                                                                          relay=object()))
                    for _ in range(2)]
        handoffs = [record(store), record(store)]
        for watcher in watchers * 2:
            watcher.tick()
        posts = fake.posted(AGENTS)
        assert sorted(p["text"].split("*")[1] for p in posts) == sorted(f"Handoff {h.reference}" for h in handoffs)
        assert all(p["thread_ts"] is None and p["token"] == BOT_TOKEN for p in posts)
    finally:
        fake.stop()
