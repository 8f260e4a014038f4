"""The pgbars bar grid: where a bar of each timeframe starts, whatever the provider.

Intraday bars start on multiples of the timeframe counted from 00:00 New York
wall-clock time, d1 bars at 00:00 New York of the session date and w1 bars at
00:00 New York of the week's Monday. Every conversion goes through the
America/New_York zone, never a fixed offset, so DST is the zone data's business.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from ..calendar import NEW_YORK, SessionHours, xnys_sessions

TIMEFRAMES: tuple[str, ...] = ("m1", "m5", "m15", "m30", "h1", "h4", "d1", "w1")
INTRADAY_MINUTES: dict[str, int] = {"m1": 1, "m5": 5, "m15": 15, "m30": 30, "h1": 60, "h4": 240}

__all__ = [
    "INTRADAY_MINUTES",
    "NEW_YORK",
    "TIMEFRAMES",
    "day_start",
    "is_intraday",
    "is_on_grid",
    "new_york_date",
    "sessions_between",
    "trading_week_monday",
]


def is_intraday(timeframe: str) -> bool:
    return timeframe in INTRADAY_MINUTES


def day_start(day: dt.date) -> dt.datetime:
    """00:00 New York of `day`, as aware UTC: the d1 (and, on a Monday, w1) bar start."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=NEW_YORK).astimezone(dt.UTC)


def new_york_date(ts: dt.datetime) -> dt.date:
    return ts.astimezone(NEW_YORK).date()


def trading_week_monday(day: dt.date) -> dt.date:
    """The Monday of the trading week `day` belongs to.

    Saturday and Sunday count towards the following week: Polygon starts its
    weekly bars on Sunday, and that bar covers the Monday..Friday after it.
    """
    weekday = day.weekday()
    if weekday >= 5:
        return day + dt.timedelta(days=7 - weekday)
    return day - dt.timedelta(days=weekday)


def is_on_grid(ts: dt.datetime, timeframe: str) -> bool:
    """Whether `ts` is a valid bar start for `timeframe` on the pgbars grid."""
    local = ts.astimezone(NEW_YORK)
    if timeframe in INTRADAY_MINUTES:
        if local.second or local.microsecond:
            return False
        return (local.hour * 60 + local.minute) % INTRADAY_MINUTES[timeframe] == 0
    if timeframe == "d1":
        return ts == day_start(local.date())
    if timeframe == "w1":
        return local.date().weekday() == 0 and ts == day_start(local.date())
    raise ValueError(f"unknown timeframe {timeframe!r}")


@lru_cache(maxsize=64)
def _year_sessions(year: int) -> tuple[SessionHours, ...]:
    # exchange_calendars takes ~0.15 s per call; a year at a time keeps lookups cheap.
    return tuple(xnys_sessions(dt.date(year, 1, 1), dt.date(year, 12, 31)))


def sessions_between(first: dt.date, last: dt.date) -> list[SessionHours]:
    """XNYS sessions with `first <= session_date <= last` (cached per calendar year)."""
    sessions: list[SessionHours] = []
    for year in range(first.year, last.year + 1):
        sessions.extend(s for s in _year_sessions(year) if first <= s.session_date <= last)
    return sessions
