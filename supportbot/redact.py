"""Find and mask payment card numbers (PANs) so they are never shown, logged or stored.

Detection works on digit runs, not on one typing style: a run is digits joined by short runs of
separator characters (any whitespace, invisible format characters, dashes, dots, slashes,
underscores, commas). Inside a run, any 13-19 consecutive digits that begin a digit group, start
with an issuer digit and pass the Luhn check are a card number, and the whole run is masked, so an appended CVV or
expiry goes with it. The mask keeps the last four digits so the customer can tell which card
they meant.

- `mask_card_numbers(text)`: one string.
- `mask_in_structure(value)`: every string in nested message metadata.
- `CardFragments().mask_message(sender_id, text)`: also a card number split over two messages.
- `install_log_masking()`: every log record of the process.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from itertools import accumulate
from typing import AbstractSet, Any, Callable, List, Optional, Tuple

# What people put between digit groups. Unicode spaces, invisible format characters and the
# full-width/CJK forms are here because probes used them to slip past a space-or-dash pattern.
# Commas are included: "4111,1111,..." is a card number, and an amount such as 1,299.00 has too
# few digits to reach 13; the cost is that a list of long numbers may be joined and masked,
# which hides data but never leaks it.
_SEPARATOR_CHARS = (
    "\u00ad\u034f\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"  # invisible format characters
    "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"  # hyphens, dashes, minus
    ".\u00b7\u2024\u2027\u30fb\u3002\uff0e\uff61"  # dots
    "/\\\u2044\u2215\uff0f\uff3c"  # slashes
    "_\uff3f,\uff0c\u3001"  # underscores, commas
)
_SEPARATOR = r"[\s" + re.escape(_SEPARATOR_CHARS) + "]"
# Short gaps only, so numbers that merely share a sentence or a table row stay apart.
MAX_SEPARATOR_RUN = 3
# `\d` is every Unicode decimal digit (full-width, Arabic-Indic, ...); int() reads them all.
# Digits and separators are disjoint, so this pattern cannot backtrack catastrophically.
_RUN_PATTERN = rf"\d+(?:{_SEPARATOR}{{1,{MAX_SEPARATOR_RUN}}}\d+)*"
_RUN = re.compile(_RUN_PATTERN)
_LEADING_RUN = re.compile(rf"{_SEPARATOR}*({_RUN_PATTERN})")
_ONLY_SEPARATORS = re.compile(rf"{_SEPARATOR}*")
_GROUP = re.compile(r"\d+")
_NON_DIGIT = re.compile(r"\D")

_MIN_LENGTH, _MAX_LENGTH = 13, 19
# Most common lengths first, so the last four shown belong to the card, not to a CVV after it.
_LENGTHS = (16, 15, 14, 13, 19, 17, 18)
# ISO/IEC 7812 major industry identifiers of payment cards: 2 and 5 Mastercard, 3 Amex/Diners/
# JCB, 4 Visa, 6 Discover/UnionPay/Maestro. Phone numbers (0, 1), national and tracking
# numbers (9) start with other digits, so requiring these avoids most false matches.
_ISSUER_DIGITS = frozenset("23456")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # Luhn: a doubled digit's digit sum
MASK = "[card number ending {last4}]"
SPLIT_MASK = "[rest of card number]"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        total += _DOUBLED[value] if index % 2 == 1 else value
    return total % 10 == 0


def _ascii_digits(text: str) -> str:
    """The digits of `text` as ASCII, whatever script they were typed in."""
    digits = _NON_DIGIT.sub("", text)
    return digits if digits.isascii() else "".join(str(int(char)) for char in digits)


def _luhn_prefix_sums(digits: str) -> Tuple[List[int], List[int]]:
    """Prefix sums that give any window's Luhn sum in O(1): `sums[p]` leaves digits at
    positions of parity p undoubled, which is right for windows whose last digit has parity p."""
    values = [int(char) for char in digits]
    even = accumulate((v if k % 2 == 0 else _DOUBLED[v] for k, v in enumerate(values)), initial=0)
    odd = accumulate((_DOUBLED[v] if k % 2 == 0 else v for k, v in enumerate(values)), initial=0)
    return list(even), list(odd)


def _card_end(
    digits: str, sums: Tuple[List[int], List[int]], start: int,
    ends: Optional[AbstractSet[int]] = None,
) -> int:
    """End of a card number starting at `start` (0 if none); `ends`, if given, are the allowed ends."""
    if digits[start] not in _ISSUER_DIGITS:
        return 0
    for length in _LENGTHS:
        end = start + length
        if end <= len(digits) and (ends is None or end in ends):
            prefix = sums[(end - 1) % 2]
            if (prefix[end] - prefix[start]) % 10 == 0:
                return end
    return 0


def find_card_numbers(digits: str, starts: Optional[AbstractSet[int]] = None) -> List[str]:
    """Card numbers in an ASCII digit string, left to right, not overlapping. `starts`, if
    given, are the positions a card number may begin at (where a typed digit group begins)."""
    if len(digits) < _MIN_LENGTH:
        return []
    sums = _luhn_prefix_sums(digits)
    found, start = [], 0
    while start <= len(digits) - _MIN_LENGTH:
        end = _card_end(digits, sums, start) if starts is None or start in starts else 0
        if end:
            found.append(digits[start:end])
        start = end or start + 1
    return found


def _group_starts(run: str) -> AbstractSet[int]:
    """Where each digit group of a run begins, counted in the run's digits."""
    starts, position = set(), 0
    for group in _GROUP.findall(run):
        starts.add(position)
        position += len(group)
    return starts


