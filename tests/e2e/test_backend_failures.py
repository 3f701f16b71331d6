"""When the billing service is down or slow, actions say so plainly, offer a person, and
never claim success. An action server is started against a dead port and against a server
that answers too slowly; requests are sent to it exactly as Rasa sends them."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
import requests

from supportbot import processes


class SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        time.sleep(3)
        self.send_response(200)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def slow_billing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", processes.free_port()), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _action_server(billing_url: str, tmp_path_factory, repo, stack) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("actions")
    env = {"BILLING_URL": billing_url, "BILLING_TIMEOUT": "1",
           "ACTION_SERVER_TOKEN": stack.env["ACTION_SERVER_TOKEN"],
           "BILLING_API_KEY": stack.env["BILLING_API_KEY"],
           "SUPPORTBOT_DB_URL": f"sqlite:///{tmp / 'store.db'}"}
    server = processes.action_server(processes.free_port(), tmp, env, repo)
    with processes.running([server], timeout=120):
        yield server.url


@pytest.fixture(scope="module", params=["down", "slow"])
def failing_actions(request, tmp_path_factory, repo, slow_billing, stack) -> Iterator[str]:
    billing = f"http://127.0.0.1:{processes.free_port()}" if request.param == "down" else slow_billing
    yield from _action_server(billing, tmp_path_factory, repo, stack)


def _run(actions_url: str, stack, action: str, slots: dict, text: str = "yes") -> dict:
    domain = stack.api("/domain")
    message = {"intent": {"name": "affirm", "confidence": 1.0}, "entities": [], "text": text,
               "message_id": "m-1", "metadata": {}}
    tracker = {"sender_id": "backend-failure", "slots": slots, "latest_message": message,
               "events": [{"event": "user", "text": text, "parse_data": message}],
               "paused": False, "followup_action": None, "active_loop": {},
               "latest_action_name": "action_listen"}
    response = requests.post(f"{actions_url}/webhook", json={
        "next_action": action, "sender_id": "backend-failure", "tracker": tracker,
        "domain": domain, "version": "3.6.21"}, timeout=60, headers=stack.actions_auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_order_status_says_the_system_is_unavailable(failing_actions, stack):
    result = _run(failing_actions, stack, "action_order_status",
                  {"customer_id": "C-1001", "customer_verified": True, "order_id": "4817263"})
    [reply] = result["responses"]
    assert reply["response"] == "utter_backend_unavailable"


def test_refund_is_not_claimed_when_billing_fails(failing_actions, stack):
    quote = {"order_id": "4817264", "amount": "49.99", "currency": "USD", "reason": "broken"}
    result = _run(failing_actions, stack, "action_create_refund",
                  {"customer_id": "C-1001", "customer_verified": True, "refund_quote": quote})
    assert [r["response"] for r in result["responses"]] == ["utter_backend_unavailable"]
    assert not any(e.get("name") == "refund_id" for e in result["events"])


VERIFIED = {"customer_id": "C-1001", "customer_verified": True}
# Every write and lookup of the order, billing, subscription and account flows, with the
# slots it reads.
BILLING_ACTIONS = [
    ("action_confirm_order_cancellation", {"order_id": "4817265"}),
    ("action_cancel_order", {"order_change_pending": {"order_id": "4817265", "kind": "cancel"}}),
    ("action_confirm_address_change", {"order_id": "4817265", "new_address": "1 Main Street, Boston 02110"}),
    ("action_change_address",
     {"order_change_pending": {"order_id": "4817265", "kind": "address", "address": "1 Main Street 02110"}}),
    ("action_show_invoice", {"invoice_id": "INV-2026-00042"}),
    ("action_check_payments", {}),
    ("action_open_dispute", {"dispute_payment_id": "P-000005", "dispute_reason": "not mine"}),
    ("action_confirm_cancellation", {}),
    ("action_cancel_subscription", {"subscription_pending": {"subscription_id": "S-1001", "plan": "Plus"}}),
    ("action_accept_retention_offer",
     {"subscription_pending": {"subscription_id": "S-1001", "offer_id": "half_price_3_months"}}),
    ("action_preview_plan_change", {"plan": "premium"}),
    ("action_change_plan", {"plan_change_quote": {"subscription_id": "S-1001", "plan": "premium"}}),
    ("action_payment_method_link", {}),
    ("action_request_password_reset", {}),
    ("action_account_access", {}),
    ("action_update_account", {"account_field": "name", "account_new_value": "Alice M."}),
]


@pytest.mark.parametrize("action,slots", BILLING_ACTIONS, ids=[a for a, _ in BILLING_ACTIONS])
def test_billing_flows_say_the_system_is_unavailable(failing_actions, stack, action, slots):
    result = _run(failing_actions, stack, action, {**VERIFIED, **slots})
    assert [r.get("response") for r in result["responses"]] == ["utter_backend_unavailable"], action
    # Nothing that only a success sets: no refund, dispute or pending confirmation.
    set_slots = {e["name"]: e["value"] for e in result["events"] if e.get("event") == "slot"}
    assert not any(set_slots.get(name) for name in
                   ("refund_id", "refund_quote", "plan_change_quote", "subscription_step",
                                 "order_change_pending")), set_slots


@pytest.fixture(scope="module")
def tickets_down(tmp_path_factory, repo, stack) -> Iterator[str]:
    """An action server whose ticket database cannot be opened (its URL names a directory)."""
    tmp = tmp_path_factory.mktemp("tickets-down")
    env = {**stack.env, "SUPPORTBOT_DB_URL": f"sqlite:///{tmp / 'store.db'}",
           "SUPPORTBOT_TICKETING": "sqlite", "SUPPORTBOT_TICKETING_DB_URL": f"sqlite:///{tmp}"}
    server = processes.action_server(processes.free_port(), tmp, env, repo)
    with processes.running([server], timeout=120):
        yield server.url


def test_no_ticket_is_claimed_when_ticketing_is_down(tickets_down, stack):
    slots = {"bug_description": "search is broken", "bug_steps": "search", "bug_severity": "high",
             "email": "carla.m@example.org"}
    for action, filled in (("action_create_bug_ticket", slots), ("action_create_feature_request", {})):
        result = _run(tickets_down, stack, action, filled, text="please add dark mode")
        assert [r["response"] for r in result["responses"]] == ["utter_ticketing_unavailable"], action


def test_ticket_status_says_the_ticket_system_is_unavailable(tickets_down, stack):
    result = _run(tickets_down, stack, "action_ticket_status",
                  {"customer_id": "C-1001", "customer_verified": True, "email": "alice@example.com"})
    assert [r["response"] for r in result["responses"]] == ["utter_ticketing_unavailable"]
