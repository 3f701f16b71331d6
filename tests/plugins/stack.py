"""The whole assistant as real processes: billing service, action server and Rasa server
(REST and socket.io channels, SQLite tracker store), each on a free port with its own
temporary databases, plus the fake Slack Web API (tests/e2e/fake_slack.py) Rasa posts to.

One `stack` per test session, shared by tests/e2e and tests/web; tests talk to it over HTTP.
When it stops, every store and log it wrote is scanned for test card numbers
(tests/e2e/card_leaks.py). Registered in tests/conftest.py."""
from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import fake_slack
import pytest
import requests
import yaml
from card_leaks import card_numbers_in

from supportbot import processes
from supportbot.clients.billing import BillingClient
from supportbot.store import HandoffStore
from supportbot.ticketing import ticketing_from_env
from supportbot.ticketing.sql import SqlTicketing

IDENTITY_SECRET = "test-identity-secret-of-32-bytes!!"
API_TOKEN = "test-rasa-api-token"
ACTION_SERVER_TOKEN = "test-action-server-token"
BILLING_API_KEY = "test-billing-assistant-key"
BILLING_AGENT_API_KEY = "test-billing-agent-key"
ACTION_SERVER_AUTH = {"Authorization": f"Bearer {ACTION_SERVER_TOKEN}"}


