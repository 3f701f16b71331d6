"""Row lookups and inserts that several of the billing service's operations share.

Every lookup is scoped: `owned` finds a row only under its own customer, so someone else's row
is simply not found (404), and `lock=True` re-reads the row under a row lock so concurrent
writes to one order, subscription or payment are serialised (on Postgres). Single-use link
tokens are stored hashed (`token_row`) and redeemed once (`redeem`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from supportbot.billing.links import TOKEN_MINUTES, LinkError, hash_token, new_token
from supportbot.billing.models import Customer, Refund, utcnow
from supportbot.billing.validation import not_found


def customer_row(session: Session, cid: str, lock: bool = False) -> Customer:
    if not lock:
        customer = session.get(Customer, cid)
    else:
        query = select(Customer).where(Customer.id == cid).with_for_update()
        customer = session.scalars(query.execution_options(populate_existing=True)).first()
    if customer is None:
        raise not_found("Customer")
    return customer


def owned(session: Session, model: Any, ident: str, cid: str, lock: bool = False) -> Any:
    """The row with this id *and* this customer: someone else's row is simply not found."""
    query = select(model).where(model.id == ident, model.customer_id == cid)
    if lock:  # re-read under the lock, even if this session loaded the row before
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalars(query).first()
    if row is None:
        raise not_found(model.__name__)
    return row


def by_email(session: Session, email: str) -> Optional[Customer]:
    query = select(Customer).where(func.lower(Customer.email) == email.lower())
    return session.scalars(query).first()


def add_refund(session: Session, **fields: Any) -> Refund:
    """Insert an approved refund; its public id ("R-000001") comes from the database's number."""
    refund = Refund(status="approved", created_at=utcnow(), **fields)
    session.add(refund)
    session.flush()
    refund.id = f"R-{refund.number:06d}"
    session.flush()
    return refund


def token_row(session: Session, model: Any, customer_id: str, **extra: Any) -> str:
    """Store a new single-use token (hashed) and return the token itself."""
    token, token_hash = new_token()
    now = utcnow()
    session.add(model(customer_id=customer_id, token_hash=token_hash, created_at=now,
                      expires_at=now + dt.timedelta(minutes=TOKEN_MINUTES), **extra))
    return token


def redeem(session: Session, model: Any, token: Optional[str], *filters: Any) -> Any:
    """The unused, unexpired row for this token, locked; LinkError 403/410 otherwise."""
    query = select(model).where(model.token_hash == hash_token(token or ""), *filters)
    row = session.scalars(query.with_for_update()).first() if token else None
    if row is None:
        raise LinkError(403, "invalid_token", "This link is not valid.")
    if row.used_at is not None or row.expires_at <= utcnow():
        raise LinkError(410, "link_expired", "This link has expired or was already used.")
    return row
