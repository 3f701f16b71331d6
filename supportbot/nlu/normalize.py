"""Turn entity text as customers type it into the one form actions read.

Pure functions with no Rasa imports, so they are easy to test and reuse: each returns the
normalised value, or None when the text is not a value of that kind (then the entity is
dropped rather than handed to an action half-understood).
"""
from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Callable, Dict, Optional

_ORDER_RE = re.compile(r"^\s*(?:ord(?:er)?[-\s#:]*|#)?\s*(\d{7})\s*$", re.IGNORECASE)
_INVOICE_RE = re.compile(r"^\s*inv[-\s]?(\d{4})[-\s]?(\d{5})\s*$", re.IGNORECASE)
_TICKET_RE = re.compile(r"^\s*(?:tkt[-\s]?|ticket\s*|case\s*)?#?\s*(\d{1,6})\s*$", re.IGNORECASE)
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")

CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP"}
CURRENCY_WORDS = {
    "usd": "USD", "dollar": "USD", "dollars": "USD", "buck": "USD", "bucks": "USD",
    "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP",
}
_NUMBER_RE = re.compile(r"\d{1,3}(?:[,\s]\d{3})+(?:\.\d{1,2})?|\d+(?:[.,]\d{1,2})?")

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
WEEKDAYS.update({name.lower(): i for i, name in enumerate(calendar.day_abbr)})


def order_id(text: str) -> Optional[str]:
    match = _ORDER_RE.match(text)
    return match.group(1) if match else None


def invoice_id(text: str) -> Optional[str]:
    match = _INVOICE_RE.match(text)
    return f"INV-{match.group(1)}-{match.group(2)}" if match else None


def ticket_id(text: str) -> Optional[str]:
    match = _TICKET_RE.match(text)
    return str(int(match.group(1))) if match else None


def email(text: str) -> Optional[str]:
    value = text.strip().strip("<>.,;").lower()
    return value if _EMAIL_RE.match(value) else None


def plan(text: str) -> Optional[str]:
    value = text.strip().lower()
    return value or None


def amount(text: str) -> Optional[str]:
    """'$49.99' -> '49.99 USD'; '12' -> '12.00' (currency unknown: the order's applies)."""
    lowered = text.lower()
    match = _NUMBER_RE.search(lowered)
    if not match:
        return None
    raw = match.group(0).replace(" ", "")
    if re.fullmatch(r"\d+,\d{1,2}", raw):  # 49,99 as written in much of Europe
        raw = raw.replace(",", ".")
    try:
        value = Decimal(raw.replace(",", "")).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None
    if value <= 0:
        return None
    currency = _currency_of(lowered)
    return f"{value} {currency}" if currency else str(value)


def _currency_of(lowered: str) -> Optional[str]:
    for symbol, code in CURRENCY_SYMBOLS.items():
        if symbol in lowered:
            return code
    for word in re.findall(r"[a-z]+", lowered):
        if word in CURRENCY_WORDS:
            return CURRENCY_WORDS[word]
    return None


def parse_amount(value: str) -> Optional[tuple]:
    """A normalised amount string back into (Decimal, currency or None)."""
    parts = (value or "").split()
    try:
        number = Decimal(parts[0])
    except (IndexError, InvalidOperation):
        return None
    return number, (parts[1] if len(parts) > 1 else None)


def calendar_date(text: str, today: Optional[date] = None) -> Optional[str]:
    """A single day named in `text`, as ISO 'YYYY-MM-DD'; None for durations and ranges.

    Customers mostly talk about days that have passed (when they ordered, were charged),
    so a day without a year or week is the most recent such day.
    """
    today = today or date.today()
    words = re.sub(r"[,.]", " ", text.lower()).split()
    words = [w for w in words if w not in {"on", "the", "of", "this", "past"}]
    for parse in (_relative_day, _weekday, _iso_or_numeric, _month_day):
        found = parse(words, today)
        if found:
            return found.isoformat()
    return None


def _relative_day(words, today):
    offsets = {"today": 0, "yesterday": -1, "tomorrow": 1}
    if len(words) == 1 and words[0] in offsets:
        return today + timedelta(days=offsets[words[0]])
    if words == ["day", "before", "yesterday"]:
        return today - timedelta(days=2)
    return None


def _weekday(words, today):
    if words and words[0] == "last":
        words = words[1:]
    if len(words) != 1 or words[0] not in WEEKDAYS:
        return None
    back = (today.weekday() - WEEKDAYS[words[0]]) % 7 or 7
    return today - timedelta(days=back)


def _iso_or_numeric(words, today):
    if len(words) != 1:
        return None
    token = words[0]
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", token)
    us = re.fullmatch(r"(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?", token)
    try:
        if iso:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        if us:
            year = _full_year(us.group(3)) if us.group(3) else None
            return _recent(int(us.group(1)), int(us.group(2)), year, today)
    except ValueError:
        return None
    return None


def _month_day(words, today):
    month = day = year = None
    for word in words:
        bare = re.sub(r"(st|nd|rd|th)$", "", word)
        if word in MONTHS and month is None:
            month = MONTHS[word]
        elif bare.isdigit() and len(bare) <= 2 and day is None:
            day = int(bare)
        elif bare.isdigit() and len(bare) == 4:
            year = int(bare)
        else:
            return None
    if day is None:
        return None
    try:
        if month is None:  # "the 5th": this month, or last month if that is still to come
            candidate = today.replace(day=day)
            if candidate > today:
                first = today.replace(day=1) - timedelta(days=1)
                candidate = first.replace(day=day)
            return candidate
        return _recent(month, day, year, today)
    except ValueError:
        return None


def _full_year(text: str) -> int:
    year = int(text)
    return year + 2000 if year < 100 else year


def _recent(month: int, day: int, year: Optional[int], today: date) -> date:
    if year:
        return date(year, month, day)
    candidate = date(today.year, month, day)
    # A date more than a month ahead is almost always last year's ("March 3" said in May).
    if candidate - today > timedelta(days=31):
        candidate = date(today.year - 1, month, day)
    return candidate


NORMALIZERS: Dict[str, Callable[[str], Optional[str]]] = {
    "order_id": order_id,
    "invoice_id": invoice_id,
    "ticket_id": ticket_id,
    "email": email,
    "amount": amount,
    "date": calendar_date,
    "plan": plan,
}
