"""Plans and subscriptions: cancelling, the retention offer, and changing plan mid-period.

A plan change is priced by `policy.proration` for the rest of the paid period: an upgrade
opens an invoice for the difference, a downgrade credits the customer's balance.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from supportbot.billing.models import (
    RETENTION_OFFER,
    Customer,
    Invoice,
    Plan,
    Subscription,
    money,
    utcnow,
)
from supportbot.billing.operations.common import owned
from supportbot.billing.policy import proration
from supportbot.billing.validation import ApiError, not_found


class Subscriptions:
    """Plan listing, plan-change previews and keyed subscription writes; runs in worker threads."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def plans(self) -> list:
        with self.sessions() as session:
            query = select(Plan).order_by(Plan.monthly_price, Plan.id)
            return [plan.to_dict() for plan in session.scalars(query)]

    @staticmethod
    def decide_cancel(session: Session, cid: str, sid: str,
                      reason: Optional[str]) -> Tuple[int, Any]:
        sub = owned(session, Subscription, sid, cid, lock=True)
        if sub.status != "active":
            raise ApiError(422, "already_cancelled", "This subscription is already cancelled")
        sub.status, sub.ends_at, sub.renews_at = "cancelled", sub.renews_at, None
        sub.cancel_reason = reason
        session.flush()
        return 200, sub.to_dict()

    @staticmethod
    def decide_offer(session: Session, cid: str, sid: str, offer_id: str) -> Tuple[int, Any]:
        sub = owned(session, Subscription, sid, cid, lock=True)
        if (sub.status != "active" or sub.retention_offer_accepted
                or offer_id != RETENTION_OFFER["id"]):
            raise ApiError(422, "offer_unavailable", "That offer is not available")
        sub.discount_percent = RETENTION_OFFER["percent_off"]
        sub.discount_months = RETENTION_OFFER["months"]
        sub.retention_offer_accepted = True
        session.flush()
        return 200, sub.to_dict()

    def preview_plan_change(self, cid: str, sid: str, plan_id: str) -> Dict[str, Any]:
        with self.sessions() as session:
            sub, new, amount, today = _plan_change(session, cid, sid, plan_id)
            return {"subscription_id": sub.id, "from_plan": sub.plan_id, "to_plan": new.id,
                    "amount_due": money(amount), "currency": new.currency,
                    "effective_date": today.isoformat(),
                    "next_renewal_amount": money(new.monthly_price)}

    @staticmethod
    def decide_plan_change(session: Session, cid: str, sid: str,
                           plan_id: str) -> Tuple[int, Any]:
        sub, new, amount, today = _plan_change(session, cid, sid, plan_id, lock=True)
        invoice_id = None
        if amount > 0:
            invoice_id = _new_invoice_id(session, today)
            session.add(Invoice(id=invoice_id, customer_id=cid, amount=amount,
                                currency=new.currency, status="open", issued_at=utcnow()))
        elif amount < 0:  # one atomic UPDATE, so concurrent credits add up
            session.execute(update(Customer).where(Customer.id == cid).values(
                credit_balance=Customer.credit_balance - amount))
        sub.plan_id, sub.plan = new.id, new
        session.flush()
        return 200, {"subscription": sub.to_dict(), "amount_due": money(amount),
                     "currency": new.currency, "invoice_id": invoice_id}


def _plan_change(session: Session, cid: str, sid: str, plan_id: str,
                 lock: bool = False) -> Tuple[Subscription, Plan, Decimal, dt.date]:
    sub = owned(session, Subscription, sid, cid, lock)
    new = session.get(Plan, plan_id)
    if new is None:
        raise not_found("Plan")
    if sub.status != "active":
        raise ApiError(422, "not_active", "Only an active subscription can change plan")
    if new.id == sub.plan_id:
        raise ApiError(422, "same_plan", "The subscription is already on that plan")
    today = utcnow().date()
    return sub, new, proration(sub, new, today), today


def _new_invoice_id(session: Session, today: dt.date) -> str:
    while True:  # 90,000 numbers a year; seeded invoices use the low ones
        iid = f"INV-{today.year}-{10000 + secrets.randbelow(90000):05d}"
        if session.get(Invoice, iid) is None:
            return iid
