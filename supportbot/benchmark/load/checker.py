"""After a load test: did every conversation reach the tracker store whole, and did every
confirmed refund reach the billing database exactly once?

The Locust users log each conversation they held (`Conversation`: what they sent, in order, and
the refund ids the assistant confirmed). The tracker store is read back by URL (SQLite or
Postgres, Rasa's `events` table) and the billing database's `refunds` table likewise.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence


@dataclass
class Conversation:
    sender: str
    channel: str
    scenario: str
    sent: List[str] = field(default_factory=list)  # answered messages, in the order sent
    in_flight: Optional[str] = None  # sent, but the run stopped before its answer came
    refunds: List[str] = field(default_factory=list)  # refund ids the assistant confirmed

    @classmethod
    def from_json(cls, line: str) -> Conversation:
        return cls(**json.loads(line))


@dataclass
class StoredTurn:
    text: str
    timestamp: float


def turn_problems(sent: Sequence[str], stored: Sequence[StoredTurn], in_flight: Optional[str] = None) -> List[str]:
    """What is wrong with one conversation's user turns in the store: lost, duplicated or out of
    order (the stored order is the store's id order; timestamps must not go backwards)."""
    texts = [turn.text for turn in stored]
    problems = []
    if texts != list(sent) and not (in_flight is not None and texts == [*sent, in_flight]):
        expected, got = Counter(sent), Counter(texts)
        if in_flight is not None and got[in_flight] > expected[in_flight]:
            expected[in_flight] += 1
        lost = expected - got
        duplicated = got - expected
        if lost:
            problems.append(f"lost: {sorted(lost.elements())}")
        if duplicated:
            problems.append(f"duplicated or unknown: {sorted(duplicated.elements())}")
        if not lost and not duplicated:
            problems.append(f"out of order: stored {texts}, sent {list(sent)}")
    backwards = [b.text for a, b in zip(stored, stored[1:]) if b.timestamp < a.timestamp]
    if backwards:
        problems.append(f"timestamps go backwards at: {backwards}")
    return problems


def refund_problems(confirmed: Iterable[str], written: Iterable[str]) -> List[str]:
    """Exactly one billing write per confirmed refund: `written` are the refund ids the billing
    database gained during the run, `confirmed` the ids the assistant told customers."""
    confirmed_count, written_count = Counter(confirmed), Counter(written)
    problems = [f"refund {rid} confirmed {n} times" for rid, n in confirmed_count.items() if n > 1]
    problems += [f"refund {rid} written {n} times" for rid, n in written_count.items() if n > 1]
    problems += [f"refund {rid} confirmed but not written" for rid in confirmed_count if rid not in written_count]
    problems += [f"refund {rid} written but never confirmed"
                 for rid in written_count if rid not in confirmed_count]
    return problems


def read_conversations(path: Path) -> List[Conversation]:
    if not path.exists():
        return []
    return [Conversation.from_json(line) for line in path.read_text().splitlines() if line.strip()]


def stored_turns(tracker_db_url: str, senders: Iterable[str]) -> Dict[str, List[StoredTurn]]:
    """The user turns of these conversations in Rasa's SQL tracker store, in id order."""
    import sqlalchemy as sa

    wanted = set(senders)
    turns: Dict[str, List[StoredTurn]] = {sender: [] for sender in wanted}
    engine = sa.create_engine(tracker_db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT sender_id, timestamp, data FROM events WHERE type_name = 'user' ORDER BY id"))
            for sender, timestamp, data in rows:
                if sender in wanted:
                    turns[sender].append(StoredTurn(json.loads(data).get("text") or "", float(timestamp)))
    finally:
        engine.dispose()
    return turns


def refund_ids_after(billing_db_url: str, number: int) -> List[str]:
    """Refund ids written after refund row `number` (the highest one before the run)."""
    import sqlalchemy as sa

    engine = sa.create_engine(billing_db_url)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT id FROM refunds WHERE number > :n ORDER BY number")
            rows = connection.execute(query, {"n": number})
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def last_refund_number(billing_db_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(billing_db_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT coalesce(max(number), 0) FROM refunds")).scalar() or 0
    finally:
        engine.dispose()


def check(conversations: List[Conversation], tracker_db_url: str, billing_db_url: str,
          refunds_before: int) -> List[str]:
    """Every problem found, one line each; empty when the run kept every conversation intact."""
    turns = stored_turns(tracker_db_url, [c.sender for c in conversations])
    problems = []
    senders = Counter(c.sender for c in conversations)
    problems += [f"{sender}: logged {n} times by the load test" for sender, n in senders.items() if n > 1]
    for conversation in conversations:
        for problem in turn_problems(conversation.sent, turns[conversation.sender], conversation.in_flight):
            problems.append(f"{conversation.sender} ({conversation.scenario}, {conversation.channel}): {problem}")
    confirmed = [rid for c in conversations for rid in c.refunds]
    problems += refund_problems(confirmed, refund_ids_after(billing_db_url, refunds_before))
    return problems
