"""Deterministic demo data for the reference billing service.

Ids, amounts and items never change; dates are relative to the seeding day (at fixed times of
day, UTC) so that "shipped 3 days ago, arriving in 2 days" stays true in a fresh demo. The
table in docs/billing-service.md describes the same data: keep the two in step.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import List, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from supportbot.billing.models import (
    Base,
    Customer,
    Invoice,
    Order,
    OrderItem,
    Payment,
    Plan,
    Subscription,
)

D = Decimal


class _Clock:
    """Turns "N days ago at HH:MM" into naive UTC datetimes anchored on the seeding day."""

    def __init__(self, today: dt.date) -> None:
        self.today = today

    def at(self, days: int, hour: int = 10, minute: int = 0, second: int = 0) -> dt.datetime:
        day = self.today + dt.timedelta(days=days)
        return dt.datetime.combine(day, dt.time(hour, minute, second))

    def date(self, days: int) -> dt.date:
        return self.today + dt.timedelta(days=days)


def _items(order_id: str, *rows: tuple) -> List[OrderItem]:
    return [
        OrderItem(order_id=order_id, sku=sku, name=name, qty=qty, unit_price=D(price))
        for sku, name, qty, price in rows
    ]


def _plans() -> list:
    return [
        Plan(id="basic", name="Basic", monthly_price=D("9.00"), currency="USD"),
        Plan(id="plus", name="Plus", monthly_price=D("19.00"), currency="USD"),
        Plan(id="premium", name="Premium", monthly_price=D("39.00"), currency="USD"),
    ]


def _alice(c: _Clock) -> list:
    cid, addr = "C-1001", "Alice Martin\n12 Harbor Street\nBoston, MA 02110\nUSA"
    return [
        Customer(id=cid, name="Alice Martin", email="alice@example.com"),
        Order(id="4817263", customer_id=cid, status="shipped", carrier="UPS",
              tracking_number="1Z999AA10123456784", eta=c.date(2), shipping_address=addr,
              placed_at=c.at(-3, 9, 15), total=D("89.97"), currency="USD"),
        *_items("4817263", ("SKU-HDPH-01", "Wireless headphones", 1, "59.99"),
                ("SKU-CASE-02", "Headphone case", 1, "19.99"),
                ("SKU-CABL-03", "USB-C cable", 1, "9.99")),
        Order(id="4817264", customer_id=cid, status="delivered", carrier="UPS",
              tracking_number="1Z999AA10123456791", eta=c.date(-5), shipping_address=addr,
              placed_at=c.at(-9, 14, 2), delivered_at=c.at(-5, 16, 40),
              total=D("49.99"), currency="USD"),
        *_items("4817264", ("SKU-LAMP-07", "Desk lamp", 1, "49.99")),
        Order(id="4817265", customer_id=cid, status="processing", shipping_address=addr,
              placed_at=c.at(-1, 20, 30), total=D("19.98"), currency="USD"),
        *_items("4817265", ("SKU-SOCK-11", "Merino socks", 2, "9.99")),
        Invoice(id="INV-2026-00042", customer_id=cid, order_id="4817264", amount=D("49.99"),
                currency="USD", status="paid", issued_at=c.at(-9, 14, 3)),
        Invoice(id="INV-2026-00043", customer_id=cid, amount=D("19.00"), currency="USD",
                status="paid", issued_at=c.at(-12, 6)),
        Payment(id="P-000001", customer_id=cid, invoice_id="INV-2026-00042", order_id="4817264",
                amount=D("49.99"), currency="USD", status="succeeded", card_last4="4242",
                created_at=c.at(-9, 14, 3)),
        Payment(id="P-000002", customer_id=cid, invoice_id="INV-2026-00043", amount=D("19.00"),
                currency="USD", status="succeeded", card_last4="4242", created_at=c.at(-12, 6)),
        Payment(id="P-000003", customer_id=cid, order_id="4817263", amount=D("89.97"),
                currency="USD", status="failed", failure_reason="expired_card",
                card_last4="1881", created_at=c.at(-3, 9, 16)),
        Payment(id="P-000004", customer_id=cid, order_id="4817263", amount=D("89.97"),
                currency="USD", status="succeeded", card_last4="4242",
                created_at=c.at(-3, 9, 18)),
        Payment(id="P-000005", customer_id=cid, order_id="4817265", amount=D("19.98"),
                currency="USD", status="succeeded", card_last4="4242",
                created_at=c.at(-1, 20, 31)),
        Subscription(id="S-1001", customer_id=cid, plan_id="plus", status="active",
                     renews_at=c.date(18), started_at=c.at(-200, 8)),
    ]


def _bob(c: _Clock) -> list:
    cid, addr = "C-1002", "Bob Chen\n400 Market Street, Apt 5\nSan Francisco, CA 94111\nUSA"
    return [
        Customer(id=cid, name="Bob Chen", email="bob@example.com"),
        Order(id="5529001", customer_id=cid, status="delivered", carrier="FedEx",
              tracking_number="794612345678", eta=c.date(-60), shipping_address=addr,
              placed_at=c.at(-64, 11), delivered_at=c.at(-60, 13, 5),
              total=D("35.00"), currency="USD"),
        *_items("5529001", ("SKU-MUG-04", "Ceramic mug", 2, "17.50")),
        Order(id="5529002", customer_id=cid, status="delivered", carrier="FedEx",
              tracking_number="794612345679", eta=c.date(-3), shipping_address=addr,
              placed_at=c.at(-8, 17, 45), delivered_at=c.at(-3, 12, 20),
              total=D("499.00"), currency="USD"),
        *_items("5529002", ("SKU-CHAIR-09", "Ergonomic office chair", 1, "499.00")),
        Invoice(id="INV-2026-00050", customer_id=cid, order_id="5529002", amount=D("499.00"),
                currency="USD", status="paid", issued_at=c.at(-8, 17, 46)),
        Invoice(id="INV-2026-00051", customer_id=cid, amount=D("19.00"), currency="USD",
                status="paid", issued_at=c.at(-6, 6)),
        Payment(id="P-000010", customer_id=cid, order_id="5529001", amount=D("35.00"),
                currency="USD", status="succeeded", card_last4="5100",
                created_at=c.at(-64, 11, 1)),
        Payment(id="P-000011", customer_id=cid, invoice_id="INV-2026-00050", order_id="5529002",
                amount=D("499.00"), currency="USD", status="succeeded", card_last4="5100",
                created_at=c.at(-8, 17, 46)),
        # The premium -> plus switch: one decline, then the same month charged twice within
        # one minute -- a real duplicate charge for the duplicate-charge conversation.
        Payment(id="P-000012", customer_id=cid, invoice_id="INV-2026-00051", amount=D("19.00"),
                currency="USD", status="failed", failure_reason="card_declined",
                card_last4="0341", created_at=c.at(-6, 6, 0, 5)),
        Payment(id="P-000013", customer_id=cid, invoice_id="INV-2026-00051", amount=D("19.00"),
                currency="USD", status="succeeded", card_last4="5100",
                created_at=c.at(-6, 6, 2, 10)),
        Payment(id="P-000014", customer_id=cid, invoice_id="INV-2026-00051", amount=D("19.00"),
                currency="USD", status="succeeded", card_last4="5100",
                created_at=c.at(-6, 6, 2, 48)),
        Subscription(id="S-1002", customer_id=cid, plan_id="plus", status="active",
                     renews_at=c.date(24), started_at=c.at(-6, 6)),
        Subscription(id="S-1003", customer_id=cid, plan_id="premium", status="cancelled",
                     renews_at=None, ends_at=c.date(-6), started_at=c.at(-150, 9)),
    ]


def _chloe(c: _Clock) -> list:
    cid = "C-1003"
    addr = "Chloé Dubois\n8 rue de la Paix\n75002 Paris\nFrance"
    return [
        Customer(id=cid, name="Chloé Dubois", email="chloe@example.fr"),
        Order(id="6630001", customer_id=cid, status="delivered", carrier="Colissimo",
              tracking_number="6A12345678901", eta=c.date(-10), shipping_address=addr,
              placed_at=c.at(-14, 8, 30), delivered_at=c.at(-10, 11, 10),
              total=D("120.00"), currency="EUR"),
        *_items("6630001", ("SKU-BAG-21", "Sac en cuir", 1, "95.00"),
                ("SKU-WALL-22", "Portefeuille", 1, "25.00")),
        Invoice(id="INV-2026-00061", customer_id=cid, order_id="6630001", amount=D("120.00"),
                currency="EUR", status="paid", issued_at=c.at(-14, 8, 31)),
        Payment(id="P-000020", customer_id=cid, invoice_id="INV-2026-00061", order_id="6630001",
                amount=D("120.00"), currency="EUR", status="succeeded", card_last4="7777",
                created_at=c.at(-14, 8, 31)),
        Subscription(id="S-1004", customer_id=cid, plan_id="premium", status="active",
                     renews_at=c.date(9), started_at=c.at(-90, 7)),
    ]


def _dev(c: _Clock) -> list:
    """A locked account, for the account-unlock conversation."""
    cid, addr = "C-1004", "Dev Patel\n77 King Street\nToronto, ON M5H 1J9\nCanada"
    return [
        Customer(id=cid, name="Dev Patel", email="dev@example.com", locked=True),
        Order(id="7740001", customer_id=cid, status="delivered", carrier="Canada Post",
              tracking_number="7023210039414604", eta=c.date(-15), shipping_address=addr,
              placed_at=c.at(-20, 12), delivered_at=c.at(-15, 15, 30),
              total=D("24.00"), currency="USD"),
        *_items("7740001", ("SKU-NOTE-31", "Dotted notebook", 1, "24.00")),
        Invoice(id="INV-2026-00070", customer_id=cid, order_id="7740001", amount=D("24.00"),
                currency="USD", status="paid", issued_at=c.at(-20, 12, 1)),
        Payment(id="P-000030", customer_id=cid, invoice_id="INV-2026-00070", order_id="7740001",
                amount=D("24.00"), currency="USD", status="succeeded", card_last4="3184",
                created_at=c.at(-20, 12, 1)),
    ]


def seed(session: Session, today: Optional[dt.date] = None) -> None:
    """Insert the demo data; the caller commits. `today` defaults to the current UTC day."""
    clock = _Clock(today or dt.datetime.now(dt.timezone.utc).date())
    # One flush per row keeps the insert order of the lists above, which respects the
    # foreign keys (Postgres checks them immediately; there are no ORM relationships to sort by).
    for row in [*_plans(), *_alice(clock), *_bob(clock), *_chloe(clock), *_dev(clock)]:
        session.add(row)
        session.flush()


def prepare_database(engine: Engine, reset: bool = False) -> bool:
    """Create the tables and seed them when empty (or always, after `reset`).

    Returns whether demo data was inserted.
    """
    if reset:
        Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine, future=True) as session:
        if session.scalar(select(func.count()).select_from(Customer)):
            return False
        seed(session)
        session.commit()
    return True
