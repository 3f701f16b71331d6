"""The collector: Rasa's event broker → the learning store.

Rasa publishes every tracker event to the broker configured in endpoints.yml (`event_broker`;
the SQL broker on SQLite by default). The collector reads them in order from where it last
stopped, stores each customer turn masked, and marks the turns worth a designer's review:

- `fallback`: NLU was unsure (nlu_fallback);
- `low_confidence` / `close_call`: top intent below LOW_CONFIDENCE, or the top two within CLOSE_CALL;
- `clarified`: the customer answered the "did you mean" buttons; the button is the turn's label;
- `handoff_followed`: a handoff came within HANDOFF_WINDOW customer turns;
- `voted_down`: the customer voted the answer to it down in the widget.

It also keeps each conversation's verified customer (the `customer_id` slot), for the
report's first-contact resolution (analytics.py).

Each batch is one transaction with the cursor, and a turn is unique per (conversation,
message id): a crash or a redelivery writes nothing twice.

The events come from the SQL broker's table (an SQLAlchemy URL), or from RabbitMQ when the
broker is `type: pika` (the production profile, docs/deploy.md): an
`amqp://user:password@host:port/?queue=NAME` URL, NAME being the queue endpoints.yml publishes
to. A batch of RabbitMQ messages is acknowledged only once the learning store has committed it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

from sqlalchemy import Column, Integer, String, Text, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, declarative_base

from supportbot import settings
from supportbot.db import make_engine
from supportbot.learning.store import ConversationCustomerRow, LearningStore, TurnRow, add_reasons, normalise
from supportbot.learning.store import read_cursor as _cursor
from supportbot.learning.store import write_cursor as _set_cursor
from supportbot.redact import mask_card_numbers
from supportbot.store import FeedbackRow

LOW_CONFIDENCE = 0.6
CLOSE_CALL = 0.1
HANDOFF_WINDOW = 2  # customer turns before a handoff that it may be blamed on
CUSTOMER_SLOT = "customer_id"  # set only for a verified customer (domain/shared.yml)
HANDOFF_ACTIONS = frozenset({"action_handoff"})
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w])\+?\d[\d ().-]{6,}\d(?![\w])")
PAYLOAD = re.compile(r"^/(?P<intent>[\w/+-]+)")

BrokerBase = declarative_base()
logger = logging.getLogger(__name__)


class BrokerEvent(BrokerBase):
    """Rasa's SQLEventBroker table (rasa/core/brokers/sql.py): one JSON event per row."""

    __tablename__ = "events"
    id = Column(Integer, primary_key=True)
    sender_id = Column(String(255))
    data = Column(Text)


def mask(text: str) -> str:
    """Card numbers, email addresses and phone numbers out of a customer's text."""
    text, _ = mask_card_numbers(text)
    text = EMAIL.sub("[email]", text)
    return PHONE.sub("[phone]", text)


def _top(parse: Dict[str, Any]) -> Tuple[Optional[str], Optional[float], List[Dict[str, Any]], bool]:
    """The classifier's top intent and confidence (nlu_fallback aside), its top 3, and whether
    the message fell back."""
    ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") != "nlu_fallback"]
    fell_back = (parse.get("intent") or {}).get("name") == "nlu_fallback"
    top3 = [{"name": r.get("name"), "confidence": round(float(r.get("confidence") or 0), 4)} for r in ranking[:3]]
    if not top3:
        intent = parse.get("intent") or {}
        return intent.get("name"), intent.get("confidence"), [], fell_back
    return top3[0]["name"], top3[0]["confidence"], top3, fell_back


def reasons_for(confidence: Optional[float], ranking: List[Dict[str, Any]], fell_back: bool) -> List[str]:
    reasons = []
    if fell_back:
        reasons.append("fallback")
    if confidence is not None and confidence < LOW_CONFIDENCE:
        reasons.append("low_confidence")
    if len(ranking) > 1 and ranking[0]["confidence"] - ranking[1]["confidence"] < CLOSE_CALL:
        reasons.append("close_call")
    return reasons


