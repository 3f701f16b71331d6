"""The assistant's own persistence (SQLAlchemy): handoff records with their full context, and
customers' feedback from the web widget.

SQLite by default, any SQLAlchemy URL through SUPPORTBOT_DB_URL (e.g. a Postgres URL). Tables
are created on first use. This is the store the human-handoff flow, feedback and, later,
agent corrections write to.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import Column, DateTime, Float, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, declarative_base

from supportbot import settings
from supportbot.db import make_engine  # also imported from here by slack and ticketing

Base = declarative_base()


class HandoffRow(Base):
    __tablename__ = "handoffs"

    id = Column(String(36), primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    # One record per handoff turn: a retried action finds the record it already wrote.
    idempotency_key = Column(String(255), nullable=False, unique=True)
    reason = Column(String(64), nullable=False)
    status = Column(String(16), nullable=False, default="open")
    customer_id = Column(String(64))
    context_json = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)
    resolved_at = Column(DateTime(timezone=True))


@dataclass(frozen=True)
class Handoff:
    id: str
    conversation_id: str
    reason: str
    status: str
    customer_id: Optional[str]
    context: Dict[str, Any]
    created_at: datetime

    @property
    def reference(self) -> str:
        return "H-" + self.id[:8].upper()


class HandoffStore:
    def __init__(self, db_url: Optional[str] = None) -> None:
        self.db_url = db_url or settings.get("SUPPORTBOT_DB_URL")
        self.engine: Engine = make_engine(self.db_url)
        Base.metadata.create_all(self.engine)

    def record(
        self,
        *,
        conversation_id: str,
        idempotency_key: str,
        reason: str,
        customer_id: Optional[str],
        context: Dict[str, Any],
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
            )
            session.add(row)
            session.commit()
            return _to_handoff(row)

    def list(self, conversation_id: Optional[str] = None, status: Optional[str] = None) -> List[Handoff]:
        query = select(HandoffRow).order_by(HandoffRow.created_at)
        if conversation_id:
            query = query.where(HandoffRow.conversation_id == conversation_id)
        if status:
            query = query.where(HandoffRow.status == status)
        with Session(self.engine, future=True) as session:
            return [_to_handoff(row) for row in session.execute(query).scalars()]

    def resolve(self, conversation_id: str) -> int:
        """Mark the conversation's open handoffs resolved; returns how many were open."""
        with Session(self.engine, future=True) as session:
            rows = session.execute(
                select(HandoffRow).where(
                    HandoffRow.conversation_id == conversation_id, HandoffRow.status == "open"
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
        Base.metadata.create_all(self.engine)

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
        created_at=row.created_at,
    )
