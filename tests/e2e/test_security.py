"""Attack probes through the real servers (docs/security.md): the verified customer cannot be
swapped by typing, only Rasa reaches the action server, one slow billing call holds no other
conversation, secrets stay off command lines, and only the store's origins get CORS."""
from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests
from sqlalchemy.orm import Session

from supportbot import processes
from supportbot.ticketing.sql import TicketRow

pytestmark = pytest.mark.slow

ALICE_ORDER, BOB_ORDER = "4817263", "5529001"
CREATED = re.compile(r"as ticket (\d+)")


def _verify_as_alice(stack, sender: str) -> str:
    assert "email" in stack.texts(sender, "what's the status of my support tickets?").lower()
    assert "order" in stack.texts(sender, "alice@example.com").lower()
    return stack.texts(sender, ALICE_ORDER)


def test_a_typed_email_never_reaches_another_customers_tickets(stack, sender):
    bobs = stack.tickets().create_ticket(requester="bob@example.com", subject="Bob's private chair problem",
                                         body="private", idempotency_key=f"{sender}-bob").id
    assert "chair" not in _verify_as_alice(stack, sender)
    # The probe: Bob's address typed after verifying as Alice, then Alice's tools used.
    stack.texts(sender, "my email is bob@example.com")
    listed = stack.texts(sender, "show me my support tickets")
    assert "chair" not in listed and bobs not in re.findall(r"Ticket (\d+):", listed)
    refused = stack.texts(sender, f"what's the status of ticket {bobs}")
    assert "couldn't find that ticket among yours" in refused and "chair" not in refused
    # A new ticket is filed under the verified address, never the typed one.
    filed = CREATED.search(stack.texts(sender, "could you add a dark mode to the app")).group(1)
    with Session(stack.tickets().engine) as session:
        assert session.get(TicketRow, int(filed)).requester == "alice@example.com"
    assert not [t for t in stack.tickets().list_tickets("bob@example.com") if t.id == filed]


def test_another_address_inside_a_form_is_a_new_verification(stack, sender):
    _verify_as_alice(stack, sender)
    asked = stack.texts(sender, '/ticket_status{"email": "bob@example.com"}')
    assert "isn't the address I verified" in asked and "order" in asked
    slots = stack.tracker(sender)["slots"]
    assert not slots["customer_verified"] and slots["customer_id"] is None
    # Knowing only Alice's order, the prober cannot become Bob.
    assert "don't match" in stack.texts(sender, ALICE_ORDER)
    assert stack.tracker(sender)["slots"]["customer_id"] is None


def _forged_refund_call(sender: str, domain: dict) -> dict:
    """A hand-made tracker asking for Alice's refund, as the probe posted it."""
    message = {"intent": {"name": "affirm", "confidence": 1.0}, "entities": [], "text": "yes",
               "message_id": f"forged-{sender}", "metadata": {}}
    quote = {"order_id": "4817264", "amount": "49.99", "currency": "USD", "reason": "broken"}
    tracker = {"sender_id": sender, "latest_message": message, "paused": False, "followup_action": None,
               "slots": {"customer_id": "C-1001", "customer_verified": True, "refund_quote": quote},
               "events": [{"event": "user", "text": "yes", "parse_data": message}],
               "active_loop": {}, "latest_action_name": "action_listen"}
    return {"next_action": "action_create_refund", "sender_id": sender, "tracker": tracker,
            "domain": domain, "version": "3.6.21"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}],
                         ids=["no-token", "wrong-token", "other-scheme"])
def test_the_action_server_answers_only_rasa(stack, sender, headers):
    before = len(stack.billing().list_refunds("C-1001"))
    call = _forged_refund_call(sender, stack.api("/domain"))
    refused = requests.post(f"{stack.actions_url}/webhook", json=call, headers=headers, timeout=30)
    assert refused.status_code == 401 and "responses" not in refused.json()
    assert requests.get(f"{stack.actions_url}/actions", headers=headers, timeout=10).status_code == 401
    assert len(stack.billing().list_refunds("C-1001")) == before
    assert requests.get(f"{stack.actions_url}/health", timeout=10).ok  # nothing to hide there


def _listen_addresses(port: int) -> set:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp, IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_the_servers_listen_on_loopback_only(stack):
    for url in (stack.actions_url, stack.billing_url):
        assert _listen_addresses(int(url.rsplit(":", 1)[1])) == {"127.0.0.1"}


def test_no_secret_is_on_a_command_line(stack, api_token):
    secrets = [stack.env[name] for name in ("ACTION_SERVER_TOKEN", "BILLING_API_KEY", "BILLING_API_KEYS",
                                             "SUPPORTBOT_IDENTITY_SECRET", "SUPPORTBOT_SESSION_SECRET")]
    secrets.append(api_token)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue  # the process ended
        assert not [s for s in secrets if s in args], f"secret on the command line of {cmdline.parent.name}"


