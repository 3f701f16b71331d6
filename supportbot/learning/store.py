"""The learning store: customer turns as the assistant understood them, and which of them are
candidates for review. SQLAlchemy (SQLite by default, Postgres by URL); the schema is versioned
with Alembic (`migrations/`), upgraded when the store opens."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

from sqlalchemy import Column, DateTime, Float, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base

from supportbot import settings
from supportbot.db import make_engine

Base = declarative_base()
MIGRATIONS = Path(__file__).with_name("migrations")


class TurnRow(Base):
    __tablename__ = "learning_turns"
    # A redelivered broker event finds the turn it already wrote.
    __table_args__ = (UniqueConstraint("conversation_id", "message_id"),)

    id = Column(Integer, primary_key=True, autoincrement=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    message_id = Column(String(64), nullable=False)
    text = Column(Text, nullable=False)  # masked: card numbers, emails, phone numbers
    intent = Column(String(255))  # the classifier's top intent, nlu_fallback aside
    confidence = Column(Float)
    fell_back = Column(Integer, nullable=False, default=0)
    ranking_json = Column(Text, nullable=False, default="[]")  # top 3: [{"name", "confidence"}]
    entities_json = Column(Text, nullable=False, default="[]")
    channel = Column(String(64))
    model_id = Column(String(64))
    at = Column(DateTime(timezone=True), nullable=False)
    reasons_json = Column(Text, nullable=False, default="[]")  # why it is a candidate; [] = not one
    label = Column(String(255))  # a label the customer or an agent gave, if any
    label_source = Column(String(64))
    status = Column(String(16), nullable=False, default="new")  # review: see review.STATUSES
    reviewed_at = Column(DateTime(timezone=True))
    normalised = Column(String(255), nullable=False, default="")  # for near-duplicates
    labelled_by = Column(String(255))  # the agent (or ticket) behind a correction: corrections.py
    labelled_at = Column(DateTime(timezone=True))


class RoutingCorrectionRow(Base):
    """An agent moved a handoff to another team: the routing map (routing.yml) got it wrong."""

    __tablename__ = "routing_corrections"

    id = Column(Integer, primary_key=True, autoincrement=True)
    handoff_id = Column(String(36), nullable=False)
    conversation_id = Column(String(255), nullable=False)
    reason = Column(String(64), nullable=False)  # the handoff's reason
    intent = Column(String(255))  # the latest topic the customer asked about (not request_human)
    from_team = Column(String(64))  # None: the handoff had no team (made before routing)
    to_team = Column(String(64), nullable=False)
    agent = Column(String(255), nullable=False)
    source = Column(String(64), nullable=False)  # agent_inbox, cli, slack
    at = Column(DateTime(timezone=True), nullable=False, index=True)


class ConversationCustomerRow(Base):
    """A conversation's verified customer (the `customer_id` slot; the first one set wins)."""
    __tablename__ = "learning_conversation_customers"

    conversation_id = Column(String(255), primary_key=True)
    customer_id = Column(String(64), nullable=False)


class CursorRow(Base):
    __tablename__ = "learning_cursors"

    source = Column(String(64), primary_key=True)
    position = Column(String(64), nullable=False)


@dataclass(frozen=True)
class Turn:
    id: int
    conversation_id: str
    message_id: str
    text: str
    intent: Optional[str]
    confidence: Optional[float]
    fell_back: bool
    ranking: List[Dict[str, Any]]
    entities: List[Dict[str, Any]]
    channel: Optional[str]
    model_id: Optional[str]
    at: datetime
    reasons: List[str]
    label: Optional[str]
    label_source: Optional[str]
    status: str
    labelled_by: Optional[str] = None
    labelled_at: Optional[datetime] = None

    @property
    def suggested(self) -> Optional[str]:
        """The label a reviewer is offered: one given by a person, else the model's."""
        return self.label or self.intent


_upgrading = threading.Lock()  # Alembic's command context is process-global
_upgraded: Set[str] = set()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (once per database and process)."""
    from alembic import command
    from alembic.config import Config

    with _upgrading:
        if str(engine.url) in _upgraded:
            return
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        _upgraded.add(str(engine.url))


class LearningStore:
    def __init__(self, db_url: Optional[str] = None) -> None:
        self.db_url = db_url or settings.get("SUPPORTBOT_LEARNING_DB_URL")
        self.engine = make_engine(self.db_url)
        upgrade(self.engine)

    def session(self) -> Session:
        return Session(self.engine)

    def turns(self, conversation_id: Optional[str] = None, candidates_only: bool = False) -> List[Turn]:
        with self.session() as session:
            query = select(TurnRow).order_by(TurnRow.id)
            if conversation_id is not None:
                query = query.where(TurnRow.conversation_id == conversation_id)
            if candidates_only:
                query = query.where(TurnRow.reasons_json != "[]")
            return [to_turn(row) for row in session.scalars(query)]


def to_turn(row: TurnRow) -> Turn:
    return Turn(row.id, row.conversation_id, row.message_id, row.text, row.intent, row.confidence,
                bool(row.fell_back), json.loads(row.ranking_json), json.loads(row.entities_json),
                row.channel, row.model_id, row.at, json.loads(row.reasons_json), row.label,
                row.label_source, row.status, row.labelled_by, _aware(row.labelled_at))


def _aware(value: Optional[datetime]) -> Optional[datetime]:
    """SQLite gives back naive datetimes; the store writes UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def normalise(text: str) -> str:
    """Lower case, letters and digits only, single spaces: near-duplicates compare equal."""
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return " ".join(words)[:255]


def read_cursor(session: Session, source: str) -> Optional[str]:
    """Where a reader of `source` (a broker, the votes, a ticketing backend) stopped last time."""
    row = session.get(CursorRow, source)
    return row.position if row else None


def write_cursor(session: Session, source: str, position: str) -> None:
    row = session.get(CursorRow, source)
    if row is None:
        session.add(CursorRow(source=source, position=position))
    else:
        row.position = position


def add_reasons(row: TurnRow, reasons: Iterable[str]) -> None:
    """Add reasons to a turn, each once, in a stable order."""
    current: Sequence[str] = json.loads(row.reasons_json or "[]")
    row.reasons_json = json.dumps(sorted(set(current) | set(reasons)))
