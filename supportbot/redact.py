"""Find and mask payment card numbers so they are never shown, logged or stored.

A card number is 13-19 digits, optionally grouped by spaces or dashes, that passes the Luhn
check; order numbers (7 digits) and phone numbers rarely do both. The mask keeps the last
four digits so the customer can still tell which card they meant.
"""
from __future__ import annotations

import re
from typing import Tuple

_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask_card_numbers(text: str) -> Tuple[str, int]:
    """Return `text` with card numbers masked, and how many were masked."""
    count = 0

    def _mask(match: re.Match[str]) -> str:
        nonlocal count
        digits = re.sub(r"\D", "", match.group(0))
        if not (13 <= len(digits) <= 19 and luhn_valid(digits)):
            return match.group(0)
        count += 1
        return f"[card number ending {digits[-4:]}]"

    return _CANDIDATE.sub(_mask, text or ""), count
