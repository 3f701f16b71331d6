"""Two Rasa instances on one model, sharing what the production profile shares
(profiles/production, docs/deploy.md): the Postgres tracker store, the conversation lock in
Redis (supportbot.lock_store.AtomicRedisLockStore) and the socket.io client manager in Redis
(supportbot.socket_presence). One extra stack for this module: an action server, a billing
service and the two Rasa servers.

- Two messages of one conversation sent to the two instances at the same moment are both
  answered, one turn after the other, none lost.
- An agent's message whose relay call reaches instance A is in the chat of the customer whose
  socket is on instance B, and is counted delivered only while that socket is connected.
- The tracker database going away (the instances reach Postgres through a proxy the tests cut,
  supportbot.benchmark.faults.FaultProxy; the machine's PostgreSQL is never stopped): an outage
  shorter than the store's wait only slows the turns it meets, a longer one gets a clear message
  on REST and socket.io, and the conversation goes on with its context once the database is back
  (supportbot.tracker_store). A short load through such an outage, checked like the load test,
  loses no turn."""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List
from urllib.parse import urlsplit

import pytest
import redis
import requests
import yaml
from plugins.stack import ACTION_SERVER_AUTH, ACTION_SERVER_TOKEN, API_TOKEN, BILLING_API_KEY, IDENTITY_SECRET
from postgres_url import POSTGRES_URL
from test_live_handoff import Chat

from supportbot import processes
from supportbot.benchmark import faults
from supportbot.benchmark.load import checker
from supportbot.channels import STORE_UNAVAILABLE
from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.desk import Desk
from supportbot.socket_presence import PREFIX
from supportbot.store import HandoffStore

pytestmark = pytest.mark.slow


TRACKER_DB = "supportbot_tracker_test"
OUTAGE_WAIT = 4  # seconds the tracker store waits for the database before telling the customer


class Instances:
    def __init__(self, urls: List[str], store_db_url: str, redis_url: str, database: faults.FaultProxy,
                 billing_db_url: str) -> None:
        self.urls, self.store_db_url, self.redis_url = urls, store_db_url, redis_url
        self.database, self.billing_db_url = database, billing_db_url

    def say(self, instance: int, sender: str, text: str) -> List[Dict[str, Any]]:
        response = requests.post(f"{self.urls[instance]}/webhooks/rest/webhook",
                                 json={"sender": sender, "message": text}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def tracker(self, sender: str, instance: int = 0) -> Dict[str, Any]:
        response = requests.get(f"{self.urls[instance]}/conversations/{sender}/tracker",
                                params={"token": API_TOKEN}, timeout=30)
        response.raise_for_status()
        return response.json()

    def events(self, sender: str, instance: int = 0) -> List[Dict[str, Any]]:
        return self.tracker(sender, instance)["events"]

    def desk(self, instance: int) -> Desk:
        return Desk(Claims(HandoffStore(self.store_db_url)), RasaRelay(self.urls[instance], API_TOKEN))


def _endpoints(tmp: Path, actions_port: int, redis_url: str, database_port: int) -> Path:
    postgres = urlsplit(POSTGRES_URL)
    path = tmp / "endpoints.yml"
    path.write_text(yaml.safe_dump({
        "action_endpoint": {"url": f"http://127.0.0.1:{actions_port}/webhook", "headers": ACTION_SERVER_AUTH},
        # Its own database, made by Rasa (login_db), so Rasa's `events` table meets no other.
        "tracker_store": {"type": "supportbot.tracker_store.SQLTrackerStore", "dialect": "postgresql",
                          "url": postgres.hostname,
                          "port": database_port, "username": postgres.username or "postgres",
                          "password": postgres.password or "", "db": TRACKER_DB,
                          "login_db": postgres.path.strip("/") or "postgres",
                          "outage_wait_seconds": OUTAGE_WAIT},
        "lock_store": {"type": "supportbot.lock_store.AtomicRedisLockStore", "url": redis_url,
                       "key_prefix": "sharedtest"},
    }))
    return path


def _credentials(tmp: Path, repo: Path, redis_url: str) -> Path:
    credentials = yaml.safe_load((repo / "credentials.yml").read_text())
    credentials.pop("supportbot.slack.SlackInput", None)
    credentials["supportbot.channels.RedactingSocketIOInput"]["client_manager_url"] = redis_url
    path = tmp / "credentials.yml"
    path.write_text(yaml.safe_dump(credentials))
    return path


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory, repo: Path, model: Path,
              redis_url: str) -> Iterator[Instances]:
    tmp = tmp_path_factory.mktemp("shared_state")
    billing_port, actions_port, *rasa_ports = (processes.free_port() for _ in range(4))
    store_db_url = f"sqlite:///{tmp / 'supportbot.db'}"
    env = {
        "BILLING_URL": f"http://127.0.0.1:{billing_port}", "BILLING_TIMEOUT": "3",
        "SUPPORTBOT_DB_URL": store_db_url,
        "SUPPORTBOT_TICKETING": "sqlite", "SUPPORTBOT_TICKETING_DB_URL": f"sqlite:///{tmp / 'tickets.db'}",
        "SUPPORTBOT_IDENTITY_SECRET": IDENTITY_SECRET, "SUPPORTBOT_SESSION_SECRET": "test-session-secret",
        "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN, "BILLING_API_KEY": BILLING_API_KEY,
        "BILLING_API_KEYS": f"assistant:assistant:{BILLING_API_KEY}",
    }
    database = faults.FaultProxy(urlsplit(POSTGRES_URL).port or 5432)
    endpoints = _endpoints(tmp, actions_port, redis_url, database.port)
    credentials = _credentials(tmp, repo, redis_url)
    rasas = [processes.rasa_server(port, model, endpoints, credentials, tmp / name, API_TOKEN, env, repo)
             for port, name in zip(rasa_ports, ("a", "b"))]
    billing_db_url = f"sqlite:///{tmp / 'billing.db'}"
    backends = [processes.billing_server(billing_port, billing_db_url, tmp, env, reset=True),
                processes.action_server(actions_port, tmp, env, repo)]
    with database, processes.running(backends):
        try:
            for rasa in rasas:  # both load the model at once
                rasa.start()
            for rasa in rasas:
                rasa.wait_healthy(240)
            yield Instances([rasa.url for rasa in rasas], store_db_url, redis_url, database, billing_db_url)
        finally:
            for rasa in rasas:
                rasa.stop()


