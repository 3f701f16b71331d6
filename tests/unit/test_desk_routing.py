"""Team queues at the agents' desk (supportbot/handoff/desk.py): the queue by team, the most urgent
first; a move that takes the ticket along and is kept as a routing correction for the learning
loop (`supportbot learn routing`); the CLI's `handoffs queue --team` and `handoffs move`. On
SQLite and the real Postgres server, with the embedded ticket queue; no Rasa is needed."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy

from supportbot.cli import main as cli
from supportbot.errors import BackendUnavailable, Conflict, InvalidRequest
from supportbot.handoff.claims import Claims
from supportbot.handoff.client import RasaRelay
from supportbot.handoff.desk import Desk
from supportbot.learning.corrections import routing_corrections
from supportbot.learning.store import LearningStore
from supportbot.store import HandoffStore
from supportbot.ticketing.sql import SqlTicketing

CONTEXT = {"transcript": [{"from": "customer", "text": "where is my order", "intent": "order_status"},
                          {"from": "customer", "text": "a person please", "intent": "request_human"}]}


@pytest.fixture
def desk(db_url, tmp_path) -> Desk:
    tickets = SqlTicketing(f"sqlite:///{tmp_path / 'tickets.db'}")
    learning = LearningStore(f"sqlite:///{tmp_path / 'learning.db'}")
    return Desk(Claims(HandoffStore(db_url)), RasaRelay("http://127.0.0.1:9", "t"), ticketing=lambda: tickets,
                learning=lambda: learning)


def routed(desk: Desk, team: str, priority: str, minutes_ago: float = 0, ticket: bool = True):
    conversation = f"c-{uuid.uuid4().hex}"
    store = desk.claims.store
    record = store.record(conversation_id=conversation, idempotency_key=conversation, reason="customer_request",
                          customer_id=None, context=CONTEXT, team=team, priority=priority)
    with store.engine.begin() as db:
        db.execute(sqlalchemy.text("UPDATE handoffs SET created_at = :at WHERE id = :id"),
                   {"at": datetime.now(timezone.utc) - timedelta(minutes=minutes_ago), "id": record.id})
    if ticket:
        filed = desk.ticketing().create_ticket(requester="a@example.com", subject=record.reference, body="b",
                                               idempotency_key=record.id, queue=desk.team(team).queue,
                                               priority=priority)
        store.set_ticket(record.id, filed.id)
    return desk.claims.get(record.id)


def test_the_queue_is_the_most_urgent_first_then_the_longest_waiting_and_filters_by_team(desk):
    made = [routed(desk, "orders", "normal", 30), routed(desk, "billing", "urgent", 1),
            routed(desk, "orders", "high", 5), routed(desk, "orders", "normal", 60),
            routed(desk, "trust", "low", 90)]
    mine = {h.id for h in made}
    order = [i.handoff_id for i in desk.queue() if i.handoff_id in mine]
    assert order == [made[1].id, made[2].id, made[3].id, made[0].id, made[4].id]
    orders = [i for i in desk.queue(team="orders") if i.handoff_id in mine]
    assert [(i.team, i.priority) for i in orders] == [("orders", "high"), ("orders", "normal"),
                                                      ("orders", "normal")]
    with pytest.raises(InvalidRequest, match="Unknown team 'sales': one of billing, orders, technical, trust"):
        desk.queue(team="sales")


def test_a_move_takes_the_ticket_along_and_is_kept_once_as_a_routing_correction(desk):
    handoff = routed(desk, "orders", "high")
    moved = desk.move(handoff.reference, "Dana", "billing", source="cli")
    assert (moved.team, moved.priority) == ("billing", "high")
    assert desk.ticketing().queue_of(handoff.ticket_id) == ("billing", "high")
    desk.move(handoff.reference, "Dana", "billing")  # a retry: no second correction
    [kept] = [c for c in routing_corrections(desk._learning()) if c.handoff_id == handoff.id]
    assert (kept.conversation_id, kept.reason, kept.intent, kept.from_team, kept.to_team, kept.agent,
            kept.source) == (handoff.conversation_id, "customer_request", "order_status", "orders", "billing",
                             "Dana", "cli")
    with pytest.raises(InvalidRequest, match="Unknown team 'lawyers'"):
        desk.move(handoff.reference, "Dana", "lawyers")
    with pytest.raises(InvalidRequest, match="agent name"):
        desk.move(handoff.reference, " ", "trust")
    desk.claims.finish(handoff.reference, "Dana", "closed")
    with pytest.raises(Conflict, match="is over"):
        desk.move(handoff.reference, "Dana", "trust")


def test_a_ticketing_failure_keeps_the_move_and_says_how_to_finish_it(desk):
    handoff = routed(desk, "orders", "normal")

    def down():
        raise BackendUnavailable("ticket database unavailable")

    desk._adapter, desk._ticketing = None, down
    with pytest.raises(BackendUnavailable, match="in Trust and legal's queue now, but its ticket .* could not be "
                                                 "moved .* Move it again to retry"):
        desk.move(handoff.reference, "Dana", "trust")
    assert desk.claims.get(handoff.id).team == "trust"


def test_the_cli_lists_a_teams_queue_and_moves_with_exit_codes(desk, db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SUPPORTBOT_DB_URL", db_url)
    monkeypatch.setenv("SUPPORTBOT_TICKETING_DB_URL", f"sqlite:///{tmp_path / 'tickets.db'}")
    monkeypatch.setenv("SUPPORTBOT_LEARNING_DB_URL", f"sqlite:///{tmp_path / 'learning.db'}")
    handoff = routed(desk, "technical", "urgent")
    unreachable = ["--rasa-url", "http://127.0.0.1:9", "--token", "t"]
    assert cli(["handoffs", "queue", "--team", "technical", *unreachable]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (handoff.reference, "technical", "urgent") in {(i["reference"], i["team"], i["priority"])
                                                          for i in listed}
    assert {i["team"] for i in listed} == {"technical"}
    assert cli(["handoffs", "move", handoff.reference, "--team", "nowhere", "--agent", "Dana", *unreachable]) == 2
    assert "Unknown team 'nowhere'" in capsys.readouterr().err
    assert cli(["handoffs", "move", handoff.reference, "--team", "trust", "--agent", "Dana", *unreachable]) == 0
    assert f"{handoff.reference}: in Trust and legal's queue (trust); ticket {handoff.ticket_id} moved" in \
        capsys.readouterr().out
    assert desk.ticketing().queue_of(handoff.ticket_id) == ("trust", "urgent")
    assert cli(["learn", "routing"]) == 0
    assert "1 × order_status: technical -> trust" in capsys.readouterr().out
    assert cli(["learn", "routing", "--since", "yesterday"]) == 2
