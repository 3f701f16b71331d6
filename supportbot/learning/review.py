"""Review: the NLU inbox. Candidates grouped by the label they would get, ordered by value (how
often a message like it came × how unsure the model was), near-duplicates collapsed into one
entry; each accepted, relabelled, rejected or marked out of scope, alone or by group.

A decision is one conditional UPDATE (`status = 'new'` → the decision): of two reviewers deciding
the same item at once, one wins and the other is told it was already reviewed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, FrozenSet, List, Optional

from sqlalchemy import or_, select, update

from supportbot.learning.store import LearningStore, Turn, TurnRow, to_turn

NEW, ACCEPTED, REJECTED, OUT_OF_SCOPE = "new", "accepted", "rejected", "out_of_scope"
STATUSES = (NEW, ACCEPTED, REJECTED, OUT_OF_SCOPE)


class ReviewError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    """One line of the queue: a message and its near-duplicates."""

    turns: List[Turn]
    label: Optional[str]

    @property
    def value(self) -> float:
        confidences = [t.confidence for t in self.turns if t.confidence is not None]
        doubt = 1 - (sum(confidences) / len(confidences)) if confidences else 1.0
        return round(len(self.turns) * max(doubt, 0.05), 4)

    @property
    def text(self) -> str:
        return self.turns[0].text


def _pending(store: LearningStore, source: Optional[str]) -> List[Turn]:
    with store.session() as session:
        query = select(TurnRow).where(TurnRow.status == NEW, TurnRow.reasons_json != "[]").order_by(TurnRow.id)
        if source:
            query = query.where(or_(TurnRow.label_source == source, TurnRow.channel == source))
        return [to_turn(row) for row in session.scalars(query)]


def queue(store: LearningStore, source: Optional[str] = None) -> Dict[Optional[str], List[Entry]]:
    """Pending candidates: label → entries, most valuable label group and entry first."""
    collapsed: Dict[tuple, List[Turn]] = {}
    with store.session() as session:
        normalised = dict(session.execute(select(TurnRow.id, TurnRow.normalised)).all())
    for turn in _pending(store, source):
        collapsed.setdefault((turn.suggested, normalised[turn.id] or turn.text), []).append(turn)
    groups: Dict[Optional[str], List[Entry]] = {}
    for (label, _), turns in collapsed.items():
        groups.setdefault(label, []).append(Entry(turns, label))
    for entries in groups.values():
        entries.sort(key=lambda e: -e.value)
    return dict(sorted(groups.items(), key=lambda item: -sum(e.value for e in item[1])))


def decide(store: LearningStore, turn_ids: List[int], status: str, labels: FrozenSet[str],
           label: Optional[str] = None) -> int:
    """Set the status (and for acceptance, the label) of pending turns; returns how many changed.
    Raises ReviewError for an unknown status or label, or when none of them is pending any more."""
    if status not in STATUSES or status == NEW:
        raise ReviewError(f"unknown decision {status!r}: accepted, rejected or out_of_scope")
    if label is not None and label not in labels:
        raise ReviewError(f"unknown intent {label!r} (intents as in domain/, FAQ topics as faq/<topic>)")
    changed = 0
    now = datetime.now(timezone.utc)
    with store.session() as session, session.begin():
        for turn_id in turn_ids:
            values = {"status": status, "reviewed_at": now}
            if status == ACCEPTED:
                row = session.get(TurnRow, turn_id)
                final = label or (row.label or row.intent if row else None)
                if final not in labels:
                    raise ReviewError(f"item {turn_id} has no valid label to accept ({final!r}): relabel it")
                given_before = not label and row.label
                values.update(label=final, label_source=row.label_source if given_before else "reviewer")
            elif status == OUT_OF_SCOPE:
                values.update(label="out_of_scope", label_source="reviewer")
            pending = update(TurnRow).where(TurnRow.id == turn_id, TurnRow.status == NEW)
            result = session.execute(pending.values(**values))
            changed += result.rowcount
    if turn_ids and not changed:
        raise ReviewError("already reviewed: nothing changed")
    return changed


def accept_all(store: LearningStore, labels: FrozenSet[str], source: Optional[str] = None) -> int:
    """Accept every pending candidate that already carries a valid label (imports, button answers,
    agent corrections); the ones whose only label is the model's guess stay for a person."""
    ids = [t.id for t in _pending(store, source) if t.label in labels]
    return decide(store, ids, ACCEPTED, labels) if ids else 0
