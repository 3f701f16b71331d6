"""All database work of the billing service, one class per resource, gathered in `Store`.

Database work is synchronous SQLAlchemy run in worker threads, so concurrent requests really
do race each other: the idempotency and refund-limit guarantees come from the database (a
unique constraint, row locks), not from the event loop happening to serialise requests. Reads
and browser pages open their own session; every keyed JSON write is a `decide_*` method that
gets the session of `idempotency.write_once`, the one place that enforces Idempotency-Key, and
must refuse (raise `ApiError`) before it writes anything.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from supportbot.billing.limits import Limits
from supportbot.billing.operations.accounts import Accounts
from supportbot.billing.operations.customers import Customers
from supportbot.billing.operations.orders import Orders
from supportbot.billing.operations.payment_methods import PaymentMethods
from supportbot.billing.operations.refunds import Refunds
from supportbot.billing.operations.subscriptions import Subscriptions
from supportbot.db import make_engine


class Store:
    """The engine, its session factory (shared by every resource) and the resources."""

    def __init__(self, db_url: str, refund_window_days: int, limits: Limits) -> None:
        self.engine = make_engine(db_url)
        self.sessions = sessionmaker(self.engine, future=True, expire_on_commit=False)
        self.customers = Customers(self.sessions, limits)
        self.orders = Orders(limits)
        self.refunds = Refunds(self.sessions, refund_window_days, limits)
        self.subscriptions = Subscriptions(self.sessions)
        self.payment_methods = PaymentMethods(self.sessions)
        self.accounts = Accounts(self.sessions)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
