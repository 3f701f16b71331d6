"""The embedded ticket queue: tickets and comments in our own database (SQLAlchemy).

The default adapter: nothing to install, so `make run` and the tests work out of the box.
SQLite by default, any SQLAlchemy URL through SUPPORTBOT_TICKETING_DB_URL (else
SUPPORTBOT_DB_URL). People work the queue with the `supportbot` CLI or SQL; there is no web UI,
so tickets have no URL. Resolving or closing a ticket writes a row to `ticket_resolutions`, with
the category (the intent) the agent filed it under, if any; an agent's answer to the customer
(`reply`) is a row of `ticket_replies`, apart from the customer's own comments.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator, List, Optional, Sequence, Tuple

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, declarative_base

from supportbot.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound
from supportbot.store import make_engine
from supportbot.ticketing.base import (
    ResolvedTicket,
    Ticket,
    TicketingAdapter,
    TicketQueue,
    TicketReply,
    after_id,
    check_owner,
    check_priority,
    normal_email,
    request_hash,
    utc,
)

Base = declarative_base()
DONE = frozenset({"resolved", "closed"})


class TicketRow(Base):
    __tablename__ = "tickets"

    id = Column(Integer, primary_key=True, autoincrement=True)
    # A retried create finds the ticket it already made.
    idempotency_key = Column(String(255), nullable=False, unique=True)
    request_hash = Column(String(64), nullable=False)
    requester = Column(String(320), nullable=False, index=True)
    subject = Column(String(255), nullable=False)
    body = Column(Text, nullable=False)
    tags_json = Column(Text, nullable=False, default="[]")
    status = Column(String(16), nullable=False, default="new")
    created_at = Column(DateTime(timezone=True), nullable=False)


class CommentRow(Base):
    __tablename__ = "ticket_comments"

    id = Column(Integer, primary_key=True, autoincrement=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    idempotency_key = Column(String(255), nullable=False, unique=True)
    text = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)


class ReplyRow(Base):
    """A reply of a person of the support team on a ticket (CommentRow holds the customer's).
    Its own table, so that databases made before it existed gain it with create_all."""

    __tablename__ = "ticket_replies"

    id = Column(Integer, primary_key=True, autoincrement=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    idempotency_key = Column(String(255), nullable=False, unique=True)
    author = Column(String(255), nullable=False)  # the name the customer reads
    text = Column(Text, nullable=False)
    public = Column(Boolean, nullable=False, default=True)  # False: an internal note, never sent
    created_at = Column(DateTime(timezone=True), nullable=False)


class QueueRow(Base):
    """The team queue a ticket is in and its priority (docs/handoff.md#routing); none: unrouted.
    Its own table, so that databases made before it existed gain it with create_all."""

    __tablename__ = "ticket_queues"

    ticket_id = Column(Integer, ForeignKey("tickets.id"), primary_key=True)
    queue = Column(String(64), nullable=False, index=True)
    priority = Column(String(16))
    updated_at = Column(DateTime(timezone=True), nullable=False)


class ResolutionRow(Base):
    """One resolution of a ticket (a reopened ticket resolved again has two). Its own table, so
    that databases made before it existed gain it with create_all."""

    __tablename__ = "ticket_resolutions"

    id = Column(Integer, primary_key=True, autoincrement=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    status = Column(String(16), nullable=False)
    category = Column(String(255))  # the intent the agent filed it under, e.g. refund_status
    resolved_by = Column(String(255))
    resolved_at = Column(DateTime(timezone=True), nullable=False, index=True)


class SqlTicketing(TicketingAdapter):
    name = "sqlite"

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.engine = make_engine(db_url)
        with self._session():  # maps "database unreachable" to BackendUnavailable
            Base.metadata.create_all(self.engine)

    def create_ticket(self, *, requester: str, subject: str, body: str, tags: Sequence[str] = (),
                      idempotency_key: str, queue: Optional[TicketQueue] = None,
                      priority: Optional[str] = None) -> Ticket:
        requester = normal_email(requester)
        fingerprint = request_hash(requester, subject)
        check_priority(priority)
        with self._session() as session:
            existing = self._by_key(session, TicketRow, idempotency_key)
            if existing is None:
                row = TicketRow(
                    idempotency_key=idempotency_key, request_hash=fingerprint, requester=requester,
                    subject=subject, body=body, tags_json=json.dumps(list(tags)), status="new",
                    created_at=datetime.now(timezone.utc))
                session.add(row)
                try:
                    if queue is not None or priority is not None:
                        session.flush()  # the ticket's id, in the same transaction
                        session.add(QueueRow(ticket_id=row.id, queue=queue.team if queue else "",
                                             priority=priority, updated_at=row.created_at))
                    session.commit()
                except IntegrityError:  # a concurrent retry won the race: use its ticket
                    session.rollback()
                existing = self._by_key(session, TicketRow, idempotency_key)
            if existing.request_hash != fingerprint:
                raise Conflict("idempotency key reused for a different ticket", code="key_reused")
            return _ticket(existing)

    def add_comment(self, ticket_id: str, text: str, *, requester: str, idempotency_key: str) -> None:
        with self._session() as session:
            row = self._row(session, ticket_id)
            check_owner(_ticket(row), requester)
            existing = self._by_key(session, CommentRow, idempotency_key)
            if existing is not None:
                if existing.ticket_id != row.id or existing.text != text:
                    raise Conflict("idempotency key reused for a different comment", code="key_reused")
                return
            session.add(CommentRow(ticket_id=row.id, idempotency_key=idempotency_key, text=text,
                                   created_at=datetime.now(timezone.utc)))
            if row.status == "new":
                row.status = "open"
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # the same comment, written by a concurrent retry

    def get_ticket(self, ticket_id: str, *, requester: str) -> Ticket:
        with self._session() as session:
            return check_owner(_ticket(self._row(session, ticket_id)), requester)

    def list_tickets(self, requester: str) -> List[Ticket]:
        query = (select(TicketRow).where(TicketRow.requester == normal_email(requester))
                 .order_by(TicketRow.created_at.desc(), TicketRow.id.desc()))
        with self._session() as session:
            return [_ticket(row) for row in session.execute(query).scalars()]

    def set_status(self, ticket_id: str, status: str, *, category: Optional[str] = None,
                   by: Optional[str] = None) -> None:
        """For the people working the queue (and tests): new -> open -> resolved or closed, the
        last with the category (intent) the ticket turned out to be about and who resolved it."""
        with self._session() as session:
            row = self._row(session, ticket_id)
            row.status = status
            if status in DONE:
                session.add(ResolutionRow(ticket_id=row.id, status=status, category=category, resolved_by=by,
                                          resolved_at=datetime.now(timezone.utc)))
            session.commit()

    def resolved_since(self, since: Optional[datetime] = None) -> List[ResolvedTicket]:
        """Each ticket still resolved or closed, once, with its latest resolution (as RT and Zendesk
        show a ticket's current state)."""
        latest = select(func.max(ResolutionRow.id)).group_by(ResolutionRow.ticket_id)
        query = (select(ResolutionRow, TicketRow.subject).join(TicketRow, TicketRow.id == ResolutionRow.ticket_id)
                 .where(ResolutionRow.id.in_(latest), TicketRow.status.in_(DONE))
                 .order_by(ResolutionRow.resolved_at, ResolutionRow.id))
        if since is not None:
            query = query.where(ResolutionRow.resolved_at >= utc(since))
        with self._session() as session:
            return [ResolvedTicket(id=str(res.ticket_id), subject=subject, status=res.status,
                                   category=res.category, resolved_at=utc(res.resolved_at),
                                   resolved_by=res.resolved_by)
                    for res, subject in session.execute(query)]

    def reply(self, ticket_id: str, author: str, text: str, *, public: bool = True,
              idempotency_key: str) -> TicketReply:
        """For the people working the queue (and tests): answer the customer on the ticket
        (`public=False`: an internal note). The same key again returns the first reply."""
        if not author.strip() or not text.strip():
            raise InvalidRequest("a reply needs an author and a text")
        with self._session() as session:
            row = self._row(session, ticket_id)
            existing = self._by_key(session, ReplyRow, idempotency_key)
            if existing is None:
                session.add(ReplyRow(ticket_id=row.id, idempotency_key=idempotency_key, author=author.strip(),
                                     text=text, public=public, created_at=datetime.now(timezone.utc)))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()  # the same reply, written by a concurrent retry
                existing = self._by_key(session, ReplyRow, idempotency_key)
            if existing.ticket_id != row.id or existing.text != text:
                raise Conflict("idempotency key reused for a different reply", code="key_reused")
            return _reply(existing)

    def replies(self, ticket_id: str, after: Optional[str] = None) -> List[TicketReply]:
        since = after_id(after)
        with self._session() as session:
            row = self._row(session, ticket_id)
            query = (select(ReplyRow).where(ReplyRow.ticket_id == row.id, ReplyRow.public.is_(True),
                                            ReplyRow.id > since).order_by(ReplyRow.id))
            return [_reply(reply) for reply in session.execute(query).scalars()]

    def move_ticket(self, ticket_id: str, queue: TicketQueue) -> None:
        with self._session() as session:
            row = self._row(session, ticket_id)
            placed = session.get(QueueRow, row.id)
            if placed is None:
                session.add(QueueRow(ticket_id=row.id, queue=queue.team, updated_at=datetime.now(timezone.utc)))
            elif placed.queue != queue.team:
                placed.queue, placed.updated_at = queue.team, datetime.now(timezone.utc)
            session.commit()

    def queue_of(self, ticket_id: str) -> Tuple[Optional[str], Optional[str]]:
        """For the people working the queue (and tests): the ticket's (queue, priority)."""
        with self._session() as session:
            placed = session.get(QueueRow, self._row(session, ticket_id).id)
            return (placed.queue or None, placed.priority) if placed is not None else (None, None)

    @property
    def location(self) -> str:
        return self.db_url

    def comments(self, ticket_id: str) -> List[str]:
        with self._session() as session:
            query = select(CommentRow.text).where(CommentRow.ticket_id == int(ticket_id)).order_by(CommentRow.id)
            return list(session.execute(query).scalars())

    # -- helpers

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, future=True) as session:
                yield session
        except OperationalError as exc:
            raise BackendUnavailable(f"ticket database unavailable: {type(exc.orig).__name__}") from None

    @staticmethod
    def _by_key(session: Session, model: type, key: str):
        return session.execute(select(model).where(model.idempotency_key == key)).scalar_one_or_none()

    @staticmethod
    def _row(session: Session, ticket_id: str) -> TicketRow:
        row = session.get(TicketRow, int(ticket_id)) if str(ticket_id).isdigit() else None
        if row is None:
            raise NotFound(f"no ticket {ticket_id}")
        return row


def _reply(row: ReplyRow) -> TicketReply:
    return TicketReply(id=str(row.id), author=row.author, text=row.text, at=utc(row.created_at))


def _ticket(row: TicketRow) -> Ticket:
    return Ticket(id=str(row.id), subject=row.subject, status=row.status, requester=row.requester,
                  created=utc(row.created_at), url=None)
