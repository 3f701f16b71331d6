"""Idempotency for backends that have none (RT; comments on Zendesk): a key -> ticket id ledger
in our own database, written around the remote write.

1. claim: insert (backend, key, request hash, state=pending) -- the unique key makes one caller
   the writer; a retry finds the row.
2. the remote write.
3. complete: store the ticket id, state=done. A retry now returns that ticket, no remote write.

The crash window is between 2 and 3: the remote write may have happened but we never learned
its id. A retry that finds a pending claim first asks the backend (`find`, e.g. an RT search for
the requester's ticket with this subject created since the claim). If nothing is found and the
claim is older than `stale_after` (longer than any request can take), the retry writes again;
while the claim is younger another attempt may still be in flight, so the retry gets Conflict
(code "in_progress") rather than risking a duplicate. A write that surely never reached the
backend (connection refused, 4xx) releases its claim so the next retry starts clean.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Optional

from sqlalchemy import Column, DateTime, String, delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, declarative_base

from supportbot.errors import BackendError, BackendUnavailable, Conflict
from supportbot.store import make_engine
from supportbot.ticketing.base import utc

Base = declarative_base()


class KeyRow(Base):
    __tablename__ = "ticketing_keys"

    backend = Column(String(32), primary_key=True)
    idempotency_key = Column(String(255), primary_key=True)
    request_hash = Column(String(64), nullable=False)
    state = Column(String(16), nullable=False)  # pending | done
    ticket_id = Column(String(64))
    claimed_at = Column(DateTime(timezone=True), nullable=False)


class KeyLedger:
    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise BackendUnavailable(f"ticketing key ledger unavailable: {type(exc.orig).__name__}") from None

    def once(self, backend: str, key: str, fingerprint: str, write: Callable[[], str], *,
             find: Optional[Callable[[dt.datetime], Optional[str]]] = None, stale_after: float = 30.0) -> str:
        """Run `write` (which returns a ticket id) at most once per key, as described above."""
        try:
            return self._once(backend, key, fingerprint, write, find, stale_after)
        except OperationalError as exc:
            raise BackendUnavailable(f"ticketing key ledger unavailable: {type(exc.orig).__name__}") from None

    def _once(self, backend, key, fingerprint, write, find, stale_after) -> str:
        now = _now()
        row = self._claim(backend, key, fingerprint, now)
        if row is not None:
            if row.request_hash != fingerprint:
                raise Conflict("idempotency key reused for a different request", code="key_reused")
            if row.state == "done":
                return row.ticket_id
            found = find(utc(row.claimed_at)) if find else None
            if found:
                self._complete(backend, key, found)
                return found
            if (now - utc(row.claimed_at)).total_seconds() < stale_after:
                raise Conflict("an earlier attempt with this key may still be running", code="in_progress")
            if not self._retake(backend, key, row.claimed_at, now):
                raise Conflict("another retry took over this key", code="in_progress")
        try:
            ticket_id = write()
        except BackendError as error:
            if error.code == "unreachable" or (error.status is not None and 400 <= error.status < 500):
                self._release(backend, key)
            raise
        self._complete(backend, key, ticket_id)
        return ticket_id

    def _claim(self, backend: str, key: str, fingerprint: str, now: dt.datetime) -> Optional[KeyRow]:
        """None when we claimed the key; else the row an earlier attempt left."""
        with Session(self.engine, future=True) as session:
            session.add(KeyRow(backend=backend, idempotency_key=key, request_hash=fingerprint,
                               state="pending", claimed_at=now))
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            row = session.execute(select(KeyRow).where(
                KeyRow.backend == backend, KeyRow.idempotency_key == key)).scalar_one()
            session.expunge(row)
            return row

    def _retake(self, backend: str, key: str, claimed_at: dt.datetime, now: dt.datetime) -> bool:
        with Session(self.engine, future=True) as session:
            result = session.execute(update(KeyRow).where(
                KeyRow.backend == backend, KeyRow.idempotency_key == key, KeyRow.state == "pending",
                KeyRow.claimed_at == claimed_at).values(claimed_at=now))
            session.commit()
            return result.rowcount == 1

    def _complete(self, backend: str, key: str, ticket_id: str) -> None:
        with Session(self.engine, future=True) as session:
            session.execute(update(KeyRow).where(KeyRow.backend == backend, KeyRow.idempotency_key == key)
                            .values(state="done", ticket_id=str(ticket_id)))
            session.commit()

    def _release(self, backend: str, key: str) -> None:
        with Session(self.engine, future=True) as session:
            session.execute(delete(KeyRow).where(KeyRow.backend == backend, KeyRow.idempotency_key == key,
                                                 KeyRow.state == "pending"))
            session.commit()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