@dataclass
class Stack:
    rasa_url: str
    actions_url: str
    billing_url: str
    tracker_db: Path
    store_db_url: str
    log_dir: Path
    env: Dict[str, str]
    demo_port: int  # reserved for the demo store (tests/web/conftest.py), whose origin Rasa allows
    rasa_process: Optional[processes.ServerProcess] = None

    def restart_rasa(self, timeout: float = 240) -> None:
        """Stop the Rasa server as a deployment does (SIGTERM) and start it again: same port,
        same stores. Its sockets are gone; clients rejoin with their session key."""
        self.rasa_process.stop()
        self.rasa_process.start().wait_healthy(timeout)

    def say(self, sender: str, text: str, metadata: Optional[Dict[str, Any]] = None,
            timeout: float = 60) -> List[Dict[str, Any]]:
        payload: Dict[str, Any] = {"sender": sender, "message": text}
        if metadata:
            payload["metadata"] = metadata
        response = requests.post(f"{self.rasa_url}/webhooks/rest/webhook", json=payload, timeout=timeout)
        assert response.status_code == 200, response.text
        return response.json()

    @property
    def actions_auth(self) -> Dict[str, str]:
        """The header Rasa sends the action server (ACTION_SERVER_TOKEN)."""
        return ACTION_SERVER_AUTH

    def texts(self, sender: str, text: str, **kwargs: Any) -> str:
        """Everything the bot answered to one message, as one string."""
        return "\n".join(m.get("text", "") for m in self.say(sender, text, **kwargs))

    def api(self, path: str) -> Any:
        """GET from Rasa's HTTP API, which needs the token (Rasa 3.6 reads it from ?token=)."""
        response = requests.get(f"{self.rasa_url}{path}", params={"token": API_TOKEN}, timeout=30,
                                headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()

    def api_post(self, path: str, body: Dict[str, Any]) -> Any:
        """POST to Rasa's HTTP API with the token, e.g. /model/parse."""
        response = requests.post(f"{self.rasa_url}{path}", params={"token": API_TOKEN}, json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def tracker(self, sender: str) -> Dict[str, Any]:
        return self.api(f"/conversations/{sender}/tracker")

    def run_action_twice(self, sender: str, action: str, text: str, intent: str,
                         slots: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Send the action server the same request twice, as a Rasa retry or a channel resend
        does: the conversation so far plus one more user message, with `slots` filled in."""
        tracker = self.tracker(sender)
        message = {"intent": {"name": intent, "confidence": 1.0}, "entities": [], "text": text,
                   "message_id": f"fixed-{sender}", "metadata": {}}
        tracker["events"].append({"event": "user", "text": text, "parse_data": message})
        tracker["latest_message"] = message
        tracker["slots"].update(slots)
        request = {"next_action": action, "sender_id": sender, "tracker": tracker,
                   "domain": self.api("/domain"), "version": "3.6.21"}
        return [requests.post(f"{self.actions_url}/webhook", json=request, timeout=30,
                              headers=self.actions_auth).json()
                for _ in range(2)]

    def outbox(self) -> List[Dict[str, Any]]:
        """The mail the billing service "sent" (its outbox table), oldest first."""
        with sqlite3.connect(self.log_dir / "billing.db") as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [dict(row) for row in rows]

    def forget_failed_verifications(self) -> None:
        """Clear the billing service's counts of failed verifications, and so its lockouts."""
        with sqlite3.connect(self.log_dir / "billing.db") as connection:
            connection.execute("DELETE FROM verify_counters")

    def billing(self, api_key: str = BILLING_API_KEY) -> BillingClient:
        """A billing client with the assistant's key (the agents' key on request)."""
        return BillingClient(self.billing_url, timeout=5, api_key=api_key)

    def handoffs(self) -> HandoffStore:
        return HandoffStore(self.store_db_url)

    def tickets(self) -> SqlTicketing:
        """The ticketing adapter the action server uses, configured from the same environment."""
        adapter = ticketing_from_env(self.env)
        assert isinstance(adapter, SqlTicketing)
        return adapter

    def stored_text(self) -> str:
        """Every byte of the tracker store, as text: to prove what is (not) stored."""
        with sqlite3.connect(self.tracker_db) as connection:
            rows = connection.execute("SELECT data FROM events").fetchall()
        return "\n".join(row[0] for row in rows)


@pytest.fixture(scope="session")
def slack_api() -> Iterator[fake_slack.FakeSlack]:
    """The fake Slack Web API the Rasa server posts replies to; started before the stack."""
    fake = fake_slack.FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, repo: Path, model: Path,
          slack_api: fake_slack.FakeSlack) -> Iterator[Stack]:
    """The assistant on the trained model (`repo` and `model` come from tests/conftest.py)."""
    tmp = tmp_path_factory.mktemp("stack")
    with running_stack(tmp, repo, model, slack_api.url) as started:
        yield started
    # Every store and log of the whole run, once the servers have flushed and stopped.
    leaks = card_numbers_in(tmp)
    if leaks:
        pytest.fail(f"test card numbers stored or logged: {leaks}")


@contextmanager
def running_stack(tmp: Path, repo: Path, model: Path, slack_url: str,
                  env_overrides: Optional[Dict[str, str]] = None) -> Iterator[Stack]:
    """The servers of a Stack in `tmp`; `env_overrides` changes their environment (another
    ticketing backend: tests/e2e/test_ticket_replies.py). Prefer the session's `stack`."""
    rasa_port, actions_port, billing_port, demo_port = (processes.free_port() for _ in range(4))
    tracker_db = tmp / "tracker.db"
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(yaml.safe_dump({
        "action_endpoint": {"url": f"http://127.0.0.1:{actions_port}/webhook",
                            "headers": ACTION_SERVER_AUTH},
        # The project's SQL store, as endpoints.yml has it (supportbot/tracker_store.py).
        "tracker_store": {"type": "supportbot.tracker_store.SQLTrackerStore", "dialect": "sqlite",
                          "db": str(tracker_db)},
        # Every event, for the learning loop's collector (tests/e2e/test_learning_capture.py).
        "event_broker": {"type": "SQL", "dialect": "sqlite", "db": str(tmp / "events.db")},
    }))
    store_db_url = f"sqlite:///{tmp / 'supportbot.db'}"
    env = {
        "BILLING_URL": f"http://127.0.0.1:{billing_port}",
        "BILLING_TIMEOUT": "3",
        "SUPPORTBOT_DB_URL": store_db_url,
        # The default backend (the embedded queue), in its own database.
        "SUPPORTBOT_TICKETING": "sqlite",
        "SUPPORTBOT_TICKETING_DB_URL": f"sqlite:///{tmp / 'tickets.db'}",
        "SUPPORTBOT_IDENTITY_SECRET": IDENTITY_SECRET,
        "SUPPORTBOT_SESSION_SECRET": "test-session-secret",
        "SUPPORTBOT_ALLOWED_ORIGINS": f"http://127.0.0.1:{demo_port}",
        # Who may call whom (docs/security.md).
        "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
        "BILLING_API_KEY": BILLING_API_KEY,
        "BILLING_API_KEYS": f"assistant:assistant:{BILLING_API_KEY},agents:agent:{BILLING_AGENT_API_KEY}",
        # Every test conversation shares the assistant's key: its own cap on failed
        # verifications would otherwise lock later tests out (per conversation it stays 5).
        "BILLING_VERIFY_MAX_FAILURES_PER_CLIENT": "10000",
        # The Slack channel, posting to the fake Slack Web API (see fake_slack.py).
        "SLACK_BOT_TOKEN": fake_slack.BOT_TOKEN,
        "SLACK_SIGNING_SECRET": fake_slack.SIGNING_SECRET,
        "SLACK_API_URL": slack_url,
        # Live handoff in Slack (tests/e2e/test_slack_handoff.py); `intent <name>` collects the
        # turns it corrects from the event broker above.
        "SUPPORTBOT_AGENTS_SLACK_CHANNEL": fake_slack.AGENTS_CHANNEL,
        "SUPPORTBOT_EVENTS_DB_URL": f"sqlite:///{tmp / 'events.db'}",
        **(env_overrides or {}),
    }
    servers = [
        processes.billing_server(billing_port, f"sqlite:///{tmp / 'billing.db'}", tmp, env, reset=True),
        processes.action_server(actions_port, tmp, env, repo),
        processes.rasa_server(rasa_port, model, endpoints, repo / "credentials.yml", tmp,
                              API_TOKEN, env, repo),
    ]
    with processes.running(servers, timeout=240):
        yield Stack(servers[2].url, servers[1].url, servers[0].url, tracker_db, store_db_url, tmp, env,
                    demo_port, rasa_process=servers[2])


@pytest.fixture(autouse=True)
def failed_verifications_end_with_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Five failed verifications lock a customer for 15 minutes, and every test shares the
    stack: a test that locks Alice on purpose (test_security.py) must not lock her for the
    e2e and browser tests after it."""
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").forget_failed_verifications()


@pytest.fixture
def api_token() -> str:
    return API_TOKEN


@pytest.fixture
def identity_secret() -> str:
    return IDENTITY_SECRET


@pytest.fixture
def sender() -> str:
    """A fresh conversation id per test."""
    return f"test-{uuid.uuid4().hex[:12]}"
