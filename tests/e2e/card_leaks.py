"""Finds test card numbers in files: every store and log a test stack wrote must be free of them.

The PANs are the payment networks' published test numbers (never real cards). A PAN counts as
leaked when its first 13 digits appear with at most a few separators between them, the way
any channel or log might have kept them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

TEST_PANS = ["4111111111111111", "4012888888881881", "5555555555554444", "5500005555555559",
             "2223003122003222", "378282246310005", "6011111111111117"]
_PATTERNS = {pan: re.compile(r"\D{0,4}".join(pan[:13])) for pan in TEST_PANS}


def card_numbers_in(root: Path) -> List[Tuple[str, str]]:
    """(file, PAN) for every test PAN found in any file below `root` (databases included)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [(str(path), pan) for pan, pattern in _PATTERNS.items() if pattern.search(text)]
    return found