def mask_card_numbers(text: str) -> Tuple[str, int]:
    """Return `text` with card numbers masked, and how many were masked.

    Each digit run that contains a card number is replaced as a whole by one mask per card
    number in it, e.g. "4111 1111 1111 1111 exp 12/27" -> "[card number ending 1111] exp 12/27".
    A card number begins where a digit group begins: people type a card from its first digit,
    while a window in the middle of a long machine number (a Slack timestamp, a tracking id)
    would pass Luhn one time in ten and be masked for nothing."""
    count = 0

    def _mask(match: re.Match[str]) -> str:
        nonlocal count
        run = match.group(0)
        cards = find_card_numbers(_ascii_digits(run), _group_starts(run))
        count += len(cards)
        return " ".join(MASK.format(last4=card[-4:]) for card in cards) if cards else run

    return _RUN.sub(_mask, text or ""), count


MAX_STRUCTURE_DEPTH = 20


def mask_in_structure(value: Any, _depth: int = 0) -> Tuple[Any, int]:
    """Mask every string in nested dicts, lists and tuples (message metadata); return a masked
    copy and the count. Keys and non-string leaves are kept as they are.

    Raises ValueError for nesting deeper than MAX_STRUCTURE_DEPTH (or a cycle): metadata that
    deep is not something a channel sends, and refusing it keeps the walk bounded."""
    if isinstance(value, str):
        return mask_card_numbers(value)
    if not isinstance(value, (dict, list, tuple)):
        return value, 0
    if _depth >= MAX_STRUCTURE_DEPTH:
        raise ValueError(f"structure nested deeper than {MAX_STRUCTURE_DEPTH} levels")
    if isinstance(value, dict):
        results = {key: mask_in_structure(item, _depth + 1) for key, item in value.items()}
        return {key: masked for key, (masked, _) in results.items()}, sum(n for _, n in results.values())
    pairs = [mask_in_structure(item, _depth + 1) for item in value]
    items = [masked for masked, _ in pairs]
    return (tuple(items) if isinstance(value, tuple) else items), sum(n for _, n in pairs)