@pytest.mark.parametrize("origin, allowed", [("evil", False), ("store", True)])
def test_cors_answers_only_the_stores_origin(stack, origin, allowed):
    origin = "https://evil.example" if origin == "evil" else f"http://127.0.0.1:{stack.demo_port}"
    response = requests.options(f"{stack.rasa_url}/webhooks/rest/webhook", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    assert response.headers.get("Access-Control-Allow-Origin") != "*"


class DelayingProxy(BaseHTTPRequestHandler):
    """Forwards to the real billing service; requests about `slow_customer` take 3 s."""

    target, slow_customer = "", ""

    def _forward(self) -> None:
        if self.slow_customer in self.path:
            time.sleep(3)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = requests.request(self.command, self.target + self.path, data=body, headers=headers, timeout=30)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_PATCH = _forward

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def actions_with_slow_bob(stack, repo, tmp_path) -> Iterator[str]:
    handler = type("Proxy", (DelayingProxy,), {"target": stack.billing_url, "slow_customer": "C-1002"})
    proxy = ThreadingHTTPServer(("127.0.0.1", processes.free_port()), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {**stack.env, "BILLING_URL": f"http://127.0.0.1:{proxy.server_address[1]}", "BILLING_TIMEOUT": "10"}
    server = processes.action_server(processes.free_port(), tmp_path, env, repo)
    with processes.running([server], timeout=120):
        yield server.url
    proxy.shutdown()


def _order_status(stack, actions_url: str, sender: str, customer: str, order: str) -> float:
    """Run action_order_status as Rasa would; returns the seconds the answer took."""
    message = {"intent": {"name": "order_status", "confidence": 1.0}, "entities": [],
               "text": "where is my order", "message_id": f"m-{sender}", "metadata": {}}
    tracker = {"sender_id": sender, "latest_message": message, "paused": False, "followup_action": None,
               "slots": {"customer_id": customer, "customer_verified": True, "order_id": order},
               "events": [{"event": "user", "text": "where is my order", "parse_data": message}],
               "active_loop": {}, "latest_action_name": "action_listen"}
    started = time.monotonic()
    answer = requests.post(f"{actions_url}/webhook", headers=stack.actions_auth, timeout=30, json={
        "next_action": "action_order_status", "sender_id": sender, "tracker": tracker,
        "domain": stack.api("/domain"), "version": "3.6.21"})
    assert answer.status_code == 200 and answer.json()["responses"], answer.text
    return time.monotonic() - started


def test_a_slow_billing_call_holds_no_other_conversation(stack, actions_with_slow_bob):
    _order_status(stack, actions_with_slow_bob, "warm-up", "C-1001", ALICE_ORDER)
    with ThreadPoolExecutor(max_workers=4) as pool:
        slow = pool.submit(_order_status, stack, actions_with_slow_bob, "bob-slow", "C-1002", BOB_ORDER)
        time.sleep(0.5)  # Bob's call is now waiting on billing
        fast = [pool.submit(_order_status, stack, actions_with_slow_bob, f"alice-{n}", "C-1001", ALICE_ORDER)
                for n in range(3)]
        fast_seconds = [f.result() for f in fast]
        assert not slow.done(), "Bob's call should still be waiting on billing"
        assert slow.result() >= 3
    assert max(fast_seconds) < 1.5, fast_seconds


def test_verification_guessing_is_locked_and_offers_a_person(stack, sender):
    assert "email" in stack.texts(sender, "what's the status of my support tickets?").lower()
    for attempt in range(5):
        stack.texts(sender, "alice@example.com")
        assert "don't match" in stack.texts(sender, f"99990{attempt:02d}")
    stack.texts(sender, "alice@example.com")
    locked = stack.say(sender, ALICE_ORDER)  # the right order, but too late
    assert len(locked) == 1 and "paused checking them" in locked[-1]["text"]
    assert [b["payload"] for b in locked[-1]["buttons"]] == ["/request_human", "/deny"]
    assert stack.tracker(sender)["slots"]["customer_id"] is None
    assert not stack.tracker(sender)["active_loop"].get("name")


def test_the_repos_endpoints_file_sends_the_action_server_token(stack, repo, monkeypatch):
    """endpoints.yml names the token as ${ACTION_SERVER_TOKEN}; Rasa must expand it (an
    unexpanded or quoted placeholder would be sent literally and refused)."""
    from rasa.core.utils import read_endpoints_from_path

    monkeypatch.setenv("ACTION_SERVER_TOKEN", stack.env["ACTION_SERVER_TOKEN"])
    headers = read_endpoints_from_path(repo / "endpoints.yml").action.headers
    assert headers == stack.actions_auth
    assert requests.get(f"{stack.actions_url}/actions", headers=headers, timeout=10).ok
