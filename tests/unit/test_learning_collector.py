"""The collector reads Rasa's SQL event broker table into the learning store (SQLite and the real
Postgres server), masks what customers typed, marks review candidates, and never writes a turn
twice. The broker table is written here as Rasa's SQLEventBroker writes it; tests/e2e/
test_learning_capture.py checks the same against a running Rasa server."""
from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy
from alembic.script import ScriptDirectory

from supportbot.learning.collector import Collector, mask
from supportbot.learning.store import MIGRATIONS, LearningStore
from supportbot.store import FeedbackStore


def user(text, intent, confidence, ranking=(), message_id=None, entities=()):
    parse = {"intent": {"name": intent, "confidence": confidence},
             "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking] or
                               [{"name": intent, "confidence": confidence}],
             "entities": list(entities)}
    return {"event": "user", "text": text, "parse_data": parse, "input_channel": "rest",
            "message_id": message_id or uuid.uuid4().hex, "timestamp": 1764900000.0,
            "metadata": {"model_id": "m1"}}


def action(name):
    return {"event": "action", "name": name, "timestamp": 1764900000.0}


class Broker:
    """A SQL event broker database, as Rasa's SQLEventBroker writes it."""

    def __init__(self, url):
        self.url = url
        self.engine = sqlalchemy.create_engine(url)
        with self.engine.begin() as db:
            db.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), data TEXT)")

    def publish(self, sender, *events):
        with self.engine.begin() as db:
            for event in events:
                db.exec_driver_sql("INSERT INTO events (sender_id, data) VALUES (?, ?)",
                                   (sender, json.dumps(event)))


@pytest.fixture
def setup(db_url, tmp_path):
    broker = Broker(f"sqlite:///{tmp_path / 'events.db'}")
    feedback_url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = LearningStore(db_url)
    return broker, store, Collector(store, broker.url, feedback_url), FeedbackStore(feedback_url)


def test_turns_are_stored_masked_with_their_understanding(setup):
    broker, store, collector, _ = setup
    sender = f"c-{uuid.uuid4().hex}"
    broker.publish(sender, action("action_session_start"),
                   user("my card 4111 1111 1111 1111 and mail jo@example.com, call +44 20 7946 0958",
                        "payment_problem", 0.93, [("payment_problem", 0.93), ("update_payment_method", 0.04),
                                                  ("dispute_charge", 0.02), ("greet", 0.01)],
                        entities=[{"entity": "email", "value": "jo@example.com"}]),
                   {"event": "bot", "text": "Sorry to hear that."})
    assert collector.run_once() == 3
    [turn] = store.turns(sender)
    assert "4111" not in turn.text and "jo@example.com" not in turn.text and "7946" not in turn.text
    assert "[card number ending 1111]" in turn.text and "[email]" in turn.text and "[phone]" in turn.text
    assert (turn.intent, turn.confidence, turn.channel, turn.model_id) == ("payment_problem", 0.93, "rest", "m1")
    assert [r["name"] for r in turn.ranking] == ["payment_problem", "update_payment_method", "dispute_charge"]
    assert turn.entities == [{"entity": "email", "value": "[email]"}]
    assert turn.reasons == []


def test_candidates_fallback_low_confidence_close_call_and_the_button_label(setup):
    broker, store, collector, _ = setup
    sender = f"c-{uuid.uuid4().hex}"
    broker.publish(sender,
                   user("my thingy is broken", "nlu_fallback", 0.4,
                        [("nlu_fallback", 0.4), ("report_bug", 0.31), ("complaint", 0.28)]),
                   action("action_handle_nlu_fallback"),
                   user("/report_bug", "report_bug", 1.0),
                   user("where is order 4817263", "order_status", 0.97,
                        [("order_status", 0.97), ("cancel_order", 0.01)]))
    collector.run_once()
    unclear, clear = store.turns(sender)
    assert unclear.text == "my thingy is broken" and unclear.intent == "report_bug" and unclear.fell_back
    assert unclear.reasons == ["clarified", "close_call", "fallback", "low_confidence"]
    assert (unclear.label, unclear.label_source) == ("report_bug", "customer_button")
    assert clear.reasons == [] and clear.label is None
    assert [t.id for t in store.turns(candidates_only=True) if t.conversation_id == sender] == [unclear.id]


def test_a_handoff_marks_the_two_turns_before_it(setup):
    broker, store, collector, _ = setup
    sender = f"c-{uuid.uuid4().hex}"
    texts = ["hello", "where is my parcel", "this is useless", "I said where is my parcel"]
    broker.publish(sender, *[user(t, "order_status", 0.9) for t in texts])
    collector.run_once()
    broker.publish(sender, action("action_handoff"))  # arrives in a later batch
    collector.run_once()
    assert [t.reasons for t in store.turns(sender)] == [[], [], ["handoff_followed"], ["handoff_followed"]]


def test_a_vote_down_marks_the_turn_it_answered(setup):
    broker, store, collector, feedback = setup
    sender = f"c-{uuid.uuid4().hex}"
    broker.publish(sender, user("what does shipping cost", "faq", 0.8, message_id="m-up"),
                   user("and to Norway?", "faq", 0.7, message_id="m-down"))
    collector.run_once()
    feedback.save(conversation_id=sender, kind="answer", value=1, message_id="m-up", answer_index=0)
    feedback.save(conversation_id=sender, kind="answer", value=-1, message_id="m-down", answer_index=0)
    collector.run_once()
    assert [t.reasons for t in store.turns(sender)] == [[], ["voted_down"]]


