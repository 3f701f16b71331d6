"""Changes to an order before it ships: cancelling it (with its refund) and re-addressing it.

Both are possible only while the order is `processing`; afterwards they answer 422 with why
(`already_shipped`, `already_delivered`, `already_cancelled`).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from supportbot.billing.auth import Caller
from supportbot.billing.limits import Limits
from supportbot.billing.models import ZERO, Order, Payment, Refund
from supportbot.billing.operations.common import add_refund, owned
from supportbot.billing.policy import check_auto_limit
from supportbot.billing.validation import ApiError

# Why an order that is no longer `processing` cannot be cancelled or re-addressed.
ORDER_LOCKED = {
    "shipped": ("already_shipped", "This order has already shipped"),
    "delivered": ("already_delivered", "This order has already been delivered"),
    "cancelled": ("already_cancelled", "This order is already cancelled"),
}


class Orders:
    """Keyed writes on one order; `decide_*` run inside `idempotency.write_once`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def decide_cancel_order(self, session: Session, cid: str, oid: str, reason: Optional[str],
                            caller: Caller) -> Tuple[int, Any]:
        """Cancel a processing order and refund what was paid for it, in one transaction.

        The refund window does not apply (the order never shipped) and the amount is what is
        left to return; the caller's refund auto-limit does, as for every refund."""
        order = _processing(owned(session, Order, oid, cid, lock=True))
        query = select(Payment).where(Payment.order_id == order.id, Payment.status == "succeeded")
        payments = list(session.scalars(query.with_for_update()))
        # Already returned: refunds of the order, and of its still-counted payments (a partly
        # refunded duplicate charge), so nothing is paid back twice.
        returned = select(Refund).where(
            (Refund.order_id == order.id) | Refund.payment_id.in_([p.id for p in payments]))
        amount = (sum((p.amount for p in payments), ZERO)
                  - sum((r.amount for r in session.scalars(returned)), ZERO))
        check_auto_limit(caller, amount, self.limits.refund_auto_limit, "refund")
        refund = None
        if amount > 0:
            refund = add_refund(session, customer_id=cid, order_id=order.id, amount=amount,
                                currency=order.currency,
                                reason=f"order cancelled: {reason}" if reason else "order cancelled")
        for payment in payments:
            payment.status = "refunded"
        order.status = "cancelled"
        session.flush()
        return 200, {"order": order.to_dict(),
                     "refund": refund.to_dict() if refund is not None else None}

    @staticmethod
    def decide_shipping_address(session: Session, cid: str, oid: str,
                                address: str) -> Tuple[int, Any]:
        order = _processing(owned(session, Order, oid, cid, lock=True))
        order.shipping_address = address
        session.flush()
        return 200, order.to_dict()


def _processing(order: Order) -> Order:
    """The order, if it can still be changed; 422 already_shipped/_delivered/_cancelled if not."""
    if order.status != "processing":
        code, message = ORDER_LOCKED.get(order.status,
                                         ("not_processing", "This order can no longer be changed"))
        raise ApiError(422, code, message)
    return order
