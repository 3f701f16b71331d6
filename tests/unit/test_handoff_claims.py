"""Claims, hand back, close and support-side messages in the store (supportbot/handoff/claims.py),
the store's migrations (supportbot/store_migrations), and the CLI's refusals that need no Rasa;
on SQLite and the real Postgres server."""
from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import List, Tuple

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from supportbot.cli import main as cli
from supportbot.errors import Conflict, InvalidRequest, NotFound
from supportbot.handoff import messages
from supportbot.handoff.claims import Claims, agent_name
from supportbot.handoff.estimate import BusinessHours
from supportbot.handoff.waiting import tell_wait
from supportbot.store import VERSION_TABLE, Base, HandoffStore

ALWAYS = BusinessHours.parse("Mon-Sun 00:00-24:00", "UTC")
NEVER_TODAY = BusinessHours.parse("Mon-Sun 23:59-24:00", "UTC")


@pytest.fixture
def claims(db_url) -> Claims:
    return Claims(HandoffStore(db_url))


def handoff(claims: Claims, created_at: datetime = None, customer_id: str = None):
    conversation = f"c-{uuid.uuid4().hex}"
    record = claims.store.record(conversation_id=conversation, idempotency_key=conversation,
                                 reason="customer_request", customer_id=customer_id, context={"transcript": []})
    if created_at is not None:
        with claims.store.engine.begin() as db:
            db.execute(sqlalchemy.text("UPDATE handoffs SET created_at = :at WHERE id = :id"),
                       {"at": created_at, "id": record.id})
    return claims.get(record.id)


def claim_at_once(db_url: str, reference: str, agents: List[str]) -> Tuple[List[str], List[str]]:
    """Every agent claims `reference` at the same moment, each on its own connection (as on
    another server); who won, and why the others lost."""
    start, won, lost = threading.Barrier(len(agents)), [], []

    def claim(agent: str) -> None:
        mine = Claims(HandoffStore(db_url))
        start.wait()
        try:
            won.append(mine.claim(reference, agent).claimed_by)
        except Conflict as error:
            lost.append(str(error))

    threads = [threading.Thread(target=claim, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, lost


def test_two_agents_claiming_at_once_exactly_one_wins(claims, db_url):
    for _ in range(3):
        record = handoff(claims)
        agents = [f"Agent {n}" for n in range(6)]
        won, lost = claim_at_once(db_url, record.reference, agents)
        assert len(won) == 1 and len(lost) == len(agents) - 1
        assert all(f"claimed by {won[0]}" in reason for reason in lost)
        assert claims.get(record.id).claimed_by == won[0]


def test_lifecycle_claim_say_hand_back(claims):
    record = handoff(claims)
    with pytest.raises(Conflict, match="waiting: claim it first"):
        claims.holder(record.reference, "Dana")
    with pytest.raises(Conflict, match="waiting: claim it first"):
        claims.finish(record.reference, "Dana", "handed_back")
    claimed = claims.claim(record.reference, "  Dana  ")
    assert claimed.status == "claimed" and claimed.claimed_by == "Dana" and claimed.claimed_at
    assert claims.claim(record.reference, "Dana").claimed_at == claimed.claimed_at  # a retry
    with pytest.raises(Conflict, match="claimed by Dana"):
        claims.holder(record.reference, "Sam")
    with pytest.raises(Conflict, match="claimed by Dana"):
        claims.finish(record.reference, "Sam", "closed")
    assert claims.holder(record.conversation_id, "Dana").id == record.id  # by conversation id too
    back = claims.finish(record.reference, "Dana", "handed_back")
    assert back.status == "handed_back" and back.resolved_at
    assert claims.finish(record.reference, "Dana", "handed_back").resolved_at == back.resolved_at
    with pytest.raises(Conflict, match="over \\(handed back\\)"):
        claims.claim(record.reference, "Sam")
    assert record.id not in [h.id for h in claims.queue()]


def test_an_unclaimed_handoff_can_be_closed_by_anyone(claims):
    record = handoff(claims)
    assert record.id in [h.id for h in claims.queue()]
    closed = claims.finish(record.reference, "Sam", "closed")
    assert closed.status == "closed" and closed.claimed_by == "Sam"
    assert claims.latest_active(record.conversation_id) is None


def test_references_ids_and_conversations_find_the_handoff(claims):
    record = handoff(claims)
    for ref in (record.reference, record.reference.lower(), record.id, record.conversation_id):
        assert claims.get(ref).id == record.id
    for ref in ("H-ZZZZZZZZ", "nope", "", "H-%"):
        with pytest.raises(NotFound):
            claims.get(ref)


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 65, "Dana\x00", 7])
def test_bad_agent_names_are_refused(name):
    with pytest.raises(InvalidRequest):
        agent_name(name)