def turns(events: List[Dict[str, Any]]) -> List[List[str]]:
    """The conversation as turns: a user message, then what the bot did until it listened."""
    result: List[List[str]] = []
    for event in events:
        if event["event"] == "user":
            result.append([f"user:{event['text']}"])
        elif result and event["event"] in ("action", "bot"):
            result[-1].append(event.get("name") or f"bot:{event.get('text')}")
    return result


def test_two_messages_of_one_conversation_at_two_instances_are_answered_in_turn(instances):
    sender = f"shared-{uuid.uuid4().hex[:12]}"
    sent = [("hello", "thank you"), ("hi there", "thanks a lot"), ("good morning", "thanks!")]

    def send(start: threading.Barrier, answers: List[Any], instance: int, text: str) -> None:
        start.wait()
        answers[instance] = instances.say(instance, sender, text)

    for first, second in sent:
        start, answers = threading.Barrier(2), [None, None]
        threads = [threading.Thread(target=send, args=(start, answers, i, text))
                   for i, text in enumerate((first, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert all(answers), answers  # both answered

    conversation = turns(instances.events(sender, instance=1))
    users = [turn[0] for turn in conversation]
    assert sorted(users) == sorted(f"user:{text}" for pair in sent for text in pair)  # none lost
    for turn in conversation:  # each turn ends before the next begins: the bot spoke, then listened
        assert turn[-1] == "action_listen" and any(step.startswith("bot:") for step in turn), conversation
        assert turn.count("action_listen") == 1, conversation


def _wait_until_gone(redis_url: str, session_id: str, timeout: float = 5) -> None:
    red, deadline = redis.Redis.from_url(redis_url), time.monotonic() + timeout
    while red.zcount(f"{PREFIX}/:{session_id}", time.time(), "+inf") and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_agents_message_sent_through_instance_a_reaches_the_socket_on_instance_b(instances):
    chat = Chat(instances.urls[1])
    try:
        session_id = chat.session()["session_id"]
        said, done = chat.turn(session_id, "I want to talk to a real person")
        assert "handing you over" in said and done["paused"]
        [record] = HandoffStore(instances.store_db_url).list(conversation_id=session_id)

        desk = instances.desk(0)  # the agent's calls go to instance A
        desk.claim(record.reference, "Dana")
        joined = chat.next("bot_uttered", timeout=5)
        assert "Dana from support joined" in joined["text"]
        sent = desk.say(record.reference, "Dana", "Hi, I'm Dana.", key="m1")
        reply = chat.next("bot_uttered", timeout=5)
        assert reply["text"] == "Hi, I'm Dana." and reply["metadata"]["from"] == "agent"
        assert sent.delivered  # A knew the customer's socket was connected, on B
    finally:
        chat.leave()

    _wait_until_gone(instances.redis_url, session_id)
    later = desk.say(record.reference, "Dana", "Are you still there?", key="m2")
    assert not later.delivered  # nobody connected anywhere: it waits for the customer's return


def _texts(answer: List[Dict[str, Any]]) -> List[str]:
    return [message.get("text") for message in answer]


REFUND = "I'd like a refund for order 4817264"  # Alice's delivered lamp: the form asks for her email


def test_a_database_outage_shorter_than_the_wait_only_slows_the_turn(instances):
    sender = f"outage-{uuid.uuid4().hex[:12]}"
    instances.say(0, sender, REFUND)
    answers: List[Any] = []
    instances.database.cut()
    try:
        turn = threading.Thread(target=lambda: answers.append(instances.say(1, sender, "alice@example.com")))
        turn.start()
        time.sleep(OUTAGE_WAIT / 2)
    finally:
        instances.database.restore()
    turn.join(60)
    [answer] = answers
    assert STORE_UNAVAILABLE not in _texts(answer)
    slots = instances.tracker(sender)["slots"]  # the email verified the refund the first turn asked
    assert slots["customer_verified"] is True and slots["requested_slot"] == "refund_amount", slots
    assert [turn[0] for turn in turns(instances.events(sender))] == [f"user:{REFUND}", "user:alice@example.com"]


def test_a_longer_database_outage_is_told_and_the_conversation_resumes_after_it(instances):
    chat, rest_sender = Chat(instances.urls[1]), f"outage-{uuid.uuid4().hex[:12]}"
    try:
        session_id = chat.session()["session_id"]
        chat.turn(session_id, REFUND)
        instances.database.cut()
        try:
            said, done = chat.turn(session_id, "alice@example.com")  # socket.io, on instance B
            assert said == STORE_UNAVAILABLE and done["paused"] is False
            assert _texts(instances.say(0, rest_sender, "hello")) == [STORE_UNAVAILABLE]  # REST, on A
        finally:
            instances.database.restore()
        said, _ = chat.turn(session_id, "alice@example.com")  # sent again, as the customer was asked
        assert STORE_UNAVAILABLE not in said
    finally:
        chat.leave()
    slots = instances.tracker(session_id)["slots"]  # the conversation went on where it was
    assert slots["customer_verified"] is True and slots["requested_slot"] == "refund_amount", slots
    assert [turn[0] for turn in turns(instances.events(session_id))] == [
        f"user:{REFUND}", "user:alice@example.com"]  # the turn told to come again was not stored
    assert turns(instances.events(rest_sender)) == []  # nor this one


def test_a_short_load_through_a_database_outage_loses_no_turn(instances):
    """The load test's conversations (order status, refund, FAQ) over REST and socket.io, with the
    database cut for less than the store's wait in the middle, then the load test's checker."""
    refunds_before = checker.last_refund_number(instances.billing_db_url)
    driver = faults.Driver(instances.urls[0], workers=6, turn_timeout=30, seed=7).start()
    try:
        time.sleep(12)
        instances.database.cut()
        time.sleep(OUTAGE_WAIT / 2)
        instances.database.restore()
        time.sleep(15)
    finally:
        driver.stop()
    postgres = urlsplit(POSTGRES_URL)
    tracker_db_url = postgres._replace(path=f"/{TRACKER_DB}").geturl()
    assert len(driver.conversations) >= 20 and len(driver.turns) >= 60
    not_answered = [turn for turn in driver.turns if turn.outcome != faults.ANSWERED]
    assert not_answered == []
    assert checker.check(driver.conversations, tracker_db_url, instances.billing_db_url, refunds_before) == []
