"""Claims on handoff records and the messages the support side sends, in the assistant's store.

Every change of state is one conditional UPDATE (`... WHERE status = 'open'`), so when two
agents claim a conversation at the same moment the database lets exactly one of them win, on
SQLite (one writer at a time) and on Postgres (the second UPDATE re-reads the row after the
first commits). Nothing here talks to Rasa: see desk.py.

Lifecycle of a handoff: open (waiting) -> claimed -> handed_back (the bot resumes) or closed;
open -> closed is allowed (answered elsewhere). `resolved` is `supportbot resume`'s.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, List, Optional, Sequence, Tuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from supportbot.errors import Conflict, InvalidRequest, NotFound
from supportbot.handoff.estimate import BusinessHours
from supportbot.handoff.messages import AGENT, KINDS
from supportbot.redact import mask_card_numbers
from supportbot.store import Handoff, HandoffMessageRow, HandoffRow, HandoffStore, _to_handoff, aware

WAITING, CLAIMED, HANDED_BACK, CLOSED, RESOLVED = "open", "claimed", "handed_back", "closed", "resolved"
ACTIVE = (WAITING, CLAIMED)
MAX_AGENT_NAME = 64
MAX_TEXT = 2000  # the channels' cap on a customer's message (SUPPORTBOT_MAX_MESSAGE_CHARS' default)


@dataclass(frozen=True)
class HandoffMessage:
    id: str
    handoff_id: str
    conversation_id: str
    kind: str
    agent: Optional[str]
    text: str
    created_at: datetime
    delivered_at: Optional[datetime]


def agent_name(name: object) -> str:
    """A display name the customer will read ("Dana"); InvalidRequest when it can't be one."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("An agent name is required (the customer reads it: \"Dana from support joined\").")
    name = " ".join(name.split())
    if len(name) > MAX_AGENT_NAME or not name.isprintable():
        raise InvalidRequest(f"An agent name has at most {MAX_AGENT_NAME} printable characters.")
    return name