def test_messages_are_stored_once_per_key_and_masked(claims):
    record = claims.claim(handoff(claims).reference, "Dana")
    first, created = claims.add_message(record, messages.AGENT, "Card 4111 1111 1111 1111? Never!", "k1", "Dana")
    assert created and "4111 1111" not in first.text and "ending 1111" in first.text
    again, created = claims.add_message(record, messages.AGENT, "another text", "k1", "Dana")
    assert not created and again.id == first.id and again.text == first.text
    other = claims.claim(handoff(claims).reference, "Dana")
    elsewhere, created = claims.add_message(other, messages.AGENT, "hello", "k1", "Dana")
    assert created and elsewhere.id != first.id  # keys are per handoff
    assert [m.id for m in claims.messages(record.conversation_id)] == [first.id]
    claims.mark_delivered([first.id])
    delivered = claims.message(first.id).delivered_at
    claims.mark_delivered([first.id])
    assert delivered is not None and claims.message(first.id).delivered_at == delivered
    for text in ("", "  ", "x" * 2001):
        with pytest.raises(InvalidRequest):
            claims.add_message(record, messages.AGENT, text, f"k-{len(text)}", "Dana")


def test_the_same_key_at_the_same_moment_is_one_message(claims, db_url):
    record = claims.claim(handoff(claims).reference, "Dana")
    start, ids = threading.Barrier(4), []

    def send() -> None:
        mine = Claims(HandoffStore(db_url))
        start.wait()
        ids.append(mine.add_message(record, messages.AGENT, "hi", "same", "Dana")[0].id)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1 and len(claims.messages(record.conversation_id)) == 1


def test_overdue_counts_business_time_and_notifies_once(claims):
    now = datetime.now(timezone.utc)
    late = handoff(claims, created_at=now - timedelta(minutes=20))
    fresh = handoff(claims, created_at=now - timedelta(minutes=5))
    overdue = {h.id for h in claims.overdue(ALWAYS, timedelta(minutes=15), now)}
    assert late.id in overdue and fresh.id not in overdue
    assert late.id not in {h.id for h in claims.overdue(NEVER_TODAY, timedelta(minutes=15), now)}
    assert claims.offer_email(late.id) and not claims.offer_email(late.id)
    assert late.id not in {h.id for h in claims.overdue(ALWAYS, timedelta(minutes=15), now)}


def test_recent_waits_and_what_the_customer_is_told(tmp_path, monkeypatch):
    """On a database of its own: the estimate reads the most recent claims of all."""
    claims = Claims(HandoffStore(f"sqlite:///{tmp_path / 'waits.db'}"))
    monkeypatch.setenv("SUPPORTBOT_BUSINESS_HOURS", "Mon-Sun 00:00-24:00")
    monkeypatch.setenv("SUPPORTBOT_HANDOFF_WAIT_SAMPLE", "3")
    first = handoff(claims)
    assert "about 10 min" in tell_wait(claims, first)  # nothing claimed yet: the default
    now = datetime.now(timezone.utc)
    for order, minutes in enumerate((30, 2, 4, 6)):  # the oldest claim (30 min) falls out of the sample of 3
        claimed_at = now - timedelta(seconds=10 - order)
        record = handoff(claims, created_at=claimed_at - timedelta(minutes=minutes))
        claims.claim(record.reference, "Dana", now=claimed_at)
    assert sorted(round(w / 60) for w in claims.recent_waits(ALWAYS, 3)) == [2, 4, 6]
    second = handoff(claims, customer_id="C-1001")
    assert "about 4 min" in tell_wait(claims, second)
    assert claims.get(second.id).told_wait_minutes == 4 and claims.get(second.id).email_offered_at is None
    monkeypatch.setenv("SUPPORTBOT_BUSINESS_HOURS", "Mon-Sun 23:59-24:00")
    closed = tell_wait(claims, second, now=now.replace(hour=12))
    assert "not in right now" in closed and "address on your account" in closed
    assert claims.get(second.id).told_wait_minutes is None and claims.get(second.id).email_offered_at


