"""The Slack channel against the real servers (see conftest): Slack events signed exactly as
Slack signs them are posted to the Rasa server's webhook, and its replies are read from the
fake Slack Web API it posts them to (fake_slack.py: Slack's cloud is out of reach here)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Union
from urllib.parse import urlencode

import pytest
import requests
from fake_slack import BOT_TOKEN, BOT_USER_ID, SIGNING_SECRET, TEAM_ID, FakeSlack

from supportbot.slack import NOT_CONFIGURED, SlackEventLog, SlackInput, clean_text

WEBHOOK = "/webhooks/slack/webhook"
CUSTOMER = "U0CUSTOMER1"
_ts_counter = itertools.count(1)


def new_ts() -> str:
    """A Slack message timestamp, unique in this test session."""
    return f"{int(time.time())}.{next(_ts_counter):06d}"


def signature(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def post(stack, payload: Union[Dict[str, Any], bytes], *, timestamp: Optional[int] = None,
         secret: str = SIGNING_SECRET, headers: Optional[Dict[str, str]] = None,
         content_type: str = "application/json") -> requests.Response:
    """POST to the Slack webhook as Slack does: raw body, timestamp and v0 signature headers."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return requests.post(f"{stack.rasa_url}{WEBHOOK}", data=body, timeout=10, headers={
        "Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(body, stamp, secret), **(headers or {})})


def message(channel: str, text: str, ts: Optional[str] = None, thread_ts: Optional[str] = None,
            event_type: str = "message", **event: Any) -> Dict[str, Any]:
    """An Events API `event_callback`, shaped like Slack's."""
    ts = ts or new_ts()
    body = {"type": event_type, "channel": channel, "channel_type": "channel", "user": CUSTOMER,
            "text": text, "ts": ts, "event_ts": ts, "team": TEAM_ID, **event}
    if thread_ts:
        body["thread_ts"] = thread_ts
    return {"token": "deprecated-verification-token", "team_id": TEAM_ID, "api_app_id": "A0SUPPORT",
            "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()), "event": body,
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}]}


def sender_of(payload: Dict[str, Any]) -> str:
    event = payload["event"]
    return f"{TEAM_ID}:{event['channel']}:{event.get('thread_ts') or event['ts']}"


