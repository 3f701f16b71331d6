"""The billing service's money rules: what may be refunded, how much, and by whom.

`evaluate` applies the refund policy to a loaded `Target` (an order, an invoice or a duplicate
charge) and answers a `Quote`: delivered or paid within the refund window, not yet fully
refunded, and for a payment, only a duplicate charge (`duplicate_charges`: the same charge
succeeded twice within 24 hours). `check_auto_limit` is the caller's auto-limit on top of the
policy; `proration` prices a mid-period plan change. The rules are in docs/billing-service.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from supportbot.billing.auth import Caller
from supportbot.billing.models import (
    CENT,
    ZERO,
    Invoice,
    Order,
    Payment,
    Plan,
    Refund,
    Subscription,
    money,
    utcnow,
)
from supportbot.billing.validation import NEEDS_REVIEW, ApiError

DUPLICATE_WINDOW = dt.timedelta(hours=24)


def check_auto_limit(caller: Caller, amount: Decimal, limit: Decimal, what: str) -> None:
    """403 needs_review when `amount` is above what an assistant may grant on its own."""
    if caller.within_auto_limits and amount > limit:
        raise ApiError(403, NEEDS_REVIEW, f"A {what} above {money(limit)} needs a person's "
                       "review: ask a support agent")


@dataclass
class Target:
    order: Optional[Order]
    invoice: Optional[Invoice]
    payment: Optional[Payment] = None

    @property
    def total(self) -> Decimal:
        if self.payment is not None:
            return self.payment.amount
        return self.order.total if self.order is not None else self.invoice.amount

    @property
    def currency(self) -> str:
        if self.payment is not None:
            return self.payment.currency
        return self.order.currency if self.order is not None else self.invoice.currency


@dataclass(frozen=True)
class Quote:
    eligible: bool
    max_refundable: Decimal
    currency: str
    reason: Optional[str]

    def to_dict(self) -> Dict[str, Any]:
        return {"eligible": self.eligible, "max_refundable": money(self.max_refundable),
                "currency": self.currency, "reason": self.reason}

    def message(self, window_days: int) -> str:
        return {
            "not_delivered": "The order has not been delivered yet",
            "outside_policy": f"Outside the {window_days}-day refund policy",
            "already_refunded": "Already fully refunded",
            "not_duplicate": "This payment is not a duplicate charge",
            "exceeds_refundable": f"At most {money(self.max_refundable)} {self.currency} "
                                  "can be refunded",
        }.get(self.reason or "", "Not refundable")


def evaluate(session: Session, target: Target, amount: Optional[Decimal],
             window_days: int) -> Quote:
    reason = _policy_reason(session, target, window_days)
    if reason is not None:
        return Quote(False, ZERO, target.currency, reason)
    remaining = target.total - _refunded(session, target)
    if remaining <= 0:
        return Quote(False, ZERO, target.currency, "already_refunded")
    if amount is not None and amount > remaining:
        return Quote(False, remaining, target.currency, "exceeds_refundable")
    return Quote(True, remaining, target.currency, None)


def _policy_reason(session: Session, target: Target, window_days: int) -> Optional[str]:
    if target.payment is not None:
        if target.payment.status == "refunded":
            return "already_refunded"
        duplicates = duplicate_charges(session, target.payment.customer_id)
        if all(payment.id != target.payment.id for payment, _ in duplicates):
            return "not_duplicate"
        return None
    order, invoice = target.order, target.invoice
    if order is not None and (order.status != "delivered" or order.delivered_at is None):
        return "not_delivered"
    if invoice is not None and invoice.status != "paid":
        return "outside_policy"
    since = order.delivered_at if order is not None else invoice.issued_at
    if utcnow() - since > dt.timedelta(days=window_days):
        return "outside_policy"
    return None


def _refunded(session: Session, target: Target) -> Decimal:
    if target.payment is not None:
        condition = Refund.payment_id == target.payment.id
    elif target.order is not None:
        condition = Refund.order_id == target.order.id
    else:
        condition = Refund.invoice_id == target.invoice.id
    return sum((r.amount for r in session.scalars(select(Refund).where(condition))), ZERO)


def duplicate_charges(session: Session, cid: str) -> List[Tuple[Payment, str]]:
    """(duplicate payment, original payment id): same charge succeeded twice within 24 h."""
    query = select(Payment).where(Payment.customer_id == cid, Payment.status == "succeeded")
    payments = list(session.scalars(query.order_by(Payment.created_at, Payment.id)))
    found = []
    for i, payment in enumerate(payments):
        for earlier in payments[:i]:
            if _same_charge(earlier, payment):
                found.append((payment, earlier.id))
                break
    return found


def _same_charge(earlier: Payment, later: Payment) -> bool:
    if (earlier.amount, earlier.currency) != (later.amount, later.currency):
        return False
    if later.created_at - earlier.created_at > DUPLICATE_WINDOW:
        return False
    if later.invoice_id is not None or earlier.invoice_id is not None:
        return earlier.invoice_id == later.invoice_id
    return later.order_id is not None and earlier.order_id == later.order_id


def proration(sub: Subscription, new: Plan, today: dt.date) -> Decimal:
    """What switching now costs (negative: a credit) for the rest of the paid period."""
    days_left = 0 if sub.renews_at is None else min(max((sub.renews_at - today).days, 0), 30)
    delta = (new.monthly_price - sub.plan.monthly_price) * days_left / Decimal(30)
    return delta.quantize(CENT, rounding=ROUND_HALF_UP)
