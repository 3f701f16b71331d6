"""Money going back to a customer: refund quotes, refunds and payment disputes.

A refund's target (an order, an invoice or a duplicate charge) is loaded under a row lock, so
concurrent refunds of one target cannot together return more than was paid; the refund policy
(`policy.evaluate`) decides first, then the caller's auto-limit, for refunds and disputes alike.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing.auth import Caller
from supportbot.billing.limits import Limits
from supportbot.billing.models import Dispute, Invoice, Order, Payment, utcnow
from supportbot.billing.operations.common import add_refund, customer_row, owned
from supportbot.billing.policy import Target, check_auto_limit, evaluate
from supportbot.billing.validation import ApiError, RefundRequest, TargetRef


class Refunds:
    """Refund quotes, refunds and disputes; runs in worker threads."""

    def __init__(self, sessions: sessionmaker, window_days: int, limits: Limits) -> None:
        self.sessions = sessions
        self.window_days = window_days
        self.limits = limits

    def quote(self, cid: str, ref: TargetRef, amount: Optional[Decimal]) -> Dict[str, Any]:
        with self.sessions() as session:
            target = load_target(session, cid, ref)
            return evaluate(session, target, amount, self.window_days).to_dict()

    def decide_refund(self, session: Session, cid: str, req: RefundRequest,
                      caller: Caller) -> Tuple[int, Any]:
        """Refund an order, an invoice or a duplicate charge: policy first, then the caller's
        auto-limit (a refund that policy refuses is refused for everyone)."""
        target = load_target(session, cid, req.target, lock=True)
        quote = evaluate(session, target, req.amount, self.window_days)
        if not quote.eligible:
            raise ApiError(422, quote.reason or "not_refundable", quote.message(self.window_days))
        check_auto_limit(caller, req.amount, self.limits.refund_auto_limit, "refund")
        refund = add_refund(
            session, customer_id=cid, amount=req.amount, currency=target.currency,
            reason=req.reason, order_id=target.order.id if target.order is not None else None,
            invoice_id=target.invoice.id if target.invoice is not None else None,
            payment_id=target.payment.id if target.payment is not None else None,
        )
        if target.payment is not None and req.amount >= quote.max_refundable:
            target.payment.status = "refunded"  # fully returned: no longer a duplicate
        session.flush()
        return 201, refund.to_dict()

    def decide_dispute(self, session: Session, cid: str, payment_id: str, reason: str,
                       caller: Caller) -> Tuple[int, Any]:
        customer_row(session, cid)
        payment = owned(session, Payment, payment_id, cid, lock=True)
        if payment.status != "succeeded":
            raise ApiError(422, "not_disputable", "Only a succeeded payment can be disputed")
        query = select(Dispute).where(Dispute.payment_id == payment.id, Dispute.status == "open")
        if session.scalars(query).first() is not None:
            raise ApiError(422, "already_disputed", "This payment already has an open dispute")
        check_auto_limit(caller, payment.amount, self.limits.dispute_auto_limit, "dispute")
        dispute = Dispute(customer_id=cid, payment_id=payment.id, amount=payment.amount,
                          currency=payment.currency, reason=reason, status="open",
                          created_at=utcnow())
        session.add(dispute)
        session.flush()
        dispute.id = f"D-{dispute.number:06d}"
        session.flush()
        return 201, dispute.to_dict()


def load_target(session: Session, cid: str, ref: TargetRef, lock: bool = False) -> Target:
    """Load the target rows; `lock` serialises refunds of one target (Postgres)."""
    customer_row(session, cid)
    if ref.payment_id is not None:
        return Target(None, None, owned(session, Payment, ref.payment_id, cid, lock))
    if ref.order_id is not None:
        order = owned(session, Order, ref.order_id, cid, lock)
        invoice = session.scalars(select(Invoice).where(Invoice.order_id == order.id)).first()
        return Target(order, invoice)
    invoice = owned(session, Invoice, ref.invoice_id, cid, lock)
    order = None
    if invoice.order_id is not None:
        order = owned(session, Order, invoice.order_id, cid, lock)
    return Target(order, invoice)
