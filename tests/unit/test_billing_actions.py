"""The pure decisions inside the billing, subscription and account actions: which invoice,
which payment, which plan, which account detail. The flows themselves run against the real
servers in tests/e2e/test_billing_flows.py."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from actions.account import account_field
from actions.payments import latest_decline, match_payment, pick_invoice
from actions.subscriptions import last_subscription_invoice, plan_id
from supportbot.clients.billing import Invoice, Payment

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def invoice(iid: str, days_ago: int, order_id=None, status="paid") -> Invoice:
    return Invoice(id=iid, customer_id="C-1", order_id=order_id, amount=Decimal("19.00"), currency="USD",
                   status=status, issued_at=NOW - dt.timedelta(days=days_ago))


def payment(pid: str, minutes_ago: int, amount="19.00", status="succeeded", order_id=None,
            invoice_id="INV-2026-00001", reason=None) -> Payment:
    return Payment(id=pid, customer_id="C-1", invoice_id=invoice_id, order_id=order_id,
                   amount=Decimal(amount), currency="USD", status=status, failure_reason=reason,
                   card_last4="4242", created_at=NOW - dt.timedelta(minutes=minutes_ago))


def test_pick_invoice_newest_or_nearest_to_the_date():
    invoices = [invoice("INV-2026-00003", 2), invoice("INV-2026-00002", 20), invoice("INV-2026-00001", 40)]
    assert pick_invoice(invoices, None).id == "INV-2026-00003"
    day = (NOW - dt.timedelta(days=21)).date().isoformat()
    assert pick_invoice(invoices, day).id == "INV-2026-00002"
    far = (NOW - dt.timedelta(days=30)).date().isoformat()
    assert pick_invoice(invoices, far) is None  # nothing within 3 days: no guess
    assert pick_invoice([], None) is None


def test_last_subscription_invoice_skips_order_invoices_and_unpaid_ones():
    invoices = [invoice("INV-3", 1, order_id="1234567"), invoice("INV-2", 5, status="open"),
                invoice("INV-1", 9)]
    assert last_subscription_invoice(invoices).id == "INV-1"
    assert last_subscription_invoice(invoices[:2]) is None


def test_match_payment_by_id_order_invoice_or_amount():
    payments = [payment("P-000003", 5, amount="19.98", order_id="4817265", invoice_id=None),
                payment("P-000002", 60, amount="89.97", invoice_id="INV-2026-00042"),
                payment("P-000001", 90, amount="49.99")]
    assert match_payment("P-000002", payments).id == "P-000002"
    assert match_payment("p-000001 please", payments).id == "P-000001"
    assert match_payment("the one for order 4817265", payments).id == "P-000003"
    assert match_payment("INV-2026-00042", payments).id == "P-000002"
    assert match_payment("the $49.99 charge", payments).id == "P-000001"
    assert match_payment("P-999999", payments) is None  # not theirs: no fallback to an amount
    assert match_payment("something else", payments) is None


def test_latest_decline_and_whether_a_retry_paid_it():
    failed = payment("P-2", 30, status="failed", reason="expired_card")
    retry = payment("P-3", 25)
    assert latest_decline([retry, failed, payment("P-1", 999)]) == (failed, retry)
    assert latest_decline([failed]) == (failed, None)
    old = payment("P-0", 60 * 24 * 90, status="failed", reason="card_declined")
    assert latest_decline([old]) is None
    assert latest_decline([retry]) is None


def test_plan_and_account_field_words():
    assert plan_id("premium") == "premium"
    assert plan_id("the Pro one please!") == "premium"
    assert plan_id("standard") == "plus"
    assert plan_id("basic or premium?") is None  # two plans: ask again
    assert plan_id("the cheapest") is None
    assert account_field("email") == "email"
    assert account_field("I want to change my e-mail address") == "email"
    assert account_field("I need to change the name on my account") == "name"
    assert account_field("my surname changed") == "name"
    assert account_field("name and email") is None
    assert account_field("my profile") is None
