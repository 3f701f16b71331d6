"""What the billing service tells about a customer: identity checks, their rows, their name.

`verify` matches an email with an order number under the verification-attempt counters of
`limits`; `get` and `list_rows` read one customer's orders, invoices, payments, disputes,
subscriptions and refunds (another customer's rows are not found); `duplicates` lists their
duplicate charges; `invoice_document` renders the page a signed invoice link opens.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing import limits as attempts  # the verification-attempt counters
from supportbot.billing import pages
from supportbot.billing.auth import Caller
from supportbot.billing.limits import Limits
from supportbot.billing.links import LinkError
from supportbot.billing.models import Customer, Invoice, Order, money, utcnow
from supportbot.billing.operations.common import by_email, customer_row, owned
from supportbot.billing.policy import duplicate_charges
from supportbot.billing.validation import ApiError, too_many_attempts

logger = logging.getLogger(__name__)


class Customers:
    """Reads of customer data and the customer's own changes; runs in worker threads."""

    def __init__(self, sessions: sessionmaker, limits: Limits) -> None:
        self.sessions = sessions
        self.limits = limits

    def customer(self, cid: str) -> Dict[str, Any]:
        with self.sessions() as session:
            return customer_row(session, cid).to_dict()

    def verify(self, email: str, order_id: str, caller: Caller,
               conversation_id: Optional[str]) -> Dict[str, Any]:
        """The customer, if email and order match and none of the attempt's counters is full.

        A full counter refuses right and wrong details alike (429); a failure that would
        overfill one is refused the same way instead of being counted."""
        now, window = utcnow(), self.limits.verify_window
        with self.sessions() as session:
            customer = by_email(session, email)
            order = session.get(Order, order_id)
            found = None
            if customer is not None and order is not None and order.customer_id == customer.id:
                found = customer.to_dict()
            subject = attempts.customer_subject(customer.id if customer else None, email)
            scopes = attempts.verify_scopes(self.limits, caller.client, subject, conversation_id)
            if found is None and attempts.count_failure(session, scopes, window, now):
                session.commit()
                self._forget_expired_attempts(now)
                # One answer for "unknown email" and "not your order": no probing for accounts.
                raise ApiError(404, "not_found", "No customer matches that email and order")
            session.rollback()  # a refused failure counts nowhere
            wait = attempts.seconds_locked(session, scopes, window, now)
        if found is not None and wait is None:
            return found
        logger.warning("verification refused: too many failed attempts (client %s)",
                       caller.client)
        raise too_many_attempts(wait)

    def _forget_expired_attempts(self, now: dt.datetime) -> None:
        with self.sessions() as session:
            attempts.forget_expired(session, self.limits.verify_window, now)
            session.commit()

    def get(self, model: Any, cid: str, ident: str) -> Dict[str, Any]:
        with self.sessions() as session:
            return owned(session, model, ident, cid).to_dict()

    def list_rows(self, model: Any, cid: str, newest_first: Any, *filters: Any) -> list:
        with self.sessions() as session:
            customer_row(session, cid)
            query = select(model).where(model.customer_id == cid, *filters)
            rows = session.scalars(query.order_by(newest_first.desc(), model.id.desc()))
            return [row.to_dict() for row in rows]

    def duplicates(self, cid: str) -> list:
        with self.sessions() as session:
            customer_row(session, cid)
            return [{"payment": payment.to_dict(), "original_payment_id": original}
                    for payment, original in duplicate_charges(session, cid)]

    @staticmethod
    def decide_rename(session: Session, cid: str, name: str) -> Tuple[int, Any]:
        customer = customer_row(session, cid, lock=True)
        customer.name = name
        session.flush()
        return 200, customer.to_dict()

    def invoice_document(self, iid: str) -> str:
        with self.sessions() as session:
            invoice = session.get(Invoice, iid)
            if invoice is None:
                raise LinkError(404, "not_found", "This invoice does not exist.")
            customer = session.get(Customer, invoice.customer_id)
            order = session.get(Order, invoice.order_id) if invoice.order_id else None
            if order is not None:
                lines = [(item.name, item.qty, money(item.unit_price),
                          money(item.unit_price * item.qty)) for item in order.items]
            else:
                lines = [("Subscription", 1, money(invoice.amount), money(invoice.amount))]
            return pages.invoice_document(invoice.to_dict(), customer.to_dict(), lines)