class Collector:
    def __init__(self, store: LearningStore, events_url: Optional[str] = None,
                 feedback_url: Optional[str] = None) -> None:
        self.store = store
        events_url = events_url or settings.get("SUPPORTBOT_EVENTS_DB_URL")
        feedback_url = feedback_url or settings.get("SUPPORTBOT_DB_URL")
        # One cursor per source: a store may collect from several brokers.
        self.events_source, self.votes_source = _source("events", events_url), _source("votes", feedback_url)
        self.rabbitmq = RabbitMQEvents(events_url) if events_url.startswith(("amqp://", "amqps://")) else None
        if self.rabbitmq is None:
            self.events = make_engine(events_url)
            BrokerBase.metadata.create_all(self.events)  # Rasa creates it too; either may come first
        self.feedback = make_engine(feedback_url)

    def run_once(self, batch: int = 1000) -> int:
        """Collect what arrived since the last run; returns how many events were read."""
        if self.rabbitmq is not None:
            return self._run_once_rabbitmq(batch)
        read = 0
        while True:
            with self.store.session() as session, session.begin():
                position = int(_cursor(session, self.events_source) or 0)
                rows = self._read_events(position, batch)
                for row in rows:
                    self._apply(session, row.sender_id, json.loads(row.data))
                if rows:
                    _set_cursor(session, self.events_source, str(rows[-1].id))
                caught_up = len(rows) < batch
                if caught_up:  # only then: a vote on a turn of a later batch would be lost
                    self._apply_votes(session)
            read += len(rows)
            if caught_up:
                return read

    def _run_once_rabbitmq(self, batch: int) -> int:
        read = 0
        while True:
            messages = self.rabbitmq.read(batch)
            with self.store.session() as session, session.begin():
                for message in messages:
                    event = _event(message.body)
                    if event is not None:
                        self._apply(session, str(event.get("sender_id") or ""), event)
                if len(messages) < batch:
                    self._apply_votes(session)
            self.rabbitmq.ack(messages)  # committed: a crash before this redelivers, nothing is written twice
            read += len(messages)
            if len(messages) < batch:
                return read

    def _read_events(self, after: int, batch: int) -> List[BrokerEvent]:
        with Session(self.events) as session:
            query = select(BrokerEvent).where(BrokerEvent.id > after).order_by(BrokerEvent.id).limit(batch)
            return list(session.scalars(query))

    def _apply(self, session: Session, sender_id: str, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "action":
            if event.get("name") in HANDOFF_ACTIONS:
                for turn in _recent_turns(session, sender_id, HANDOFF_WINDOW):
                    add_reasons(turn, ["handoff_followed"])
        elif kind == "user":
            self._user_turn(session, sender_id, event)
        elif kind == "slot" and event.get("name") == CUSTOMER_SLOT:
            _note_customer(session, sender_id, event.get("value"))

    def _user_turn(self, session: Session, sender_id: str, event: Dict[str, Any]) -> None:
        text = event.get("text") or ""
        payload = PAYLOAD.match(text)
        if payload:
            # A button right after an unclear turn answered "did you mean": it labels that turn.
            for turn in _recent_turns(session, sender_id, 1):
                if turn.fell_back and turn.label is None:
                    add_reasons(turn, ["clarified"])
                    turn.label, turn.label_source = payload.group("intent"), "customer_button"
            return
        message_id = event.get("message_id") or f"t{event.get('timestamp')}"
        exists = session.scalar(select(TurnRow.id).where(TurnRow.conversation_id == sender_id,
                                                         TurnRow.message_id == message_id))
        if exists is not None or not text.strip():
            return
        parse = event.get("parse_data") or {}
        intent, confidence, ranking, fell_back = _top(parse)
        metadata = event.get("metadata") or {}
        session.add(TurnRow(
            conversation_id=sender_id, message_id=message_id, text=mask(text), normalised=normalise(mask(text)),
            intent=intent,
            confidence=confidence, fell_back=int(fell_back), ranking_json=json.dumps(ranking),
            entities_json=json.dumps(_entities(parse)), channel=event.get("input_channel"),
            model_id=metadata.get("model_id"),
            at=datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc),
            reasons_json=json.dumps(reasons_for(confidence, ranking, fell_back))))
        session.flush()

    def _apply_votes(self, session: Session) -> None:
        """Thumbs-down votes since the last run mark the turn they answered."""
        since = _cursor(session, self.votes_source)
        query = (select(FeedbackRow.conversation_id, FeedbackRow.message_id, FeedbackRow.value,
                        FeedbackRow.updated_at)
                 .where(FeedbackRow.kind == "answer").order_by(FeedbackRow.updated_at))
        if since:
            query = query.where(FeedbackRow.updated_at > datetime.fromisoformat(since))
        with Session(self.feedback) as feedback:
            try:
                votes = list(feedback.execute(query))
            except (OperationalError, ProgrammingError):  # no feedback table yet: nobody voted
                return
        for conversation_id, message_id, value, _ in votes:
            if value < 0:
                turn = session.scalar(select(TurnRow).where(TurnRow.conversation_id == conversation_id,
                                                            TurnRow.message_id == message_id))
                if turn is not None:
                    add_reasons(turn, ["voted_down"])
        if votes:
            _set_cursor(session, self.votes_source, votes[-1][3].isoformat())