class CardFragments:
    """Masks a card number typed over two consecutive messages of one sender.

    Remembers, per sender, the digit groups at the very end of the last message (at most 18
    digits, in memory only, for `ttl_seconds`, for the `max_senders` most recent senders). When
    the next message starts with digits and the remembered groups plus them hold a card number,
    that leading run is masked as SPLIT_MASK, without the last four: with the first
    part already stored, showing them would complete the number.

    Limits: the first part is stored as typed, because on its own (fewer than 13 digits) it is
    not a card number; only two-message splits are joined. To keep consecutive numeric answers
    (an order number, then a phone number) apart, the card number must start at a digit group of
    the first message and end at a group end of the second (a CVV after a space still counts).
    """

    def __init__(
        self, max_senders: int = 10_000, ttl_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_senders, self._ttl, self._clock = max_senders, ttl_seconds, clock
        self._tails: OrderedDict[str, Tuple[float, Tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def mask_message(self, sender_id: str, text: str) -> Tuple[str, int]:
        """`mask_card_numbers(text)`, plus a card number begun in this sender's last message."""
        # The continuation first: its mask shows no digits, where the run on its own might
        # pass as a card by chance and show four of them.
        masked, joined = _mask_continuation(self._take(sender_id), text or "")
        masked, count = mask_card_numbers(masked)
        self._remember(sender_id, _trailing_groups(masked))
        return masked, count + joined

    def _take(self, sender_id: str) -> Tuple[str, ...]:
        with self._lock:
            stamp, groups = self._tails.pop(sender_id, (0.0, ()))
        return groups if self._clock() - stamp <= self._ttl else ()

    def _remember(self, sender_id: str, groups: Tuple[str, ...]) -> None:
        if not groups:
            return
        with self._lock:
            self._tails[sender_id] = (self._clock(), groups)
            while len(self._tails) > self._max_senders:
                self._tails.popitem(last=False)


def _trailing_groups(text: str) -> Tuple[str, ...]:
    """Digit groups of the run that ends `text`, the last ones that fit in 18 digits."""
    tail = text[-(_MAX_LENGTH * (MAX_SEPARATOR_RUN + 1) + 1):]  # enough to hold 18 digits
    runs = list(_RUN.finditer(tail))
    if not runs or not _ONLY_SEPARATORS.fullmatch(tail, runs[-1].end()):
        return ()
    groups: List[str] = []
    for group in reversed(_GROUP.findall(runs[-1].group(0))):
        if sum(map(len, groups)) + len(group) > _MAX_LENGTH - 1:
            break
        groups.insert(0, _ascii_digits(group))
    return tuple(groups)


def _mask_continuation(previous: Tuple[str, ...], text: str) -> Tuple[str, int]:
    """Mask the digit run that starts `text` if it completes a card number begun in `previous`."""
    lead = _LEADING_RUN.match(text) if previous else None
    if lead is None:
        return text, 0
    groups = list(previous) + [_ascii_digits(group) for group in _GROUP.findall(lead.group(1))]
    offsets = list(accumulate(map(len, groups), initial=0))
    starts, ends = offsets[: len(previous)], set(offsets[len(previous) + 1:])
    digits = "".join(groups)
    sums = _luhn_prefix_sums(digits)
    if not any(_card_end(digits, sums, start, ends) for start in starts):
        return text, 0
    return text[: lead.start(1)] + SPLIT_MASK + text[lead.end(1):], 1


_log_masking_lock = threading.Lock()
_log_masking_installed = False


def install_log_masking() -> None:
    """Mask card numbers in every log record of every logger in this process.

    A log record factory, not a filter or handler: filters belong to one logger or handler,
    and Rasa, Sanic and aiohttp add their own handlers and loggers at start-up, after us. Every
    record any logger makes comes from the factory, so those are covered too. The message and
    its arguments, the formatted exception (`exc_text`, which standard formatters print instead
    of formatting `exc_info` again) and `extra=` values such as Sanic's access-log URL are
    masked. Idempotent: later calls do nothing.

    Not covered: records made without the factory (logging.makeLogRecord, e.g. by a socket
    listener), extras when another factory returns a LogRecord subclass, and formatters that
    ignore `exc_text` and format `exc_info` themselves.
    """
    global _log_masking_installed
    with _log_masking_lock:
        if _log_masking_installed:
            return
        previous = logging.getLogRecordFactory()

        def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return _mask_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(masking_factory)
        _log_masking_installed = True


def _mask_loggable(value: Any) -> Any:
    """A log message or argument with card numbers masked. Strings are masked; other objects
    become their masked str() only if that holds a card number, so %d and %r still work."""
    if value is None or isinstance(value, (bool, int, float)):
        return value  # a number typed as an int is caught in the formatted message
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a broken __str__ is the handler's to report, not the caller's
        return value
    masked, count = mask_card_numbers(text)
    return masked if count or isinstance(value, str) else value


def _mask_record(record: logging.LogRecord) -> logging.LogRecord:
    record.msg = _mask_loggable(record.msg)
    if isinstance(record.args, dict):  # logger.info("%(card)s", {...}) keeps its mapping
        record.args = {key: _mask_loggable(arg) for key, arg in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_mask_loggable(arg) for arg in record.args)
    _mask_formatted_message(record)
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_card_numbers(logging.Formatter().formatException(record.exc_info))[0]
    if type(record) is logging.LogRecord:
        record.__class__ = _ExtraMaskingRecord
    return record


def _mask_formatted_message(record: logging.LogRecord) -> None:
    """Catch a card number split between the message and its arguments, or passed as an int."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format call: the handler reports it, with the masked parts
        return
    masked, count = mask_card_numbers(message)
    if count:
        record.msg, record.args = masked, ()


_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class _ExtraMaskingRecord(logging.LogRecord):
    """A LogRecord that also masks its `extra=` values. Logger.makeRecord writes them into the
    record's __dict__ after the factory has returned, so they are masked when the record is
    formatted: every formatter calls getMessage() before it reads them."""

    def getMessage(self) -> str:
        for key in self.__dict__.keys() - _RECORD_ATTRIBUTES:
            self.__dict__[key] = _mask_loggable(self.__dict__[key])
        return super().getMessage()
