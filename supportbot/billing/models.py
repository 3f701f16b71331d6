"""SQLAlchemy tables of the reference billing & orders service, and their JSON shapes.

Money is `Numeric(12, 2)` read back as `Decimal`; timestamps are naive UTC (SQLite has no time
zones) and are rendered with a trailing `Z`.
"""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal
from typing import Any, Dict, Optional

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.exc import SAWarning
from sqlalchemy.orm import declarative_base, relationship

from supportbot.db import make_engine  # noqa: F401 -- callers and tests import it from here

# SQLite keeps NUMERIC as a float; SQLAlchemy rounds it back to the column's 2 decimals, which
# is exact for amounts this size, and sums are done in Python on Decimals. So the warning is noise.
warnings.filterwarnings("ignore", message=r"Dialect sqlite\+pysqlite does \*not\* support Decimal",
                        category=SAWarning)

Base = declarative_base()

Money = Numeric(12, 2, asdecimal=True)
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal) -> str:
    """Render an amount with exactly two decimals: `Decimal("49.9")` -> `"49.90"`."""
    return str(Decimal(value).quantize(CENT))


def iso_datetime(value: Optional[dt.datetime]) -> Optional[str]:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def iso_date(value: Optional[dt.date]) -> Optional[str]:
    return None if value is None else value.isoformat()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Customer(Base):
    __tablename__ = "customers"
    id = Column(String(16), primary_key=True)
    name = Column(String(200), nullable=False)
    email = Column(String(254), nullable=False, unique=True)  # stored lower-case
    locked = Column(Boolean, nullable=False, default=False)
    # What a downgrade credited; spent on future invoices by the (out of scope) billing run.
    credit_balance = Column(Money, nullable=False, default=Decimal("0.00"))

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email, "locked": self.locked,
                "credit_balance": money(self.credit_balance or 0)}


class Order(Base):
    __tablename__ = "orders"
    id = Column(String(7), primary_key=True)
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    status = Column(String(16), nullable=False)  # processing|shipped|delivered|cancelled
    carrier = Column(String(32))
    tracking_number = Column(String(64))
    eta = Column(Date)
    shipping_address = Column(Text, nullable=False)
    placed_at = Column(DateTime, nullable=False)
    delivered_at = Column(DateTime)
    total = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False)
    items = relationship("OrderItem", order_by="OrderItem.id", lazy="selectin")

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "status": self.status,
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "eta": iso_date(self.eta),
            "shipping_address": self.shipping_address,
            "placed_at": iso_datetime(self.placed_at),
            "delivered_at": iso_datetime(self.delivered_at),
            "total": money(self.total),
            "currency": self.currency,
            "items": [item.to_dict() for item in self.items],
        }


class OrderItem(Base):
    __tablename__ = "order_items"
    id = Column(Integer, primary_key=True, autoincrement=True)
    order_id = Column(String(7), ForeignKey("orders.id"), nullable=False, index=True)
    sku = Column(String(32), nullable=False)
    name = Column(String(200), nullable=False)
    qty = Column(Integer, nullable=False)
    unit_price = Column(Money, nullable=False)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "qty": self.qty,
            "unit_price": money(self.unit_price),
        }


class Invoice(Base):
    __tablename__ = "invoices"
    id = Column(String(32), primary_key=True)
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    order_id = Column(String(7), ForeignKey("orders.id"))
    amount = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False)
    status = Column(String(8), nullable=False)  # paid|open|void
    issued_at = Column(DateTime, nullable=False)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "order_id": self.order_id,
            "amount": money(self.amount),
            "currency": self.currency,
            "status": self.status,
            "issued_at": iso_datetime(self.issued_at),
        }


class Payment(Base):
    __tablename__ = "payments"
    id = Column(String(16), primary_key=True)
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    invoice_id = Column(String(32), ForeignKey("invoices.id"))
    order_id = Column(String(7), ForeignKey("orders.id"))
    amount = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False)
    status = Column(String(16), nullable=False)  # succeeded|failed|refunded
    failure_reason = Column(String(32))  # insufficient_funds|card_declined|expired_card
    card_last4 = Column(String(4), nullable=False)
    created_at = Column(DateTime, nullable=False)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "invoice_id": self.invoice_id,
            "order_id": self.order_id,
            "amount": money(self.amount),
            "currency": self.currency,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "card_last4": self.card_last4,
            "created_at": iso_datetime(self.created_at),
        }


class Refund(Base):
    __tablename__ = "refunds"
    # The integer key comes from the database so concurrent inserts never pick the same
    # public id; `id` ("R-000001") is derived from it inside the same transaction.
    number = Column(Integer, primary_key=True, autoincrement=True)
    id = Column(String(16), unique=True)
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    order_id = Column(String(7), ForeignKey("orders.id"), index=True)
    invoice_id = Column(String(32), ForeignKey("invoices.id"), index=True)
    # Set (alone) when the refund returns a duplicate charge rather than an order/invoice.
    payment_id = Column(String(16), ForeignKey("payments.id"), index=True)
    amount = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False)
    reason = Column(Text, nullable=False)
    status = Column(String(16), nullable=False)  # requested|approved|processed
    created_at = Column(DateTime, nullable=False)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "order_id": self.order_id,
            "invoice_id": self.invoice_id,
            "payment_id": self.payment_id,
            "amount": money(self.amount),
            "currency": self.currency,
            "reason": self.reason,
            "status": self.status,
            "created_at": iso_datetime(self.created_at),
        }


