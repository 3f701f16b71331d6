"""The assistant's own persistence (SQLAlchemy): handoff records with their full context.

SQLite by default, any SQLAlchemy URL through SUPPORTBOT_DB_URL (e.g. a Postgres URL). Tables
are created on first use. This is the store the human-handoff flow and, later, feedback and
agent corrections write to.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from sqlalchemy import Column, DateTime, String, Text, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base

DEFAULT_DB_URL = "sqlite:///var/supportbot.db"
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
        self.db_url = db_url or os.environ.get("SUPPORTBOT_DB_URL", DEFAULT_DB_URL)
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


def make_engine(db_url: str) -> Engine:
    if db_url.startswith("sqlite:///") and db_url != "sqlite:///:memory:":
        Path(db_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(db_url, future=True, pool_pre_ping=True)


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