def slot(name, value):
    return {"event": "slot", "name": name, "value": value, "timestamp": 1764900000.0}


def test_the_verified_customer_of_a_conversation_is_kept_once(setup):
    broker, store, collector, _ = setup
    from supportbot.learning.store import ConversationCustomerRow

    signed_in, verified_later, anonymous = (f"c-{uuid.uuid4().hex}" for _ in range(3))
    broker.publish(signed_in, slot("customer_id", "cust-7"), user("hi", "greet", 0.9))  # before any turn
    broker.publish(verified_later, user("where is my order", "order_status", 0.9),
                   slot("customer_id", "cust-8"), slot("customer_id", None), slot("customer_id", "cust-9"))
    broker.publish(anonymous, user("hello", "greet", 0.9), slot("email", "x@example.com"),
                   slot("customer_id", ""), slot("customer_id", "x" * 65))
    collector.run_once()
    with store.session() as session:
        kept = {row.conversation_id: row.customer_id for row in session.query(ConversationCustomerRow)
                if row.conversation_id in (signed_in, verified_later, anonymous)}  # Postgres is shared
    assert kept == {signed_in: "cust-7", verified_later: "cust-8"}  # the first stays; nothing else is one


def test_nothing_is_written_twice(setup, tmp_path):
    broker, store, collector, _ = setup
    sender = f"c-{uuid.uuid4().hex}"
    event = user("refund please", "request_refund", 0.9, message_id="m-1")
    broker.publish(sender, event, event)  # a redelivered event
    collector.run_once()
    collector.run_once()
    # A second collector (a restart) on the same store starts from the stored cursor.
    assert Collector(store, broker.url, f"sqlite:///{tmp_path / 'feedback.db'}").run_once() == 0
    assert len(store.turns(sender)) == 1


def test_a_vote_on_a_turn_beyond_the_first_batch_of_a_backlog_is_kept(setup):
    broker, store, collector, feedback = setup
    sender = f"c-{uuid.uuid4().hex}"
    broker.publish(sender, *[user(f"message {i}", "greet", 0.99, message_id=f"m-{i}") for i in range(30)])
    feedback.save(conversation_id=sender, kind="answer", value=-1, message_id="m-25", answer_index=0)
    assert collector.run_once(batch=10) == 30
    assert [t.message_id for t in store.turns(sender) if "voted_down" in t.reasons] == ["m-25"]


def test_many_batches(setup):
    broker, store, collector, _ = setup
    sender = f"c-{uuid.uuid4().hex}"
    broker.publish(sender, *[user(f"message {i}", "greet", 0.99) for i in range(250)])
    assert collector.run_once(batch=100) == 250
    assert len(store.turns(sender)) == 250


@pytest.mark.parametrize("text, masked", [
    ("mail me at a.b+c@mail.example.co.uk now", "mail me at [email] now"),
    ("order 4817263 please", "order 4817263 please"),  # order ids stay: they are what we learn from
    ("ring 0044 (0)20-7946 0958", "ring [phone]"),
    ("ünïcödé 😀", "ünïcödé 😀"),
])
def test_mask(text, masked):
    assert mask(text) == masked


def test_the_schema_is_migrated_once(db_url):
    LearningStore(db_url)
    LearningStore(db_url)  # an existing store is upgraded in place, not recreated
    engine = sqlalchemy.create_engine(db_url)
    with engine.connect() as db:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()  # the newest file in migrations/versions
        assert db.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head


def test_the_cli_collects_once(tmp_path, capsys):
    from supportbot.cli import main

    broker = Broker(f"sqlite:///{tmp_path / 'events.db'}")
    broker.publish("c-cli", user("hello", "greet", 0.99), user("bye", "goodbye", 0.98))
    learning = f"sqlite:///{tmp_path / 'learning.db'}"
    assert main(["learn", "collect", "--events", broker.url, "--db", learning]) == 0
    assert "2 events read" in capsys.readouterr().out
    assert [t.text for t in LearningStore(learning).turns("c-cli")] == ["hello", "bye"]


@pytest.mark.slow  # starts a process
def test_the_collector_supportbot_run_starts_follows_the_broker(tmp_path):
    """processes.collector, as `supportbot run` starts it: a turn published after it started is in
    the store a few seconds later, and it stops with the other servers."""
    import time

    from supportbot import processes

    broker = Broker(f"sqlite:///{tmp_path / 'events.db'}")
    learning = f"sqlite:///{tmp_path / 'learning.db'}"
    env = {"SUPPORTBOT_EVENTS_DB_URL": broker.url, "SUPPORTBOT_LEARNING_DB_URL": learning,
           "SUPPORTBOT_DB_URL": f"sqlite:///{tmp_path / 'supportbot.db'}"}
    worker = processes.collector(tmp_path / "logs", env, tmp_path)
    with processes.running([worker], timeout=30):
        broker.publish("c-follow", user("where is my order 4817263", "order_status", 0.97))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not LearningStore(learning).turns("c-follow"):
            time.sleep(0.5)
        assert [t.text for t in LearningStore(learning).turns("c-follow")] == ["where is my order 4817263"]
    assert worker.process.poll() is not None