class Plan(Base):
    __tablename__ = "plans"
    id = Column(String(16), primary_key=True)  # basic|plus|premium
    name = Column(String(64), nullable=False)
    monthly_price = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False, default="USD")

    def to_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "monthly_price": money(self.monthly_price),
                "currency": self.currency}


# The service's single retention offer, made to active subscriptions that have not taken it.
RETENTION_OFFER = {"id": "half_price_3_months", "description": "50% off your next 3 months",
                   "percent_off": 50, "months": 3}


class Subscription(Base):
    __tablename__ = "subscriptions"
    id = Column(String(16), primary_key=True)
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    plan_id = Column(String(16), ForeignKey("plans.id"), nullable=False)
    status = Column(String(16), nullable=False)  # active|cancelled
    renews_at = Column(Date)
    ends_at = Column(Date)  # the day access ends, once cancelled
    started_at = Column(DateTime, nullable=False)
    discount_percent = Column(Integer, nullable=False, default=0)
    discount_months = Column(Integer, nullable=False, default=0)
    retention_offer_accepted = Column(Boolean, nullable=False, default=False)
    cancel_reason = Column(Text)
    plan = relationship("Plan", lazy="selectin")

    def to_dict(self) -> Dict[str, Any]:
        offer = None
        if self.status == "active" and not self.retention_offer_accepted:
            offer = dict(RETENTION_OFFER)
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "plan_id": self.plan_id,
            "plan_name": self.plan.name,
            "monthly_price": money(self.plan.monthly_price),
            "currency": self.plan.currency,
            "status": self.status,
            "renews_at": iso_date(self.renews_at),
            "ends_at": iso_date(self.ends_at),
            "started_at": iso_datetime(self.started_at),
            "discount_percent": self.discount_percent or 0,
            "discount_months": self.discount_months or 0,
            "retention_offer": offer,
        }


class Dispute(Base):
    __tablename__ = "disputes"
    number = Column(Integer, primary_key=True, autoincrement=True)
    id = Column(String(16), unique=True)  # "D-000001", derived from `number`
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    payment_id = Column(String(16), ForeignKey("payments.id"), nullable=False, index=True)
    amount = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False)
    reason = Column(Text, nullable=False)
    status = Column(String(16), nullable=False)  # open
    created_at = Column(DateTime, nullable=False)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "payment_id": self.payment_id,
            "amount": money(self.amount),
            "currency": self.currency,
            "reason": self.reason,
            "status": self.status,
            "created_at": iso_datetime(self.created_at),
        }


class PaymentMethod(Base):
    """A saved card: only brand and last four digits, never the number itself."""

    __tablename__ = "payment_methods"
    id = Column(Integer, primary_key=True, autoincrement=True)
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    brand = Column(String(16), nullable=False)
    last4 = Column(String(4), nullable=False)
    exp_month = Column(Integer, nullable=False)
    exp_year = Column(Integer, nullable=False)
    is_default = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False)


class _TokenMixin:
    """A single-use emailed or linked token: only its SHA-256 is stored."""

    id = Column(Integer, primary_key=True, autoincrement=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False)


class PaymentMethodLink(_TokenMixin, Base):
    __tablename__ = "payment_method_links"
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)


class PasswordReset(_TokenMixin, Base):
    __tablename__ = "password_resets"
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)


class AccountToken(_TokenMixin, Base):
    """Account unlock and email-change confirmation links."""

    __tablename__ = "account_tokens"
    customer_id = Column(String(16), ForeignKey("customers.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False)  # account_unlock|email_change
    new_email = Column(String(254))


class Outbox(Base):
    """Mail the service "sends": written here, delivered by nobody (tests read it)."""

    __tablename__ = "outbox"
    id = Column(Integer, primary_key=True, autoincrement=True)
    to_address = Column(String(254), nullable=False)
    subject = Column(String(200), nullable=False)
    body = Column(Text, nullable=False)
    kind = Column(String(32), nullable=False)  # password_reset|account_unlock|sign_in_help|...
    created_at = Column(DateTime, nullable=False)


class VerifyCounter(Base):
    """Failed `/customers/verify` attempts in one scope (a conversation, a customer or unknown
    email, a calling client) during a fixed window that opens at the scope's first failure.

    In the database, not in memory, so the count holds across restarts and workers; see
    `supportbot.billing.limits`."""

    __tablename__ = "verify_counters"
    scope = Column(String(80), primary_key=True)  # e.g. "customer:C-1001", "conversation:<sha256>"
    window_start = Column(DateTime, nullable=False, index=True)
    failures = Column(Integer, nullable=False)


class IdempotencyKey(Base):
    """One row per (customer, key): the first request's fingerprint and its response."""

    __tablename__ = "idempotency_keys"
    # The unique constraint is what makes concurrent duplicates safe: the second insert
    # fails (or waits, then fails) instead of creating a second refund.
    __table_args__ = (UniqueConstraint("customer_id", "key", name="uq_idempotency_key"),)
    id = Column(Integer, primary_key=True, autoincrement=True)
    key = Column(String(255), nullable=False)
    customer_id = Column(String(16), nullable=False)
    method_path = Column(String(300), nullable=False)
    request_hash = Column(String(64), nullable=False)
    status_code = Column(Integer)
    response_json = Column(Text)
    created_at = Column(DateTime, nullable=False)