def _note_customer(session: Session, conversation_id: str, customer_id: Any) -> None:
    """The conversation's verified customer, for first-contact resolution (analytics.py); the
    first one stays (a redelivered event, or a slot reset, changes nothing)."""
    if not (isinstance(customer_id, str) and customer_id.strip()) or len(customer_id) > 64 or not conversation_id:
        return
    if session.get(ConversationCustomerRow, conversation_id) is None:
        session.add(ConversationCustomerRow(conversation_id=conversation_id, customer_id=customer_id))
        session.flush()


def _event(body: bytes) -> Optional[Dict[str, Any]]:
    """A broker message's event, or None (logged, then acknowledged) if it is not one."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        event = None
    if not isinstance(event, dict):
        logger.warning("Skipped a RabbitMQ message that is not a JSON event (%d bytes)", len(body))
        return None
    return event


class RabbitMQEvents:
    """Rasa's pika event broker queue, read in batches (aio_pika, which Rasa brings)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        queue = parse_qs(parts.query).get("queue", [""])[0]
        if not queue:
            raise ValueError("A RabbitMQ events URL needs the queue: amqp://user:password@host:5672/?queue=NAME "
                             "(the queue endpoints.yml's event_broker publishes to).")
        self.queue_name, self.url = queue, urlunsplit(parts._replace(query=""))
        self._loop = asyncio.new_event_loop()
        self._connection: Any = None
        self._queue: Any = None

    def read(self, batch: int) -> List[Any]:
        return self._loop.run_until_complete(self._read(batch))

    async def _read(self, batch: int) -> List[Any]:
        import aio_pika

        if self._queue is None:
            self._connection = await aio_pika.connect_robust(self.url)
            channel = await self._connection.channel()
            self._queue = await channel.declare_queue(self.queue_name, durable=True)  # as Rasa declares it
        messages: List[Any] = []
        while len(messages) < batch:
            message = await self._queue.get(no_ack=False, fail=False)
            if message is None:
                break
            messages.append(message)
        return messages

    def ack(self, messages: List[Any]) -> None:
        if messages:
            self._loop.run_until_complete(self._ack(messages))

    @staticmethod
    async def _ack(messages: List[Any]) -> None:
        for message in messages:
            await message.ack()

    def close(self) -> None:
        if self._connection is not None:
            self._loop.run_until_complete(self._connection.close())
        self._loop.close()


def _entities(parse: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Entity names and masked values (an email is an entity too)."""
    return [{"entity": e.get("entity"), "value": mask(str(e.get("value")))} for e in parse.get("entities") or []]


def _recent_turns(session: Session, conversation_id: str, count: int) -> List[TurnRow]:
    query = (select(TurnRow).where(TurnRow.conversation_id == conversation_id)
             .order_by(TurnRow.id.desc()).limit(count))
    return list(session.scalars(query))


def _source(kind: str, url: str) -> str:
    return f"{kind}:{hashlib.sha256(url.encode('utf-8')).hexdigest()[:32]}"

