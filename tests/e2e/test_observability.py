"""Observability on the real servers (docs/observability.md): each server's /metrics moves with
real requests, turns, fallbacks and handoffs; the model it names is the loaded one; a metrics
token, when set, is required; JSON logs name the conversation."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Optional, Tuple

import pytest
import requests
import socketio
from prometheus_client.parser import text_string_to_metric_families
from socketio import packet

from supportbot import processes
from supportbot.errors import NotFound

pytestmark = pytest.mark.slow

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def scrape(base_url: str, headers: Optional[Dict[str, str]] = None) -> Samples:
    response = requests.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_two_misses_move_turns_fallbacks_actions_and_handoffs(stack, sender):
    rasa, actions = scrape(stack.rasa_url), scrape(stack.actions_url)
    stack.say(sender, "/nlu_fallback")
    assert "handing you over" in stack.texts(sender, "/nlu_fallback")
    rasa_after, actions_after = scrape(stack.rasa_url), scrape(stack.actions_url)

    assert moved(rasa, rasa_after, "supportbot_turns_total", channel="rest") == 2
    assert moved(rasa, rasa_after, "supportbot_turn_duration_seconds_count", channel="rest") == 2
    assert moved(rasa, rasa_after, "supportbot_http_requests_total", server="rasa",
                 route="/webhooks/rest/webhook", method="POST", status="200") == 2
    assert moved(rasa, rasa_after, "supportbot_http_request_duration_seconds_count", server="rasa",
                 route="/webhooks/rest/webhook") == 2

    assert moved(actions, actions_after, "supportbot_fallbacks_total", kind="nlu") == 2
    assert moved(actions, actions_after, "supportbot_fallbacks_total", kind="dialogue") == 0
    assert moved(actions, actions_after, "supportbot_actions_total", action="action_handle_nlu_fallback",
                 outcome="ok") == 2
    assert moved(actions, actions_after, "supportbot_action_duration_seconds_count",
                 action="action_handle_nlu_fallback") == 2
    assert moved(actions, actions_after, "supportbot_handoffs_total", reason="not_understood") == 1
    assert moved(actions, actions_after, "supportbot_handoffs_total") == 1
    assert moved(actions, actions_after, "supportbot_http_requests_total", server="actions",
                 route="/webhook", status="200") >= 2


def test_a_retried_handoff_is_counted_once(stack, sender):
    stack.texts(sender, "hi")
    before = scrape(stack.actions_url)
    first, second = stack.run_action_twice(sender, "action_handoff", "I want a person", "request_human", {})
    assert first["events"] == second["events"]
    after = scrape(stack.actions_url)
    assert moved(before, after, "supportbot_actions_total", action="action_handoff", outcome="ok") == 2
    assert moved(before, after, "supportbot_handoffs_total", reason="customer_request") == 1


def test_the_model_named_is_the_one_loaded(stack):
    status = stack.api("/status")
    (labels,) = [dict(labels) for (name, labels), _ in scrape(stack.rasa_url).items()
                 if name == "supportbot_model_info"]
    assert labels == {"model_id": status["model_id"], "model_file": Path(status["model_file"]).name}


def test_action_server_counts_unknown_actions_and_failures(stack):
    before = scrape(stack.actions_url)
    unknown = requests.post(f"{stack.actions_url}/webhook", json={"next_action": "action_no_such_thing"},
                            headers=stack.actions_auth, timeout=10)
    assert unknown.status_code == 404
    # A call without a tracker makes the action fail: an error, answered 500 without detail.
    broken = requests.post(f"{stack.actions_url}/webhook", json={"next_action": "action_handoff"},
                           headers=stack.actions_auth, timeout=10)
    assert broken.status_code == 500 and broken.json() == {"error": "internal error"}
    refused = requests.post(f"{stack.actions_url}/webhook", json={"next_action": "action_handoff"}, timeout=10)
    assert refused.status_code == 401
    after = scrape(stack.actions_url)
    assert moved(before, after, "supportbot_actions_total", action="other", outcome="not_found") == 1
    assert moved(before, after, "supportbot_actions_total", action="action_handoff", outcome="error") == 1
    assert moved(before, after, "supportbot_errors_total", server="actions", kind="KeyError") == 1
    assert moved(before, after, "supportbot_http_requests_total", server="actions", route="/webhook",
                 status="401") == 1
    assert total(after, "supportbot_turns_total") == 0  # the Rasa server's metrics are not here


def test_billing_counts_requests_by_route_pattern(stack):
    before = scrape(stack.billing_url)
    with pytest.raises(NotFound):
        stack.billing().get_customer("no-such-customer")
    assert requests.get(f"{stack.billing_url}/customers/c-1", timeout=10).status_code == 401
    after = scrape(stack.billing_url)
    customer = "/customers/<cid:str>"
    assert moved(before, after, "supportbot_http_requests_total", server="billing", route=customer,
                 method="GET", status="404") == 1
    assert moved(before, after, "supportbot_http_requests_total", server="billing", route=customer,
                 status="401") == 1
    assert not [labels for (name, labels) in after if "no-such-customer" in str(labels)]
    assert total(after, "supportbot_handoffs_total") == 0


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def test_socketio_connections_are_counted_while_connected(stack):
    """The gauge is the server's: sockets other tests left may close (at the ping timeout) while
    this runs, so it checks the rise and fall around this client, not exact totals."""
    def connections() -> float:
        return total(scrape(stack.rasa_url), "supportbot_socketio_connections")

    before = connections()
    client = socketio.Client(reconnection=False)
    client.connect(stack.rasa_url, wait_timeout=10)
    try:
        assert wait_for(lambda: connections() >= before + 1)
        connected = connections()
    finally:
        # Say goodbye before closing: over long polling, `disconnect()` may drop the close packet,
        # and the server would notice only at its ping timeout (tests/e2e/test_live_handoff.py).
        for namespace in client.namespaces:
            client._send_packet(client.packet_class(packet.DISCONNECT, namespace=namespace))
        client.eio.queue.join()
        client.disconnect()
    assert wait_for(lambda: connections() <= connected - 1)


def test_metrics_token_and_json_logs_with_the_conversation(stack, sender, repo, tmp_path):
    """A second action server on the stack's stores, with a metrics token and JSON logs."""
    token = "test-metrics-token"
    env = {**stack.env, "SUPPORTBOT_LOG_FORMAT": "json", "SUPPORTBOT_METRICS_TOKEN": token}
    server = processes.action_server(processes.free_port(), tmp_path, env, repo)
    stack.texts(sender, "hi")
    tracker = stack.tracker(sender)
    message = {"intent": {"name": "request_human", "confidence": 1.0}, "entities": [], "message_id": "m-1",
               "text": "a person please", "metadata": {}}
    tracker["events"].append({"event": "user", "text": message["text"], "parse_data": message})
    tracker["latest_message"] = message
    call = {"next_action": "action_handoff", "sender_id": sender, "tracker": tracker,
            "domain": stack.api("/domain"), "version": "3.6.21"}
    with processes.running([server], timeout=60):
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert requests.get(f"{server.url}/metrics", headers=wrong, timeout=10).status_code == 401
        answer = requests.post(f"{server.url}/webhook", json=call, headers=stack.actions_auth, timeout=30)
        assert answer.status_code == 200, answer.text
        samples = scrape(server.url, {"Authorization": f"Bearer {token}"})
        assert total(samples, "supportbot_handoffs_total", reason="customer_request") == 1
    entries = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
    handoff = [e for e in entries if e["message"].startswith("Handoff H-") and "for" in e["message"]]
    assert handoff and all(e["conversation_id"] == sender and e["service"] == "actions" for e in handoff)
    assert {"time", "level", "logger"} <= set(handoff[0])
