"""The assistant's own persistence (SQLAlchemy): handoff records with their full context, and
customers' feedback from the web widget.

SQLite by default, any SQLAlchemy URL through SUPPORTBOT_DB_URL (e.g. a Postgres URL). The
schema is versioned with Alembic (`store_migrations/`, its own version table, so the learning
store may share the database) and upgraded when a store opens. The live-handoff operations on
these rows (claims, agent messages) are in supportbot/handoff/.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from sqlalchemy import Column, DateTime, Float, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, declarative_base

from supportbot import metrics, settings
from supportbot.db import make_engine  # also imported from here by slack and ticketing

Base = declarative_base()
MIGRATIONS = Path(__file__).with_name("store_migrations")
VERSION_TABLE = "supportbot_store_version"  # not alembic_version: the learning store's may share the database


class HandoffRow(Base):
    __tablename__ = "handoffs"

    id = Column(String(36), primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    # One record per handoff turn: a retried action finds the record it already wrote.
    idempotency_key = Column(String(255), nullable=False, unique=True)
    reason = Column(String(64), nullable=False)
    # open (waiting) -> claimed -> handed_back | closed; resolved: `supportbot resume`.
    status = Column(String(16), nullable=False, default="open", index=True)
    customer_id = Column(String(64))
    context_json = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)
    resolved_at = Column(DateTime(timezone=True))
    claimed_by = Column(String(255))
    claimed_at = Column(DateTime(timezone=True))
    told_wait_minutes = Column(Integer)  # the estimate the customer was given; None: told we're closed
    email_offered_at = Column(DateTime(timezone=True))  # the customer was offered a reply by email
    ticket_id = Column(String(64))  # the ticket the handoff was filed as (None: ticketing failed)
    team = Column(String(64), index=True)  # the queue that owns it (docs/handoff.md#routing)
    priority = Column(String(16))  # low | normal | high | urgent


class HandoffMessageRow(Base):
    """A message the support side sent into a handed-off chat: an agent's reply, or a state
    change ("Dana joined"). The idempotency key makes a retried send one message; an undelivered
    one (the customer had left) is sent again when the customer's widget rejoins."""

    __tablename__ = "handoff_messages"

    id = Column(String(36), primary_key=True)
    handoff_id = Column(String(36), nullable=False, index=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    idempotency_key = Column(String(255), nullable=False, unique=True)
    kind = Column(String(16), nullable=False)  # "agent" (a reply) or a state: supportbot.handoff.messages
    agent = Column(String(255))
    text = Column(Text, nullable=False)  # card numbers masked
    created_at = Column(DateTime(timezone=True), nullable=False)
    delivered_at = Column(DateTime(timezone=True))


_upgrading = threading.Lock()  # Alembic's command context is process-global
_upgraded: Set[str] = set()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (once per database and process). Two
    processes opening a new database at once may race on the first tables: the loser runs
    the upgrade again and finds it done."""
    from alembic import command
    from alembic.config import Config

    with _upgrading:
        if str(engine.url) in _upgraded:
            return
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        for attempt in range(3):
            try:
                with engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                break
            except Exception:  # noqa: BLE001 -- a concurrent first upgrade; re-raised if it persists
                if attempt == 2:
                    raise
        _upgraded.add(str(engine.url))


@dataclass(frozen=True)
class Handoff:
    id: str
    conversation_id: str
    reason: str
    status: str
    customer_id: Optional[str]
    context: Dict[str, Any]
    created_at: datetime
    claimed_by: Optional[str] = None
    claimed_at: Optional[datetime] = None
    resolved_at: Optional[datetime] = None
    told_wait_minutes: Optional[int] = None
    email_offered_at: Optional[datetime] = None
    ticket_id: Optional[str] = None
    team: Optional[str] = None
    priority: Optional[str] = None

    @property
    def reference(self) -> str:
        return "H-" + self.id[:8].upper()


class HandoffStore:
    def __init__(self, db_url: Optional[str] = None) -> None:
        self.db_url = db_url or settings.get("SUPPORTBOT_DB_URL")
        self.engine: Engine = make_engine(self.db_url)
        upgrade(self.engine)

    def record(
        self,
        *,
        conversation_id: str,
        idempotency_key: str,
        reason: str,
        customer_id: Optional[str],
        context: Dict[str, Any],
        team: Optional[str] = None,
        priority: Optional[str] = None,
    ) -> Handoff:
        """Store a handoff, or return the one already stored under `idempotency_key`."""
        with Session(self.engine, future=True) as session:
            existing = session.execute(
                select(HandoffRow).where(HandoffRow.idempotency_key == idempotency_key)
            ).scalar_one_or_none()
            if existing:
                return _to_handoff(existing)
            row = HandoffRow(
                id=str(uuid.uuid4()),
                conversation_id=conversation_id,
                idempotency_key=idempotency_key,
                reason=reason,
                status="open",
                customer_id=customer_id,
                context_json=json.dumps(context, ensure_ascii=False, default=str),
                created_at=datetime.now(timezone.utc),
                team=team,
                priority=priority,
            )
            session.add(row)
            session.commit()
            metrics.count_handoff(reason, team, priority)  # new ones only: a retry is not a handoff
            return _to_handoff(row)

    def set_ticket(self, handoff_id: str, ticket_id: str) -> None:
        """Remember the ticket a handoff was filed as (a retried filing writes the same id)."""
        with Session(self.engine, future=True) as session:
            row = session.get(HandoffRow, handoff_id)
            if row is not None and row.ticket_id != ticket_id:
                row.ticket_id = ticket_id
                session.commit()

    def list(self, conversation_id: Optional[str] = None, status: Optional[str] = None) -> List[Handoff]:
        query = select(HandoffRow).order_by(HandoffRow.created_at)
        if conversation_id:
            query = query.where(HandoffRow.conversation_id == conversation_id)
        if status:
            query = query.where(HandoffRow.status == status)
        with Session(self.engine, future=True) as session:
            return [_to_handoff(row) for row in session.execute(query).scalars()]

    def resolve(self, conversation_id: str) -> int:
        """Mark the conversation's open (or claimed) handoffs resolved; returns how many there were."""
        with Session(self.engine, future=True) as session:
            rows = session.execute(
                select(HandoffRow).where(
                    HandoffRow.conversation_id == conversation_id, HandoffRow.status.in_(("open", "claimed"))
                )
            ).scalars().all()
            for row in rows:
                row.status = "resolved"
                row.resolved_at = datetime.now(timezone.utc)
            session.commit()
            return len(rows)


class FeedbackRow(Base):
    __tablename__ = "feedback"
    # One vote per bot answer (or one rating per conversation): a double click or a changed
    # mind updates that row instead of adding one.
    __table_args__ = (UniqueConstraint("conversation_id", "message_id", "answer_index", "kind"),)

    id = Column(String(36), primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    kind = Column(String(16), nullable=False)  # "answer" (thumbs) | "conversation" (satisfaction)
    # The user message the answer replied to, and which of its replies ("" and 0 for a rating).
    message_id = Column(String(64), nullable=False)
    answer_index = Column(Integer, nullable=False)
    value = Column(Integer, nullable=False)  # answer: +1 / -1; conversation: 1..5
    user_text = Column(Text)
    bot_text = Column(Text)
    intent = Column(String(255))
    confidence = Column(Float)
    customer_id = Column(String(64))
    created_at = Column(DateTime(timezone=True), nullable=False)
    updated_at = Column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True)
class Feedback:
    id: str
    conversation_id: str
    kind: str
    message_id: str
    answer_index: int
    value: int
    user_text: Optional[str]
    bot_text: Optional[str]
    intent: Optional[str]
    confidence: Optional[float]
    customer_id: Optional[str]
    created_at: datetime


class FeedbackStore:
    def __init__(self, db_url: Optional[str] = None) -> None:
        self.db_url = db_url or settings.get("SUPPORTBOT_DB_URL")
        self.engine: Engine = make_engine(self.db_url)
        upgrade(self.engine)

    def save(self, *, conversation_id: str, kind: str, value: int, message_id: str = "",
             answer_index: int = 0, **details: Any) -> Tuple[Feedback, bool]:
        """Store the vote, or update the one already stored for the same answer.

        Returns the row and whether it was new. `details`: user_text, bot_text, intent,
        confidence, customer_id (taken from the tracker, never from the client).
        """
        key = dict(conversation_id=conversation_id, kind=kind, message_id=message_id,
                   answer_index=answer_index)
        now = datetime.now(timezone.utc)
        for _ in range(2):  # a concurrent double click may lose the insert race once
            with Session(self.engine, future=True) as session:
                row = session.execute(select(FeedbackRow).filter_by(**key)).scalar_one_or_none()
                created = row is None
                if created:
                    row = FeedbackRow(id=str(uuid.uuid4()), created_at=now, **key)
                    session.add(row)
                row.value, row.updated_at = value, now
                for name, detail in details.items():
                    setattr(row, name, detail)
                try:
                    session.commit()
                except IntegrityError:
                    continue
                return _to_feedback(row), created
        raise RuntimeError(f"could not store feedback for {key}")

    def list(self, conversation_id: Optional[str] = None) -> List[Feedback]:
        query = select(FeedbackRow).order_by(FeedbackRow.created_at)
        if conversation_id:
            query = query.where(FeedbackRow.conversation_id == conversation_id)
        with Session(self.engine, future=True) as session:
            return [_to_feedback(row) for row in session.execute(query).scalars()]


def _to_feedback(row: FeedbackRow) -> Feedback:
    return Feedback(**{name: getattr(row, name) for name in Feedback.__dataclass_fields__})


def _to_handoff(row: HandoffRow) -> Handoff:
    return Handoff(
        id=row.id,
        conversation_id=row.conversation_id,
        reason=row.reason,
        status=row.status,
        customer_id=row.customer_id,
        context=json.loads(row.context_json),
        created_at=aware(row.created_at),
        claimed_by=row.claimed_by,
        claimed_at=aware(row.claimed_at),
        resolved_at=aware(row.resolved_at),
        told_wait_minutes=row.told_wait_minutes,
        email_offered_at=aware(row.email_offered_at),
        ticket_id=row.ticket_id,
        team=row.team,
        priority=row.priority,
    )


def aware(value: Optional[datetime]) -> Optional[datetime]:
    """SQLite gives back naive datetimes; the store writes UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value
