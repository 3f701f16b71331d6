"""The routing map (supportbot/handoff/routing.py, routing.yml): which team's queue a handoff goes
to and its priority, and a wrong file refused with the reason. The handoff that files into the
queue: tests/ticketing/test_handoff.py and tests/e2e/test_live_handoff.py."""
from __future__ import annotations

import copy
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from supportbot.handoff import routing
from supportbot.handoff.routing import RoutingError
from supportbot.learning.labels import known_labels

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "routing.yml").read_text())


def turns(*said):
    """A recorded context with the customer's (text, intent) turns."""
    return {"transcript": [{"from": "customer", "text": text, "intent": intent} for text, intent in said]}


@pytest.fixture(scope="module")
def shipped() -> routing.Routing:
    return routing.load(REPO / "routing.yml")


def test_the_shipped_map_names_only_intents_of_the_domain_and_four_teams(shipped):
    assert set(shipped.teams) == {"billing", "orders", "technical", "trust"}
    assert set(shipped.intents) <= known_labels(REPO / "domain", REPO / "data")
    assert shipped.team("orders").name == "Orders and delivery" and shipped.team("billing").rt_queue == "Billing"


@pytest.mark.parametrize("reason, said, team", [
    ("legal", [("I want my data deleted under GDPR", "order_status")], "trust"),  # the reason decides
    ("refund_review", [("where is my order", "order_status")], "billing"),
    ("customer_request", [("where's my parcel", "order_status"), ("a human please", "request_human")], "orders"),
    ("customer_request", [("my invoice is wrong", "get_invoice"), ("and my order?", "order_status"),
                          ("agent", "request_human")], "orders"),  # the latest topic
    ("angry_complaint", [("I can't log in!!", "account_access")], "technical"),
    ("customer_request", [("hi", "greet"), ("a person", "request_human")], "orders"),  # no topic: the default
    ("not_understood", [("where is it and I'm furious", "order_status+complaint")], "orders"),  # a multi-intent
    ("customer_request", [], "orders"),
])
def test_the_team_is_the_reasons_else_the_latest_topics_else_the_default(shipped, reason, said, team):
    assert shipped.route(reason, turns(*said)).team == team


def test_priority_is_the_highest_any_rule_gives_with_the_rules_that_gave_it(shipped):
    calm = turns(("where is my order", "order_status"))
    assert shipped.route("customer_request", calm) == routing.Route("orders", "normal", ())
    angry = {**calm, "tone": {"angry": True, "anger": 0.9}}
    assert shipped.route("customer_request", angry).priority == "high"
    assert shipped.route("angry_complaint", calm).priority == "high"  # the reason says so too
    assert shipped.route("legal", calm) == routing.Route("trust", "urgent", ("legal request",))
    lawyer = turns(("My LAWYER will   hear of this", "complaint"))
    assert shipped.route("angry_complaint", lawyer) == routing.Route("orders", "urgent", ("legal words: lawyer",))
    issue = turns(("there's an issue with my order", "order_status"))
    assert shipped.route("customer_request", issue).priority == "normal"  # "issue" is not "sue"
    chargeback = turns(("I'll file a chargeback", "dispute_charge"))
    assert shipped.route("customer_request", chargeback) == routing.Route("billing", "urgent",
                                                                          ("legal words: chargeback",))


def test_the_amount_at_stake_comes_from_the_caller_or_the_quoted_refund(shipped):
    calm = turns(("refund please", "request_refund"))
    assert shipped.route("refund_review", calm, Decimal("199.99")).priority == "normal"
    assert shipped.route("refund_review", calm, Decimal("200")) == routing.Route(
        "billing", "high", ("amount 200 ≥ 200",))
    assert shipped.route("refund_review", calm, Decimal("1500")).priority == "urgent"
    quoted = {**calm, "slots": {"refund_quote": {"amount": "250.00", "currency": "USD"}}}
    assert shipped.route("customer_request", quoted).priority == "high"
    # What the customer typed is a claim: it never raises the priority.
    typed = {**calm, "slots": {"refund_amount": "5000", "refund_quote": {"amount": "not a number"}}}
    assert shipped.route("customer_request", typed).priority == "normal"


def test_the_plan_counts_only_as_the_billing_service_said_it(shipped):
    calm = turns(("cancel my subscription", "cancel_subscription"))
    looked_up = {**calm, "slots": {"subscription_pending": {"subscription_id": "S-1004", "plan": "Premium"}}}
    assert shipped.route("customer_request", looked_up) == routing.Route("billing", "high", ("plan Premium",))
    asked_for = {**calm, "slots": {"plan": "premium"}}  # the plan the customer wants: a claim
    assert shipped.route("customer_request", asked_for).priority == "normal"


def broken(change) -> dict:
    data = copy.deepcopy(SHIPPED)
    change(data)
    return data


@pytest.mark.parametrize("change, says", [
    (lambda d: d["reasons"].update(legal="lawyers"), r"reasons\.legal: unknown team 'lawyers' \(teams: billing"),
    (lambda d: d.update(default_team="sales"), "default_team: unknown team 'sales'"),
    (lambda d: d["intents"].update(sales=["order_status"]), "intents: unknown team 'sales'"),
    (lambda d: d["intents"]["billing"].append("order_status"), "'order_status' is listed for billing and orders"),
    (lambda d: d["priority"].update(angry="very"), r"priority\.angry: bad priority 'very' \(one of low, normal"),
    (lambda d: d["priority"]["amounts"].append({"at_least": "lots", "priority": "high"}),
     r"priority\.amounts\[2\]\.at_least: an amount"),
    (lambda d: d["priority"]["plans"].update(Plus="asap"), r"priority\.plans\.Plus: bad priority 'asap'"),
    (lambda d: d["teams"]["billing"].update(zendesk_group="billing"), "zendesk_group: a Zendesk group id"),
    (lambda d: d["teams"]["billing"].pop("rt_queue"), r"teams\.billing\.rt_queue: expected a name"),
    (lambda d: d["teams"].update({"Sales Team": d["teams"]["billing"]}), "is not a team key"),
    (lambda d: d.update(prioritys={}), "unknown key 'prioritys'"),
    (lambda d: d.update(teams={}), "at least one team"),
])
def test_a_wrong_map_is_refused_saying_where_and_why(change, says):
    with pytest.raises(RoutingError, match=says):
        routing.parse(broken(change))


def test_a_wrong_file_stops_the_action_server_at_start_with_the_reason(tmp_path):
    path = tmp_path / "routing.yml"
    path.write_text(yaml.safe_dump(broken(lambda d: d["reasons"].update(legal="lawyers"))))
    with pytest.raises(RoutingError, match=f"SUPPORTBOT_ROUTING_FILE: {path}: reasons.legal: unknown team"):
        routing.from_env({"SUPPORTBOT_ROUTING_FILE": str(path)})
    with pytest.raises(RoutingError, match="cannot be read"):
        routing.load(tmp_path / "missing.yml")
    (tmp_path / "bad.yml").write_text("teams: [")
    with pytest.raises(RoutingError, match="not valid YAML"):
        routing.load(tmp_path / "bad.yml")
    started = subprocess.run([sys.executable, "-m", "supportbot.action_server", "--port", "1"], cwd=REPO,
                             env={"SUPPORTBOT_ROUTING_FILE": str(path), "ACTION_SERVER_TOKEN": "t",
                                  "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and "reasons.legal: unknown team 'lawyers'" in started.stderr