def message_text(text: object) -> str:
    """An agent's reply, card numbers masked; InvalidRequest when empty or too long."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("The message is empty.")
    if len(text.strip()) > MAX_TEXT:
        raise InvalidRequest(f"The message is {len(text.strip()):,} characters long: at most {MAX_TEXT:,}.")
    return mask_card_numbers(text.strip())[0]


class Claims:
    def __init__(self, store: Optional[HandoffStore] = None) -> None:
        self.store = store or HandoffStore()

    def _session(self) -> Session:
        return Session(self.store.engine, future=True)

    # --- Finding handoffs ---

    def get(self, reference: str) -> Handoff:
        """A handoff by its reference (H-1A2B3C4D), its id, or its conversation id (the latest
        handoff of that conversation). NotFound when none or several match."""
        ref = (reference or "").strip()
        with self._session() as session:
            if re.fullmatch(r"[Hh]-[0-9A-Fa-f]{4,8}", ref):
                rows = session.scalars(select(HandoffRow).where(
                    HandoffRow.id.like(ref[2:].lower() + "%")).limit(2)).all()
            else:
                rows = session.scalars(select(HandoffRow).where(HandoffRow.id == ref)).all() or \
                    session.scalars(select(HandoffRow).where(HandoffRow.conversation_id == ref)
                                    .order_by(HandoffRow.created_at.desc()).limit(1)).all()
        if len(rows) != 1:
            raise NotFound(f"No handoff {ref!r}." if not rows else f"{ref!r} names several handoffs: "
                           "give more of the id.")
        return _to_handoff(rows[0])

    def queue(self) -> List[Handoff]:
        """Handoffs waiting or being answered, oldest first."""
        with self._session() as session:
            rows = session.scalars(select(HandoffRow).where(HandoffRow.status.in_(ACTIVE))
                                   .order_by(HandoffRow.created_at)).all()
            return [_to_handoff(row) for row in rows]

    def latest(self, conversation_id: str) -> Optional[Handoff]:
        """The conversation's most recent handoff, whatever its state."""
        with self._session() as session:
            row = session.scalars(select(HandoffRow).where(HandoffRow.conversation_id == conversation_id)
                                  .order_by(HandoffRow.created_at.desc()).limit(1)).first()
            return _to_handoff(row) if row is not None else None

    def latest_active(self, conversation_id: str) -> Optional[Handoff]:
        latest = self.latest(conversation_id)
        return latest if latest is not None and latest.status in ACTIVE else None

    # --- Changes of state, each one conditional UPDATE ---

    def _change(self, handoff_id: str, where: Sequence, **values: object) -> bool:
        with self._session() as session, session.begin():
            result = session.execute(update(HandoffRow).where(HandoffRow.id == handoff_id, *where)
                                     .values(**values).execution_options(synchronize_session=False))
            return result.rowcount == 1

    def claim(self, reference: str, agent: str, now: Optional[datetime] = None) -> Handoff:
        """Claim a waiting handoff for `agent`. Claiming one's own claim again is fine (a retry);
        Conflict when another agent has it or it is over."""
        agent = agent_name(agent)
        handoff = self.get(reference)
        self._change(handoff.id, [HandoffRow.status == WAITING], status=CLAIMED, claimed_by=agent,
                     claimed_at=now or datetime.now(timezone.utc))
        handoff = self.get(handoff.id)
        if handoff.status != CLAIMED or handoff.claimed_by != agent:
            raise Conflict(_why_not(handoff, agent), code="taken")
        return handoff

    def holder(self, reference: str, agent: str) -> Handoff:
        """The handoff, if `agent` holds its claim; Conflict otherwise."""
        agent = agent_name(agent)
        handoff = self.get(reference)
        if handoff.status != CLAIMED or handoff.claimed_by != agent:
            raise Conflict(_why_not(handoff, agent), code="not_yours")
        return handoff

    def finish(self, reference: str, agent: str, status: str, now: Optional[datetime] = None) -> Handoff:
        """Hand back (`handed_back`) or close (`closed`). Only the agent holding the claim may;
        anyone may close a handoff nobody claimed. Doing it again is fine (a retry)."""
        if status not in (HANDED_BACK, CLOSED):
            raise ValueError(status)
        agent = agent_name(agent)
        handoff = self.get(reference)
        now = now or datetime.now(timezone.utc)
        mine = [HandoffRow.status == CLAIMED, HandoffRow.claimed_by == agent]
        if not self._change(handoff.id, mine, status=status, resolved_at=now) and status == CLOSED:
            self._change(handoff.id, [HandoffRow.status == WAITING], status=CLOSED, claimed_by=agent,
                         resolved_at=now)
        handoff = self.get(handoff.id)
        if handoff.status != status or handoff.claimed_by != agent:
            raise Conflict(_why_not(handoff, agent), code="not_yours")
        return handoff

    def move(self, reference: str, team: str) -> Tuple[Handoff, Optional[str]]:
        """Put a waiting or claimed handoff in `team`'s queue; returns it and the team it was in
        (`team` itself: nothing changed, a retry). Conflict when it is over, or another agent
        moved it at the same moment."""
        handoff = self.get(reference)
        if handoff.team == team:
            return handoff, team
        was = HandoffRow.team.is_(None) if handoff.team is None else HandoffRow.team == handoff.team
        if not self._change(handoff.id, [HandoffRow.status.in_(ACTIVE), was], team=team):
            now = self.get(handoff.id)
            if now.status not in ACTIVE:
                raise Conflict(f"{now.reference} is over ({now.status.replace('_', ' ')}): it stays where it is.",
                               code="over")
            raise Conflict(f"{now.reference} was just moved to {now.team} by someone else.", code="moved")
        return self.get(handoff.id), handoff.team

    def tell_wait(self, handoff_id: str, minutes: Optional[int]) -> None:
        """Keep what the customer was told (None: that nobody is in), to compare with reality."""
        self._change(handoff_id, [], told_wait_minutes=minutes)

    def offer_email(self, handoff_id: str, now: Optional[datetime] = None) -> bool:
        """Mark the email offer made; True only the first time (one notice per handoff)."""
        return self._change(handoff_id, [HandoffRow.email_offered_at.is_(None)],
                            email_offered_at=now or datetime.now(timezone.utc))

    # --- What the estimate and the watcher read ---

    def recent_waits(self, hours: BusinessHours, sample: int) -> List[float]:
        """Business seconds from handoff to claim of the `sample` most recent claims."""
        with self._session() as session:
            rows = session.execute(select(HandoffRow.created_at, HandoffRow.claimed_at)
                                   .where(HandoffRow.claimed_at.is_not(None))
                                   .order_by(HandoffRow.claimed_at.desc()).limit(sample)).all()
        return [hours.open_seconds(aware(created), aware(claimed)) for created, claimed in rows]

    def overdue(self, hours: BusinessHours, timeout: timedelta, now: Optional[datetime] = None) -> List[Handoff]:
        """Handoffs still waiting after `timeout` of business time, not yet offered email."""
        now = now or datetime.now(timezone.utc)
        with self._session() as session:
            rows = session.scalars(select(HandoffRow).where(
                HandoffRow.status == WAITING, HandoffRow.email_offered_at.is_(None),
                HandoffRow.created_at <= now - timeout)).all()
            waiting = [_to_handoff(row) for row in rows]
        return [h for h in waiting if hours.open_seconds(h.created_at, now) >= timeout.total_seconds()]

    # --- Messages from the support side ---

    def add_message(self, handoff: Handoff, kind: str, text: str, key: str,
                    agent: Optional[str] = None) -> Tuple[HandoffMessage, bool]:
        """Store a message under its idempotency key; returns it and whether it is new (a
        retried send gets the stored one, whatever text it carries)."""
        if kind not in KINDS:
            raise ValueError(kind)
        text = message_text(text) if kind == AGENT else text
        scoped = f"{handoff.id}:{key}"  # a key is the agent's: it cannot reach another handoff's
        with self._session() as session:
            existing = session.scalars(select(HandoffMessageRow).where(
                HandoffMessageRow.idempotency_key == scoped)).first()
            if existing is not None:
                return _to_message(existing), False
            row = HandoffMessageRow(id=str(uuid.uuid4()), handoff_id=handoff.id,
                                    conversation_id=handoff.conversation_id, idempotency_key=scoped,
                                    kind=kind, agent=agent, text=text, created_at=datetime.now(timezone.utc))
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # the same key at the same moment: the other insert won
                session.rollback()
                return _to_message(session.scalars(select(HandoffMessageRow).where(
                    HandoffMessageRow.idempotency_key == scoped)).one()), False
            return _to_message(row), True

    def messages(self, conversation_id: str) -> List[HandoffMessage]:
        with self._session() as session:
            rows = session.scalars(select(HandoffMessageRow).where(
                HandoffMessageRow.conversation_id == conversation_id)
                .order_by(HandoffMessageRow.created_at, HandoffMessageRow.id)).all()
            return [_to_message(row) for row in rows]

    def message(self, message_id: str) -> HandoffMessage:
        with self._session() as session:
            return _to_message(session.get(HandoffMessageRow, message_id))

    def mark_delivered(self, message_ids: Iterable[str], now: Optional[datetime] = None) -> None:
        ids = list(message_ids)
        if not ids:
            return
        with self._session() as session, session.begin():
            session.execute(update(HandoffMessageRow)
                            .where(HandoffMessageRow.id.in_(ids), HandoffMessageRow.delivered_at.is_(None))
                            .values(delivered_at=now or datetime.now(timezone.utc))
                            .execution_options(synchronize_session=False))


def _why_not(handoff: Handoff, agent: str) -> str:
    if handoff.status == CLAIMED:
        return f"{handoff.reference} is claimed by {handoff.claimed_by}."
    if handoff.status == WAITING:
        return f"{handoff.reference} is waiting: claim it first."
    return f"{handoff.reference} is over ({handoff.status.replace('_', ' ')})."


def _to_message(row: HandoffMessageRow) -> HandoffMessage:
    return HandoffMessage(row.id, row.handoff_id, row.conversation_id, row.kind, row.agent, row.text,
                          aware(row.created_at), aware(row.delivered_at))
