"""Agent corrections (supportbot/learning/corrections.py): which turn a correction labels, its
idempotence and replacement, its refusals, the CLI, and handoff tickets of the embedded queue
resolved under another intent, read once; on SQLite and the real Postgres server. Conversations
reach the store through the real collector, from events as Rasa's SQL event broker writes them.
RT and Zendesk: tests/ticketing/test_ticket_corrections.py."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy

from supportbot.learning import corrections, review
from supportbot.learning.collector import Collector
from supportbot.learning.corrections import UnknownIntent, UnknownTurn, read_tickets, record_correction
from supportbot.learning.labels import known_labels
from supportbot.learning.store import LearningStore, TurnRow
from supportbot.store import HandoffStore
from supportbot.ticketing.sql import SqlTicketing

REPO = Path(__file__).resolve().parents[2]
LABELS = known_labels(REPO / "domain", REPO / "data")


class Rasa:
    """Conversations as Rasa's SQL event broker records them, collected into the learning store."""

    def __init__(self, tmp_path: Path, store: LearningStore) -> None:
        self.url = f"sqlite:///{tmp_path / 'events.db'}"
        self.engine = sqlalchemy.create_engine(self.url)
        with self.engine.begin() as db:
            db.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), data TEXT)")
        self.collector = Collector(store, self.url, f"sqlite:///{tmp_path / 'feedback.db'}")

    def say(self, *turns, handoff: bool = False) -> str:
        """A conversation of (text, intent, confidence) turns a minute ago, ending in a handoff or not."""
        sender, at = f"c-{uuid.uuid4().hex[:12]}", time.time() - 60
        events = [{"event": "user", "text": text, "message_id": uuid.uuid4().hex, "timestamp": at + i,
                   "parse_data": parse(intent, confidence)}
                  for i, (text, intent, confidence) in enumerate(turns)]
        if handoff:
            events.append({"event": "action", "name": "action_handoff", "timestamp": at + len(turns)})
        with self.engine.begin() as db:
            for event in events:
                db.exec_driver_sql("INSERT INTO events (sender_id, data) VALUES (?, ?)",
                                   (sender, json.dumps(event)))
        self.collector.run_once()
        return sender


@pytest.fixture
def store(db_url):
    store = LearningStore(db_url)
    with store.session() as session, session.begin():  # Postgres is shared between tests
        session.query(TurnRow).delete()
    return store


@pytest.fixture
def rasa(tmp_path, store):
    return Rasa(tmp_path, store)


def parse(intent, confidence):
    """Rasa's parse data; an intent `fallback:<guess>` is a message that fell back, the classifier's
    top guess below nlu_fallback."""
    if intent.startswith("fallback:"):
        guess = intent.partition(":")[2]
        return {"intent": {"name": "nlu_fallback", "confidence": 0.7}, "entities": [],
                "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.7},
                                   {"name": guess, "confidence": confidence}]}
    return {"intent": {"name": intent, "confidence": confidence}, "entities": []}


REFUND_THEN_PERSON = [("hi", "greet", 0.99), ("my refund never came", "order_status", 0.48),
                      ("let me talk to a person", "request_human", 1.0)]


def correct(store, conversation_id, intent, **kwargs):
    kwargs.setdefault("source", "cli")
    return record_correction(store, conversation_id=conversation_id, intent=intent, labels=LABELS, **kwargs)


def test_a_correction_labels_the_turn_that_led_to_the_handoff_and_waits_for_accept_all(store, rasa):
    sender = rasa.say(*REFUND_THEN_PERSON, handoff=True)
    before = datetime.now(timezone.utc)
    turn = correct(store, sender, "refund_status", agent="ann")
    # Not "let me talk to a person": that turn says how the conversation went, not what it was about.
    assert (turn.text, turn.intent, turn.label) == ("my refund never came", "order_status", "refund_status")
    assert (turn.label_source, turn.labelled_by, turn.status) == ("cli", "ann", "new")
    assert {"agent_corrected", "handoff_followed"} <= set(turn.reasons)
    assert before <= turn.labelled_at <= datetime.now(timezone.utc)
    assert [t.label for t in store.turns(sender)] == [None, "refund_status", None]
    assert review.queue(store, source="cli")["refund_status"][0].turns[0].id == turn.id
    assert review.accept_all(store, LABELS, source="cli") == 1
    [accepted] = [t for t in store.turns(sender) if t.status == "accepted"]
    assert (accepted.id, accepted.label, accepted.label_source) == (turn.id, "refund_status", "cli")


