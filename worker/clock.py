"""The planning clock: the one "now" of pgbars, in Python and in SQL.

What is "today", which session is trading, which sessions have closed: every
such decision reads this clock, so that a test, a replay or a demo can state
the instant it means. PGBARS_NOW (an ISO 8601 instant with its offset, e.g.
`2026-12-02T10:30:00-05:00`, or a date and time followed by a time zone name,
e.g. `2026-12-02 10:30 America/New_York`) sets it for Python and, through
`session_options()`, as `pgbars.now` in every database session pgbars opens,
so SQL's `pgbars._now()` agrees. Unset, it is the wall clock.

Elapsed time is not planning: leases, backoff, the rate-limit ledger and the
run's budget use the real clock (SQL's now(), Python's monotonic clock), which
an override must not stop.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ClockError

ENV = "PGBARS_NOW"
NEW_YORK = ZoneInfo("America/New_York")
_ZONED = re.compile(
    r"^(?P<local>\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)\s+(?P<zone>[A-Za-z_]+/[A-Za-z_/+-]+)$"
)


def parse_instant(text: str) -> dt.datetime:
    """An aware datetime from `2026-12-02T10:30:00-05:00` or `2026-12-02 10:30 America/New_York`."""
    value = text.strip()
    zoned = _ZONED.match(value)
    try:
        if zoned:
            local = dt.datetime.fromisoformat(zoned["local"])
            return local.replace(tzinfo=ZoneInfo(zoned["zone"]))
        instant = dt.datetime.fromisoformat(value)
    except (ValueError, ZoneInfoNotFoundError, KeyError):
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ClockError(
            f"{ENV}={text!r} is not an instant: give an ISO 8601 time with its offset"
            " (2026-12-02T10:30:00-05:00) or a time and a zone (2026-12-02 10:30 America/New_York)"
        )
    return instant


def override() -> dt.datetime | None:
    """The instant PGBARS_NOW sets, in UTC; None when it is unset or empty."""
    text = os.environ.get(ENV, "").strip()
    return parse_instant(text).astimezone(dt.UTC) if text else None


def now() -> dt.datetime:
    """The planning clock's now, aware, in UTC."""
    return override() or dt.datetime.now(dt.UTC)


def today_new_york() -> dt.date:
    """The date in New York at the planning clock's now (session dates are New York dates)."""
    return now().astimezone(NEW_YORK).date()


def session_options() -> str | None:
    """libpq `options` that set pgbars.now in a new session to PGBARS_NOW, or None when unset."""
    instant = override()
    if instant is None:
        return None
    return f"-c pgbars.now={instant.isoformat()}"
