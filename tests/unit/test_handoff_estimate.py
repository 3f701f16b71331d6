"""Business hours and the wait a handed-off customer is told (supportbot/handoff/estimate.py,
waiting.py, messages.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo

from supportbot.handoff import messages
from supportbot.handoff.estimate import BusinessHours, estimate, median_minutes

BERLIN = ZoneInfo("Europe/Berlin")
HOURS = BusinessHours.parse("Mon-Fri 08:00-20:00, Sat 09:00-14:00", "Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize("moment, open_", [
    (berlin(2026, 12, 7, 8, 0), True),     # Monday, opening minute
    (berlin(2026, 12, 7, 7, 59), False),
    (berlin(2026, 12, 7, 19, 59), True),
    (berlin(2026, 12, 7, 20, 0), False),   # closing minute: closed
    (berlin(2026, 12, 12, 13, 30), True),  # Saturday
    (berlin(2026, 12, 12, 14, 0), False),
    (berlin(2026, 12, 13, 12, 0), False),  # Sunday
])
def test_open_and_closed(moment, open_):
    assert HOURS.is_open(moment) is open_
    assert HOURS.is_open(moment.astimezone(timezone.utc)) is open_  # any zone in, same answer


def test_next_opening_skips_the_closed_days():
    saturday_afternoon, monday_morning = berlin(2026, 12, 12, 15, 0), berlin(2026, 12, 14, 8, 0)
    assert HOURS.next_opening(saturday_afternoon) == monday_morning
    assert HOURS.next_opening(berlin(2026, 12, 7, 21, 0)) == berlin(2026, 12, 8, 8, 0)
    now = berlin(2026, 12, 7, 10, 0)
    assert HOURS.next_opening(now) == now


def test_open_seconds_count_only_business_time():
    friday_evening, monday_morning = berlin(2026, 12, 11, 19, 30), berlin(2026, 12, 14, 8, 30)
    # 30 min on Friday, 5 h on Saturday, 30 min on Monday
    assert HOURS.open_seconds(friday_evening, monday_morning) == (30 + 5 * 60 + 30) * 60
    assert HOURS.open_seconds(monday_morning, friday_evening) == 0


def test_open_seconds_across_a_daylight_saving_change():
    always = BusinessHours.parse("Mon-Sun 00:00-24:00", "Europe/Berlin")
    # 2026-03-29: clocks go from 02:00 to 03:00 in Berlin, the day has 23 hours
    start, end = berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0)
    assert always.open_seconds(start, end) == 23 * 3600
    assert always.is_open(berlin(2026, 3, 29, 12, 0))


def test_a_range_over_the_week_end_and_semicolons():
    hours = BusinessHours.parse("Fri-Mon 10:00-12:00; wed 14:00-15:00", "UTC")
    assert sorted(hours.windows) == [0, 2, 4, 5, 6]


@pytest.mark.parametrize("spec, zone, problem", [
    ("", "UTC", "empty"),
    ("Mon-Fri", "UTC", "not like"),
    ("Mon-Fri 9-17", "UTC", "not like"),
    ("Funday 08:00-10:00", "UTC", "not like"),
    ("Mon 10:00-09:00", "UTC", "closes before it opens"),
    ("Mon 08:00-25:00", "UTC", "no such time"),
    ("Mon 08:00-12:00", "Mars/Olympus", "unknown time zone"),
])
def test_bad_hours_are_refused_with_the_reason(spec, zone, problem):
    with pytest.raises(ValueError, match=problem):
        BusinessHours.parse(spec, zone)


def test_bad_hours_in_the_environment_name_the_variables():
    with pytest.raises(ValueError, match="SUPPORTBOT_BUSINESS_HOURS"):
        BusinessHours.from_env({"SUPPORTBOT_BUSINESS_HOURS": "whenever"})
    assert BusinessHours.from_env({}).zone.key == "Europe/Berlin"


def test_the_estimate_is_the_median_rounded_up():
    assert median_minutes([], default_minutes=10) == 10
    assert median_minutes([30, 60 * 60, 130], default_minutes=10) == 3  # median 130 s -> 3 min
    assert median_minutes([5, 10], default_minutes=10) == 1  # never "about 0 min"


def test_open_tells_minutes_closed_tells_when_back():
    during = estimate(HOURS, [240, 300, 600], 10, now=berlin(2026, 12, 7, 9, 0))
    assert during.open and during.minutes == 5 and during.opens_at is None
    night = estimate(HOURS, [240], 10, now=berlin(2026, 12, 12, 22, 0))
    assert not night.open and night.minutes is None and night.opens_at == berlin(2026, 12, 14, 8, 0)
    assert "about 5 min" in messages.waiting(during, HOURS, "H-1", verified=True)
    offline = messages.waiting(night, HOURS, "H-ABC", verified=False)
    assert "Monday 08:00 (Europe/Berlin time)" in offline and "H-ABC" in offline
    assert "leave your email address" in offline
    assert "address on your account" in messages.waiting(night, HOURS, "H-ABC", verified=True)


def test_timeout_moments_are_whole_business_seconds():
    start = berlin(2026, 12, 7, 19, 50)
    assert HOURS.open_seconds(start, start + timedelta(hours=13)) == 10 * 60 + 50 * 60  # 10 min + Tue 08:00-08:50