def test_without_a_handoff_the_latest_turn_that_names_a_topic(store, rasa):
    sender = rasa.say(("where's my parcel", "order_status", 0.9), ("I want my money back", "get_invoice", 0.5),
                      ("yes", "affirm", 0.97))
    assert correct(store, sender, "request_refund").text == "I want my money back"
    first = store.turns(sender)[0]
    assert correct(store, sender, "cancel_order", turn_id=first.id).label == "cancel_order"  # --turn


def test_the_same_correction_twice_writes_once_and_a_later_one_replaces_it(store, rasa):
    sender = rasa.say(*REFUND_THEN_PERSON, handoff=True)
    first = correct(store, sender, "refund_status", agent="ann")
    again = correct(store, sender, "refund_status", agent="ann", source="api")
    by_other = correct(store, sender, "refund_status", agent="bob")  # agrees: ann's label stays
    assert again.labelled_at == first.labelled_at
    assert (by_other.labelled_by, by_other.label_source) == ("ann", "cli")
    replaced = correct(store, sender, "request_refund", agent="bob", source="api")
    assert (replaced.id, replaced.label, replaced.labelled_by, replaced.label_source) == (
        first.id, "request_refund", "bob", "api")
    assert replaced.labelled_at > first.labelled_at


def test_a_correction_reopens_a_reviewed_turn(store, rasa):
    sender = rasa.say(("my refund never came", "order_status", 0.45))
    [turn] = store.turns(sender)
    review.decide(store, [turn.id], review.ACCEPTED, LABELS)  # the reviewer took the model's guess
    assert correct(store, sender, "order_status").status == "accepted"  # agrees with the review: unchanged
    reopened = correct(store, sender, "refund_status")
    assert (reopened.status, reopened.label) == ("new", "refund_status")


@pytest.mark.parametrize("conversation, intent, kwargs, error, message", [
    ("known", "refund_stauts", {}, UnknownIntent, "unknown intent 'refund_stauts'"),
    ("known", "nlu_fallback", {}, UnknownIntent, "unknown intent"),
    ("nobody", "refund_status", {}, UnknownTurn, "no turns of conversation 'nobody'"),
    ("known", "refund_status", {"turn_id": 10**9}, UnknownTurn, "no turn 1000000000 in conversation"),
    ("other", "refund_status", {"turn_id": "known"}, UnknownTurn, "no turn"),
    ("chitchat", "refund_status", {}, UnknownTurn, "no customer turn that names a topic"),
    ("known", "refund_status", {"source": ""}, corrections.CorrectionError, "the source must be"),
    ("known", "refund_status", {"agent": "x" * 256}, corrections.CorrectionError, "the agent's name"),
])
def test_refusals_are_typed_value_errors_and_write_nothing(store, rasa, conversation, intent, kwargs, error,
                                                           message):
    ids = {"known": rasa.say(*REFUND_THEN_PERSON, handoff=True), "other": rasa.say(("hello", "greet", 0.9)),
           "chitchat": rasa.say(("hi", "greet", 0.9), ("a person please", "request_human", 1.0), handoff=True),
           "nobody": "nobody"}
    if kwargs.get("turn_id") == "known":
        kwargs["turn_id"] = store.turns(ids["known"])[1].id  # a turn of another conversation
    with pytest.raises(error, match=message) as raised:
        correct(store, ids[conversation], intent, **kwargs)
    assert isinstance(raised.value, ValueError)
    assert all(t.label is None and "agent_corrected" not in t.reasons for t in store.turns())


def test_the_schema_has_who_and_when(db_url):
    LearningStore(db_url)
    engine = sqlalchemy.create_engine(db_url)
    columns = {c["name"] for c in sqlalchemy.inspect(engine).get_columns("learning_turns")}
    assert {"labelled_by", "labelled_at"} <= columns


