"""The card a customer types into the service's card-update page (`/pay/update`).

`Card.from_form` checks the number (12-19 digits, Luhn via `supportbot.redact.luhn_valid`, the
same check that masks card numbers in chat) and the expiry, and keeps only what the service
stores: the brand, the last four digits and the expiry. The full number goes no further.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from supportbot.redact import luhn_valid


def card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    if digits.startswith(("6011", "65")):
        return "discover"
    return "card"


@dataclass(frozen=True)
class Card:
    """A validated card from the update form; the number never leaves this object."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int

    @classmethod
    def from_form(cls, number: str, month: str, year: str, today: dt.date) -> Card:
        digits = re.sub(r"[ -]", "", number or "")
        if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19
                and luhn_valid(digits)):
            raise ValueError("That card number is not valid.")
        month, year = (month or "").strip(), (year or "").strip()
        if not (month.isascii() and month.isdigit() and 1 <= int(month) <= 12):
            raise ValueError("The expiry month must be 1 to 12.")
        if not (year.isascii() and year.isdigit() and len(year) in (2, 4)):
            raise ValueError("The expiry year must be like 2029.")
        exp_year = int(year) + (2000 if len(year) == 2 else 0)
        if (exp_year, int(month)) < (today.year, today.month) or exp_year > today.year + 25:
            raise ValueError("That card has expired or its expiry date is not valid.")
        return cls(card_brand(digits), digits[-4:], int(month), exp_year)