def test_the_migrations_build_the_schema_the_code_declares(db_url):
    HandoffStore(db_url)
    engine = sqlalchemy.create_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        ours = set(Base.metadata.tables)  # other stores' tables may share the database
        diff = [d for d in compare_metadata(context, Base.metadata) if _table_of(d) in ours]
        assert diff == []
        assert connection.execute(sqlalchemy.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "0003"


def test_a_database_from_before_the_migrations_is_adopted(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # as HandoffStore's create_all made it
        db.executescript("""
            CREATE TABLE handoffs (id VARCHAR(36) NOT NULL PRIMARY KEY,
              conversation_id VARCHAR(255) NOT NULL, idempotency_key VARCHAR(255) NOT NULL UNIQUE,
              reason VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, customer_id VARCHAR(64),
              context_json TEXT NOT NULL, created_at DATETIME NOT NULL, resolved_at DATETIME);
            CREATE INDEX ix_handoffs_conversation_id ON handoffs (conversation_id);
            INSERT INTO handoffs VALUES ('0123abcd-0000-0000-0000-000000000000', 'c-old', 'k', 'legal', 'open',
              'C-1', '{"transcript": []}', '2026-12-01 10:00:00.000000', NULL);""")
    claims = Claims(HandoffStore(f"sqlite:///{path}"))
    [old] = claims.queue()
    assert old.reference == "H-0123ABCD" and old.reason == "legal" and old.claimed_by is None
    assert claims.claim(old.reference, "Dana").status == "claimed"


def test_the_cli_refuses_without_asking_rasa(db_url, monkeypatch, capsys):
    claims = Claims(HandoffStore(db_url))
    monkeypatch.setenv("SUPPORTBOT_DB_URL", db_url)
    unreachable: List[str] = ["--rasa-url", "http://127.0.0.1:9", "--token", "t"]
    assert cli(["handoffs", "claim", "H-FFFFFFFF", "--agent", "Dana", *unreachable]) == 2
    assert "No handoff" in capsys.readouterr().err
    record = claims.claim(handoff(claims).reference, "Dana")
    assert cli(["handoffs", "claim", record.reference, "--agent", "Sam", *unreachable]) == 1
    assert "claimed by Dana" in capsys.readouterr().err
    assert cli(["handoffs", "say", record.reference, "--agent", "Sam", "hello", *unreachable]) == 1
    assert cli(["handoffs", "claim", record.reference, "--agent", " ", *unreachable]) == 2
    assert "agent name" in capsys.readouterr().err
    # Dana holds it, but Rasa is unreachable: refused with the reason, the claim stays.
    assert cli(["handoffs", "say", record.reference, "--agent", "Dana", "hi", *unreachable]) == 1
    assert "unreachable" in capsys.readouterr().err
    assert claims.get(record.id).claimed_by == "Dana"


def _table_of(difference) -> str:
    """The table an Alembic autogenerate difference is about."""
    if isinstance(difference, list):  # modify_* come as lists of tuples
        return difference[0][2]
    kind, target = difference[0], difference[1]
    if kind.endswith("_table"):
        return target.name
    if kind.endswith("_index") or kind.endswith("_constraint"):
        return target.table.name
    return difference[2]  # add_column / remove_column: (kind, schema, table, column)