def test_the_cli_corrects_and_refuses_with_exit_2(store, rasa, db_url, capsys, monkeypatch):
    from supportbot.cli import main

    monkeypatch.chdir(REPO)  # the intents are read from domain/ and data/
    sender = rasa.say(*REFUND_THEN_PERSON, handoff=True)
    assert main(["learn", "correct", sender, "refund_status", "--agent", "ann", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "labelled refund_status (the assistant understood order_status (0.48)) by ann: my refund" in out
    assert main(["learn", "correct", sender, "refund_stauts", "--db", db_url]) == 2
    assert "unknown intent 'refund_stauts'" in capsys.readouterr().err
    assert main(["learn", "correct", "nobody", "refund_status", "--db", db_url]) == 2
    assert "no turns of conversation 'nobody'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["learn", "tickets", "--since", "last tuesday", "--db", db_url])
    assert exit_.value.code == 2 and "not a date or time" in capsys.readouterr().err


# -- handoff tickets of the embedded queue


@pytest.fixture
def desk(tmp_path):
    """The handoff records and the embedded ticket queue, as the action server writes them."""
    url = f"sqlite:///{tmp_path / 'supportbot.db'}"
    return HandoffStore(url), SqlTicketing(url)


def hand_off(desk, sender, reason="customer_request"):
    """What actions/handoff.py does: the record, then its ticket."""
    handoffs, queue = desk
    key = uuid.uuid4().hex
    record = handoffs.record(conversation_id=sender, idempotency_key=key, reason=reason, customer_id=None,
                             context={})
    return queue.create_ticket(requester="chat@anonymous.invalid", subject=f"Chat handoff {record.reference}: "
                               f"{reason}", body="...", tags=["chat-handoff", reason], idempotency_key=key).id


def test_a_handoff_ticket_resolved_under_another_intent_corrects_the_turn_once(store, rasa, desk):
    handoffs, queue = desk
    wrong = rasa.say(*REFUND_THEN_PERSON, handoff=True)
    right = rasa.say(("where is my order 4817263", "order_status", 0.55), ("a human please", "request_human", 1.0),
                     handoff=True)
    tickets = {name: hand_off(desk, sender) for name, sender in (("wrong", wrong), ("right", right),
                                                                  ("bare", right), ("typo", right))}
    ghost = queue.create_ticket(requester="a@example.com", subject="Chat handoff H-DEADBEEF: legal", body="b",
                                idempotency_key=uuid.uuid4().hex).id
    own = queue.create_ticket(requester="a@example.com", subject="Refund for order 4817263", body="b",
                              idempotency_key=uuid.uuid4().hex).id
    queue.set_status(tickets["wrong"], "resolved", category="refund_status", by="ann")
    queue.set_status(tickets["right"], "closed", category="order_status")
    queue.set_status(tickets["bare"], "resolved")
    queue.set_status(tickets["typo"], "resolved", category="refund_stauts")
    queue.set_status(ghost, "resolved", category="legal_request")
    queue.set_status(own, "resolved", category="refund_status")
    queue.set_status(queue.create_ticket(requester="a@example.com", subject="open", body="b",
                                         idempotency_key=uuid.uuid4().hex).id, "open")

    result = read_tickets(store, queue, handoffs, labels=LABELS)
    counts = (result.read, result.corrected, result.agreed, result.uncategorised, result.not_handoffs)
    assert counts == (6, 1, 1, 1, 1)
    assert result.skipped == [f"ticket {tickets['typo']}: its category 'refund_stauts' is not an intent",
                              f"ticket {ghost}: no handoff H-DEADBEEF in the store"]
    turn = next(t for t in store.turns(wrong) if t.label)
    assert (turn.text, turn.label, turn.label_source) == ("my refund never came", "refund_status", "ticket:sqlite")
    assert turn.labelled_by == f"ticket {tickets['wrong']} (ann)" and "ticket_recategorised" in turn.reasons
    assert [t.label for t in store.turns(right)] == [None, None]

    again = read_tickets(store, queue, handoffs, labels=LABELS)  # the cursor: nothing read twice
    assert (again.read, again.corrected) == (0, 0)
    queue.set_status(tickets["wrong"], "open")  # reopened, then resolved under another intent
    queue.set_status(tickets["wrong"], "resolved", category="request_refund", by="bob")
    later = read_tickets(store, queue, handoffs, labels=LABELS)
    assert (later.read, later.corrected) == (1, 1)
    turn = next(t for t in store.turns(wrong) if t.label)
    assert (turn.label, turn.labelled_by) == ("request_refund", f"ticket {tickets['wrong']} (bob)")
    # --since reads again what the cursor passed (each ticket as it is now): nothing written twice.
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    rerun = read_tickets(store, queue, handoffs, labels=LABELS, since=an_hour_ago)
    assert (rerun.read, rerun.corrected, rerun.unchanged) == (6, 0, 1)


def test_a_run_that_fails_midway_writes_nothing_and_the_next_run_does_it_all(store, rasa, desk, monkeypatch):
    handoffs, queue = desk
    senders = [rasa.say(*REFUND_THEN_PERSON, handoff=True) for _ in range(2)]
    for sender in senders:
        queue.set_status(hand_off(desk, sender), "resolved", category="refund_status")
    applied = []
    real = corrections._apply_ticket

    def crash_on_the_second(*args):
        if applied:
            raise RuntimeError("the machine went down")
        applied.append(real(*args))

    monkeypatch.setattr(corrections, "_apply_ticket", crash_on_the_second)
    with pytest.raises(RuntimeError):
        read_tickets(store, queue, handoffs, labels=LABELS)
    assert not any(t.label for t in store.turns())
    monkeypatch.setattr(corrections, "_apply_ticket", real)
    assert read_tickets(store, queue, handoffs, labels=LABELS).corrected == 2
    assert read_tickets(store, queue, handoffs, labels=LABELS).read == 0


def test_the_sqlite_queue_lists_resolutions_oldest_first(desk):
    _, queue = desk
    start = datetime.now(timezone.utc)
    ids = [queue.create_ticket(requester="a@example.com", subject=f"t{i}", body="b",
                               idempotency_key=uuid.uuid4().hex).id for i in range(3)]
    queue.set_status(ids[2], "resolved", category="order_status", by="ann")
    queue.set_status(ids[0], "closed")
    queue.set_status(ids[1], "pending")
    middle = datetime.now(timezone.utc)
    queue.set_status(ids[1], "resolved", category="faq/returns")
    resolved = queue.resolved_since()
    assert [(t.id, t.status, t.category, t.resolved_by) for t in resolved] == [
        (ids[2], "resolved", "order_status", "ann"), (ids[0], "closed", None, None),
        (ids[1], "resolved", "faq/returns", None)]
    assert all(start <= t.resolved_at <= datetime.now(timezone.utc) for t in resolved)
    assert [t.id for t in queue.resolved_since(middle)] == [ids[1]]


def test_the_cli_reads_the_configured_ticketing_backend(store, rasa, desk, db_url, tmp_path, capsys, monkeypatch):
    from supportbot.cli import main

    handoffs, queue = desk
    sender = rasa.say(*REFUND_THEN_PERSON, handoff=True)
    queue.set_status(hand_off(desk, sender), "resolved", category="refund_status")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("SUPPORTBOT_TICKETING", "sqlite")
    monkeypatch.setenv("SUPPORTBOT_DB_URL", queue.db_url)  # handoffs and tickets, as `supportbot run` keeps them
    monkeypatch.delenv("SUPPORTBOT_TICKETING_DB_URL", raising=False)
    assert main(["learn", "tickets", "--db", db_url]) == 0
    assert "1 resolved tickets read: 1 corrections" in capsys.readouterr().out
    assert main(["learn", "tickets", "--db", db_url]) == 0
    assert "0 resolved tickets read" in capsys.readouterr().out
    monkeypatch.setenv("SUPPORTBOT_TICKETING", "rt")
    monkeypatch.delenv("RT_PASSWORD", raising=False)
    assert main(["learn", "tickets", "--db", db_url]) == 2
    assert "RT_PASSWORD must be set" in capsys.readouterr().err


def test_a_ticket_confirming_the_guess_of_a_message_that_fell_back_labels_it(store, rasa, desk):
    """The assistant answered it as unclear: the classifier's guess is no answer it gave, so the
    agent's category is the label even when it is that guess."""
    handoffs, queue = desk
    sender = rasa.say(("please zorbify my order", "fallback:cancel_order", 0.45),
                      ("a human please", "request_human", 1.0), handoff=True)
    queue.set_status(hand_off(desk, sender), "resolved", category="cancel_order", by="dana")
    result = read_tickets(store, queue, handoffs, labels=LABELS)
    assert (result.corrected, result.agreed) == (1, 0)
    [turn] = [t for t in store.turns(sender) if t.label]
    assert (turn.text, turn.intent, turn.label) == ("please zorbify my order", "cancel_order", "cancel_order")
