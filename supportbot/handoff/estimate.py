"""What a waiting customer is told: business hours (when people answer) and the wait, the
median time to claim of recent handoffs counted in business time, so a night does not make
the estimate for the morning.

Business hours are written as people say them, `Mon-Fri 08:00-20:00, Sat 09:00-14:00`, in
one time zone (SUPPORTBOT_BUSINESS_HOURS, SUPPORTBOT_BUSINESS_TIMEZONE)."""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from supportbot import settings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ENTRY = re.compile(r"^(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
                    r"(?P<open>\d{1,2}:\d{2})\s*-\s*(?P<close>\d{1,2}:\d{2})$")
Window = Tuple[int, int]  # minutes after local midnight: [open, close)


@dataclass(frozen=True)
class BusinessHours:
    windows: Mapping[int, Tuple[Window, ...]]  # weekday (Monday 0) -> its open windows
    zone: ZoneInfo

    @classmethod
    def parse(cls, spec: str, zone: str = "UTC") -> BusinessHours:
        """`Mon-Fri 08:00-20:00, Sat 09:00-14:00`; entries separated by commas or semicolons,
        `24:00` closes at midnight. A ValueError says what is wrong."""
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (an IANA name such as Europe/Berlin)") from None
        windows: Dict[int, List[Window]] = {}
        for entry in filter(None, (e.strip().lower() for e in re.split(r"[,;]", spec or ""))):
            match = _ENTRY.match(entry)
            if not match or match["first"] not in DAYS or (match["last"] or match["first"]) not in DAYS:
                raise ValueError(f"business hours entry {entry!r} is not like 'Mon-Fri 08:00-20:00'")
            opens, closes = _minutes(match["open"], entry), _minutes(match["close"], entry)
            if opens >= closes:
                raise ValueError(f"business hours entry {entry!r} closes before it opens")
            first, last = DAYS.index(match["first"]), DAYS.index(match["last"] or match["first"])
            for day in range(first, (last if last >= first else last + 7) + 1):
                windows.setdefault(day % 7, []).append((opens, closes))
        if not windows:
            raise ValueError("business hours are empty: nobody would ever answer")
        return cls({day: tuple(sorted(w)) for day, w in windows.items()}, tz)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> BusinessHours:
        try:
            return cls.parse(settings.get("SUPPORTBOT_BUSINESS_HOURS", environ) or "",
                             settings.get("SUPPORTBOT_BUSINESS_TIMEZONE", environ) or "UTC")
        except ValueError as error:
            raise ValueError(f"SUPPORTBOT_BUSINESS_HOURS / SUPPORTBOT_BUSINESS_TIMEZONE: {error}") from None

    def _intervals(self, first: date, last: date) -> Iterable[Tuple[datetime, datetime]]:
        """The open intervals of local days `first`..`last`, in UTC: arithmetic on datetimes of
        one zone is wall-clock arithmetic, wrong across a daylight saving change."""
        day = first
        while day <= last:
            for opens, closes in self.windows.get(day.weekday(), ()):
                yield self._at(day, opens).astimezone(timezone.utc), self._at(day, closes).astimezone(timezone.utc)
            day += timedelta(days=1)

    def _at(self, day: date, minutes: int) -> datetime:
        return datetime.combine(day + timedelta(days=minutes // 1440), time(minutes % 1440 // 60, minutes % 60),
                                tzinfo=self.zone)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone).date()
        return any(start <= at < end for start, end in self._intervals(local - timedelta(days=1), local))

    def next_opening(self, at: datetime) -> datetime:
        """When people answer next: `at` itself when open."""
        local = at.astimezone(self.zone).date()
        for start, end in self._intervals(local - timedelta(days=1), local + timedelta(days=8)):
            if end > at:
                return max(start, at)
        raise AssertionError("parse() refuses hours that never open")

    def open_seconds(self, start: datetime, end: datetime) -> float:
        """How much of [start, end) falls in business hours."""
        start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        if end <= start:
            return 0.0
        first, last = start.astimezone(self.zone).date() - timedelta(days=1), end.astimezone(self.zone).date()
        return sum(max((min(end, b) - max(start, a)).total_seconds(), 0.0)
                   for a, b in self._intervals(first, last))


def _minutes(clock: str, entry: str) -> int:
    hours, minutes = (int(part) for part in clock.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"business hours entry {entry!r} has no such time as {clock}")
    return hours * 60 + minutes


@dataclass(frozen=True)
class Estimate:
    """What the customer is told: `minutes` while people answer, else when they are back."""

    open: bool
    minutes: Optional[int]
    opens_at: Optional[datetime]


def median_minutes(waits: Sequence[float], default_minutes: int) -> int:
    """The median of `waits` (seconds) in whole minutes, rounded up, at least 1; `default_minutes`
    when there are none yet."""
    if not waits:
        return max(default_minutes, 1)
    return max(math.ceil(statistics.median(waits) / 60), 1)


def estimate(hours: BusinessHours, waits: Sequence[float], default_minutes: int,
             now: Optional[datetime] = None) -> Estimate:
    """The wait to tell a customer handed off at `now`, from recent times to claim `waits`."""
    now = now or datetime.now(timezone.utc)
    if hours.is_open(now):
        return Estimate(True, median_minutes(waits, default_minutes), None)
    return Estimate(False, None, hours.next_opening(now))
