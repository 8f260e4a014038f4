"""The XNYS trading calendar, as pgbars stores it in `pgbars.market_sessions`.

exchange_calendars knows the regular sessions (holidays, early closes, unscheduled
closures). Providers also serve extended hours, so each session here spans
pre-market (04:00 New York) to after-hours close (20:00 New York, or 17:00 on
early-close days). All times are computed in America/New_York and returned as
aware UTC datetimes; never with fixed offsets, so DST is handled by the zone data.
"""

from __future__ import annotations

import datetime as dt
import threading
import warnings
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import exchange_calendars

from . import clock

NEW_YORK = ZoneInfo("America/New_York")
# warnings.catch_warnings() swaps process-wide state: two threads inside it at
# once (the emulators' handler threads) can restore each other's filters.
_WARNINGS_LOCK = threading.Lock()
CALENDAR_START = dt.date(2000, 1, 1)
PREMARKET_OPEN = dt.time(4, 0)
AFTER_HOURS_CLOSE = dt.time(20, 0)
EARLY_CLOSE_AFTER_HOURS_CLOSE = dt.time(17, 0)
REGULAR_CLOSE = dt.time(16, 0)


@dataclass(frozen=True, slots=True)
class SessionHours:
    """One XNYS session with its extended hours, all aware UTC datetimes."""

    session_date: dt.date
    premarket_open: dt.datetime
    regular_open: dt.datetime
    regular_close: dt.datetime
    after_hours_close: dt.datetime

    @property
    def is_early_close(self) -> bool:
        return self.regular_close.astimezone(NEW_YORK).time() < REGULAR_CLOSE


def _at_new_york(day: dt.date, wall: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, wall, tzinfo=NEW_YORK).astimezone(dt.UTC)


def calendar_end(today: dt.date | None = None) -> dt.date:
    """The last date pgbars keeps sessions for: the end of next year."""
    today = today or clock.today_new_york()
    return dt.date(today.year + 1, 12, 31)


def xnys_sessions(start: dt.date, end: dt.date) -> list[SessionHours]:
    """Every XNYS session from `start` through `end`, inclusive."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        # exchange_calendars' own pandas calls emit deprecation warnings that
        # are theirs to fix and say nothing about how pgbars uses the calendar.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # the calendar needs start < end; the extra day is sliced off below
        try:
            calendar = exchange_calendars.get_calendar(
                "XNYS", start=start.isoformat(), end=(end + dt.timedelta(days=1)).isoformat()
            )
        except exchange_calendars.errors.NoSessionsError:
            # A range of holidays and weekends only (the calendar refuses to exist):
            # e.g. extending through 31 December when the year's last session was the 29th.
            return []
        schedule = calendar.schedule.loc[start.isoformat() : end.isoformat()]
        rows = [
            (label.date(), opens.to_pydatetime(), closes.to_pydatetime())
            for label, opens, closes in zip(schedule.index, schedule["open"], schedule["close"], strict=True)
        ]
    sessions = []
    for day, opens, closes in rows:
        regular_close = closes.astimezone(dt.UTC)
        early = regular_close.astimezone(NEW_YORK).time() < REGULAR_CLOSE
        sessions.append(
            SessionHours(
                session_date=day,
                premarket_open=_at_new_york(day, PREMARKET_OPEN),
                regular_open=opens.astimezone(dt.UTC),
                regular_close=regular_close,
                after_hours_close=_at_new_york(
                    day, EARLY_CLOSE_AFTER_HOURS_CLOSE if early else AFTER_HOURS_CLOSE
                ),
            )
        )
    return sessions