def assert_user_texts(stack, sender: str, expected: List[str]) -> None:
    """The customer's messages in the tracker are `expected`, within 10 s: the webhook answers Slack
    at once, and Rasa posts the reply before it saves the turn."""
    deadline = time.monotonic() + 10
    while True:
        got = [e["text"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got == expected


def texts(posts: List[Dict[str, Any]]) -> str:
    return "\n".join(p["text"] or "" for p in posts)


def expected_posts(stack, sender: str) -> int:
    """How many chat.postMessage calls the tracker's bot messages make (Rasa's SlackBot posts
    each paragraph of a text separately)."""
    bot = [e for e in stack.tracker(sender)["events"] if e["event"] == "bot"]
    return sum(1 if (e["data"] or {}).get("buttons") else len((e["text"] or "").strip().split("\n\n"))
               for e in bot)


@pytest.fixture
def channel() -> str:
    """A fresh Slack channel per test, so the fake's records don't mix between tests."""
    return f"C{uuid.uuid4().hex[:10].upper()}"


def test_message_gets_a_reply_in_its_thread(stack, slack_api: FakeSlack, channel):
    event = message(channel, "hi")
    started = time.monotonic()
    response = post(stack, event)
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert time.monotonic() - started < 3  # Slack resends what isn't answered within 3 s
    ts = event["event"]["ts"]
    posts = slack_api.wait_for(channel, lambda p: len(p) >= 1)
    assert "assistant" in texts(posts)
    assert all(p["thread_ts"] == ts for p in posts)
    assert all(p["token"] == BOT_TOKEN and not p["as_user"] for p in posts)
    assert_user_texts(stack, f"{TEAM_ID}:{channel}:{ts}", ["hi"])


def test_thread_reply_continues_the_conversation(stack, slack_api: FakeSlack, channel):
    first = message(channel, "hi")
    post(stack, first)
    root = first["event"]["ts"]
    slack_api.wait_for(channel, lambda p: len(p) >= 1, thread_ts=root)
    post(stack, message(channel, "thank you", thread_ts=root))
    slack_api.wait_for(channel, lambda p: len(p) >= 2, thread_ts=root)
    assert_user_texts(stack, sender_of(first), ["hi", "thank you"])
    # A new top-level message is a new conversation.
    other = message(channel, "hello")
    post(stack, other)
    slack_api.wait_for(channel, lambda p: len(p) >= 1, thread_ts=other["event"]["ts"])
    assert_user_texts(stack, sender_of(other), ["hello"])


def test_order_status_through_slack(stack, slack_api: FakeSlack, channel):
    first = message(channel, "where is my order 4817263")
    post(stack, first)
    root = first["event"]["ts"]
    asked = slack_api.wait_for(channel, lambda p: "email" in texts(p).lower(), thread_ts=root)
    assert "UPS" not in texts(asked)
    # Slack sends an address the customer types as a mailto link.
    post(stack, message(channel, "<mailto:alice@example.com|alice@example.com>", thread_ts=root))
    posts = slack_api.wait_for(channel, lambda p: "UPS" in texts(p), thread_ts=root)
    assert "Order 4817263 is on its way" in texts(posts) and "1Z999AA10123456784" in texts(posts)
    assert_user_texts(stack, sender_of(first), ["where is my order 4817263", "alice@example.com"])


def test_resent_event_gets_one_reply(stack, slack_api: FakeSlack, channel):
    event = message(channel, "hi")
    root = event["event"]["ts"]
    with ThreadPoolExecutor(2) as pool:  # two deliveries at once: one wins
        answers = [r.json() for r in pool.map(lambda _: post(stack, event), range(2))]
    assert sorted(a.get("duplicate", False) for a in answers) == [False, True]
    retry = post(stack, event, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    # Rasa handles one thread's messages in order, so once this follow-up is answered, any
    # second handling of the first event would have shown.
    post(stack, message(channel, "thank you", thread_ts=root))
    posts = slack_api.wait_for(channel, lambda p: "welcome" in texts(p).lower(), thread_ts=root)
    assert_user_texts(stack, sender_of(event), ["hi", "thank you"])
    assert len(posts) == expected_posts(stack, sender_of(event))
    assert texts(posts).count("Northwind Goods assistant") == 1


def test_mention_delivered_as_message_and_app_mention_is_answered_once(stack, slack_api: FakeSlack, channel):
    """Subscribed to message.channels and app_mention, Slack sends an @mention twice, with two
    event ids: the bot answers it once, without the mention in the text."""
    as_message = message(channel, f"<@{BOT_USER_ID}> hi")
    as_mention = message(channel, f"<@{BOT_USER_ID}> hi", ts=as_message["event"]["ts"], event_type="app_mention")
    assert post(stack, as_message).json() == {"ok": True}
    assert post(stack, as_mention).json()["duplicate"] is True
    root = as_message["event"]["ts"]
    post(stack, message(channel, "thank you", thread_ts=root))
    posts = slack_api.wait_for(channel, lambda p: "welcome" in texts(p).lower(), thread_ts=root)
    assert_user_texts(stack, sender_of(as_message), ["hi", "thank you"])
    assert len(posts) == expected_posts(stack, sender_of(as_message))


@pytest.mark.parametrize("case", ["wrong-secret", "no-signature", "stale", "future"])
def test_unauthentic_requests_are_rejected(stack, channel, case):
    event = message(channel, "hi")
    if case == "wrong-secret":
        response = post(stack, event, secret="not-the-signing-secret")
    elif case == "no-signature":
        response = requests.post(f"{stack.rasa_url}{WEBHOOK}", json=event, timeout=10)
    else:  # correctly signed, but more than 5 minutes off: a replay. Half a minute past the limit:
        # one second past it, the truncated timestamp plus a slow server's delay can land inside.
        response = post(stack, event, timestamp=int(time.time()) + (-330 if case == "stale" else 330))
    assert response.status_code == 401
    assert "signature" in response.json()["error"].lower()
    assert_user_texts(stack, sender_of(event), [])


@pytest.mark.parametrize("body", [b"{", b"", b"[1, 2]", b"\xff\xfe"], ids=["broken", "empty", "list", "binary"])
def test_malformed_body_is_a_400(stack, body):
    response = post(stack, body)
    assert response.status_code == 400 and response.json()["error"]


def test_url_verification_is_answered_with_the_challenge(stack):
    challenge = uuid.uuid4().hex
    response = post(stack, {"token": "deprecated", "challenge": challenge, "type": "url_verification"})
    assert response.status_code == 200 and response.json() == {"challenge": challenge}


def test_events_not_for_the_bot_are_ignored(stack, slack_api: FakeSlack, channel):
    ignored = [
        {**message(channel, "x"), "event": {"type": "reaction_added", "user": CUSTOMER, "reaction": "tada",
                                            "item": {"type": "message", "channel": channel, "ts": new_ts()}}},
        {"type": "app_rate_limited", "team_id": TEAM_ID, "minute_rate_limited": 1},
        message(channel, "I'm the bot", bot_id="B0SUPPORTBOT"),  # the bot's own reply
        message(channel, "hi", subtype="message_changed"),
        message(channel, "hi", subtype="channel_join"),
        message(channel, f"<@{BOT_USER_ID}>"),  # nothing left to say
    ]
    for payload in ignored:
        response = post(stack, payload)
        assert response.status_code == 200 and response.json() == {"ok": True, "ignored": True}
    answered = message(channel, "hi")
    post(stack, answered)
    slack_api.wait_for(channel, lambda p: len(p) >= 1)
    time.sleep(0.5)
    assert {p["thread_ts"] for p in slack_api.posted(channel)} == {answered["event"]["ts"]}


def test_card_number_is_masked(stack, slack_api: FakeSlack, channel):
    event = message(channel, "my card is 4111 1111 1111 1111 exp 12/29, can you update it?")
    post(stack, event)
    root = event["event"]["ts"]
    posts = slack_api.wait_for(channel, lambda p: "removed a card number" in texts(p) and len(p) >= 2,
                               thread_ts=root)
    sent = json.dumps([(p["text"], p["blocks"]) for p in posts])
    assert "4111" not in sent and not re.search(r"\d(?:[ -]?\d){12}", sent)
    tracker = json.dumps(stack.tracker(sender_of(event)))
    assert "4111 1111" not in tracker and "4111111111111111" not in tracker


def test_button_click_continues_the_thread(stack, slack_api: FakeSlack, channel):
    """A click on a button the bot posted (Slack's interactivity sends a form-encoded payload)."""
    root = new_ts()
    click = {"type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": CUSTOMER},
             "channel": {"id": channel}, "trigger_id": uuid.uuid4().hex,
             "message": {"type": "message", "ts": new_ts(), "thread_ts": root, "bot_id": "B0SUPPORTBOT"},
             "actions": [{"type": "button", "action_id": "a1", "value": "/greet", "action_ts": new_ts()}]}
    body = urlencode({"payload": json.dumps(click)}).encode()
    response = post(stack, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json() == {"ok": True}
    posts = slack_api.wait_for(channel, lambda p: len(p) >= 1, thread_ts=root)
    assert "assistant" in texts(posts)
    assert_user_texts(stack, f"{TEAM_ID}:{channel}:{root}", ["/greet"])


def test_replies_through_rasas_api_land_in_the_thread(slack_api: FakeSlack, channel):
    """Rasa's HTTP API (e.g. `output_channel=latest`) asks the channel for an output channel
    without a Slack channel; the sender id names the channel and the thread."""
    slack = SlackInput(BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack_api.url)
    output = slack.get_output_channel()
    asyncio.run(output.send_text_message(f"{TEAM_ID}:{channel}:1700000000.000100", "Hello.\n\nAgain."))
    posts = slack_api.posted(channel)
    assert [(p["text"], p["thread_ts"]) for p in posts] == [
        ("Hello.", "1700000000.000100"), ("Again.", "1700000000.000100")]


def test_without_secrets_rasa_starts_and_the_webhook_answers_503(monkeypatch):
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_CHANNEL", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    slack = SlackInput.from_credentials(None)  # what Rasa calls for an empty credentials entry
    assert not slack.configured
    routes = {route.uri: route.handler for route in slack.blueprint(lambda message: None)._future_routes}
    response = asyncio.run(routes["/webhook"](None))
    assert response.status == 503
    assert json.loads(response.body) == {"error": NOT_CONFIGURED}
    assert "SLACK_BOT_TOKEN" in NOT_CONFIGURED


@pytest.mark.parametrize("raw, bot_ids, expected", [
    ("<@U0SUPPORTBOT> where is my order?", [BOT_USER_ID], "where is my order?"),
    ("it's <mailto:alice@example.com|alice@example.com>", [], "it's alice@example.com"),
    ("see <https://example.com/a?b=1&amp;c=2>", [], "see https://example.com/a?b=1&c=2"),
    ("in <#C123|support> &lt;3 &amp; more", [], "in #support <3 & more"),
    ("ask <@U0OTHER>", [BOT_USER_ID], "ask <@U0OTHER>"),
])
def test_slack_markup_is_turned_back_into_text(raw, bot_ids, expected):
    assert clean_text(raw, bot_ids) == expected


def test_event_log_takes_each_event_once(tmp_path):
    log = SlackEventLog(f"sqlite:///{tmp_path / 'events.db'}")
    assert log.claim("Ev1", "message:T:C:1.0")
    assert not log.claim("Ev1")  # a resend
    assert not log.claim("Ev2", "message:T:C:1.0")  # the same message as another event
    assert log.claim("Ev2")  # the failed claim above stored nothing
    log.prune(datetime.now(timezone.utc) + timedelta(seconds=1))
    assert log.claim("Ev1")  # pruned: Slack stopped resending long ago
