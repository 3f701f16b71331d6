"""Entity values as customers type them, normalised for actions (supportbot.nlu.normalize)."""
from datetime import date

import pytest

from supportbot.nlu import normalize

TODAY = date(2026, 11, 22)  # a Sunday


@pytest.mark.parametrize("text, expected", [
    ("4817263", "4817263"), ("#4817263", "4817263"), ("ORD-4817263", "4817263"),
    ("ord-4817263", "4817263"), ("order 4817263", "4817263"), ("481726", None), ("48172631", None),
])
def test_order_id(text, expected):
    assert normalize.order_id(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("INV-2026-00042", "INV-2026-00042"), ("inv-2026-00042", "INV-2026-00042"),
    ("INV 2026 00042", "INV-2026-00042"),
    ("INV-26-42", None),
])
def test_invoice_id(text, expected):
    assert normalize.invoice_id(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("$49.99", "49.99 USD"), ("49.99 dollars", "49.99 USD"), ("€12", "12.00 EUR"), ("12 euros", "12.00 EUR"),
    ("£30", "30.00 GBP"), ("20 bucks", "20.00 USD"), ("USD 15", "15.00 USD"), ("1,299.00", "1299.00"),
    ("49,99 €", "49.99 EUR"), ("0", None), ("lots", None),
])
def test_amount(text, expected):
    assert normalize.amount(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("today", "2026-11-22"), ("yesterday", "2026-11-21"), ("last Tuesday", "2026-11-17"),
    ("on Sunday", "2026-11-15"), ("March 3", "2026-03-03"), ("3rd of March", "2026-03-03"),
    ("the 5th", "2026-11-05"), ("the 25th", "2026-10-25"),
    ("December 30", "2025-12-30"), ("January 20", "2026-01-20"),
    ("2026-03-03", "2026-03-03"), ("03/03/2026", "2026-03-03"), ("5th of May 2025", "2025-05-05"),
    ("30 days", None), ("two weeks", None), ("4817263", None), ("February 30", None),
])
def test_calendar_date(text, expected):
    assert normalize.calendar_date(text, TODAY) == expected


def test_ticket_and_email():
    assert normalize.ticket_id("TKT-0042") == "42"
    assert normalize.ticket_id("#88") == "88"
    assert normalize.email(" Alice@Example.COM ") == "alice@example.com"
    assert normalize.email("alice at example") is None
