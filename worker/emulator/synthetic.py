"""Deterministic synthetic bars: the market the emulated providers serve.

For a ticker there is a minute bar for every minute from pre-market open to
after-hours close of each real XNYS session, except some deterministic gaps
(1% of regular-session minutes, 10% of extended-hours ones, 60% in the thin
first pre-market and last after-hours hour, so even 5-minute slots go empty).
Prices follow a random-walk-like path built from hashed value noise at several
scales (weeks down to five minutes), so any minute costs O(1) to compute and
the same (ticker, minute) always gives the same bar. A session costs ~8 ms; the
last 64 sessions' minutes and every daily bar are cached.

Aggregation lives here and only here, so tests can ask "what did the server
serve?": intraday buckets are clock-aligned from 00:00 New York and never cross
a session (sessions run 04:00-20:00, a multiple of every intraday timeframe);
d1 is the regular session at 00:00 New York of its date; w1 is the whole
week's sessions at 00:00 New York of its Monday. The bucket arithmetic is
written out here rather than borrowed from worker.providers.grid, so a grid bug
in the providers cannot hide behind an identical one in their test oracle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from worker.calendar import SessionHours, xnys_sessions

NEW_YORK = ZoneInfo("America/New_York")
TIMEFRAME_MINUTES: dict[str, int] = {"m1": 1, "m5": 5, "m15": 15, "m30": 30, "h1": 60, "h4": 240}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MINUTE = dt.timedelta(minutes=1)
# (knot spacing in minutes, amplitude of the log price). Amplitude grows like the
# square root of the spacing, as a random walk's spread does.
_NOISE_SCALES: tuple[tuple[int, float], ...] = (
    (40_320, 0.12),
    (10_080, 0.06),
    (1_440, 0.024),
    (240, 0.0095),
    (30, 0.0034),
    (5, 0.0014),
)
_FOUR_WORDS = struct.Struct(">4I")
_MISSING_REGULAR = 0.01
_MISSING_EXTENDED = 0.10
_MISSING_THIN = 0.60  # the first pre-market and the last after-hours hour trade thinly


@dataclass(frozen=True, slots=True)
class SyntheticBar:
    """A bar as the synthetic market has it; `minutes`/`sessions` count what it aggregates."""

    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    vwap: float
    trade_count: int
    minutes: int  # minute bars inside: Polygon's base aggregates for minute/hour spans
    sessions: int  # sessions inside: Polygon's base aggregates for day/week spans


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) determined by `parts`."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@lru_cache(maxsize=200_000)
def _knot(ticker: str, spacing: int, index: int) -> float:
    return 2.0 * _unit("knot", ticker, spacing, index) - 1.0


@lru_cache(maxsize=4096)
def base_price(ticker: str) -> float:
    return round(20.0 + 480.0 * _unit("price", ticker), 2)


@lru_cache(maxsize=4096)
def _base_volume(ticker: str) -> int:
    return 2_000 + int(40_000 * _unit("volume", ticker))


def price_at(ticker: str, minute: int) -> float:
    """The price at the start of `minute` (minutes since the Unix epoch)."""
    drift = 0.0
    for spacing, amplitude in _NOISE_SCALES:
        index, offset = divmod(minute, spacing)
        left = _knot(ticker, spacing, index)
        right = _knot(ticker, spacing, index + 1)
        drift += amplitude * (left + (right - left) * offset / spacing)
    return round(base_price(ticker) * math.exp(drift), 2)


def _prices(ticker: str, start: int, stop: int) -> list[float]:
    """`price_at` for every minute in [start, stop), sharing the knot lookups."""
    drifts = [0.0] * (stop - start)
    for spacing, amplitude in _NOISE_SCALES:
        first_knot = start // spacing
        knots = [_knot(ticker, spacing, k) for k in range(first_knot, (stop - 1) // spacing + 2)]
        for i in range(stop - start):
            index, offset = divmod(start + i, spacing)
            left = knots[index - first_knot]
            right = knots[index - first_knot + 1]
            drifts[i] += amplitude * (left + (right - left) * offset / spacing)
    base = base_price(ticker)
    return [round(base * math.exp(drift), 2) for drift in drifts]


@lru_cache(maxsize=64)
def _year_sessions(year: int) -> tuple[SessionHours, ...]:
    return tuple(xnys_sessions(dt.date(year, 1, 1), dt.date(year, 12, 31)))


def sessions(first: dt.date, last: dt.date) -> list[SessionHours]:
    """XNYS sessions with first <= session_date <= last."""
    found: list[SessionHours] = []
    for year in range(first.year, last.year + 1):
        found.extend(s for s in _year_sessions(year) if first <= s.session_date <= last)
    return found


@lru_cache(maxsize=64)
def _year_index(year: int) -> dict[dt.date, SessionHours]:
    return {s.session_date: s for s in _year_sessions(year)}


def session(day: dt.date) -> SessionHours | None:
    """The XNYS session on `day`, or None when the market is closed."""
    return _year_index(day.year).get(day)


def _minute_index(ts: dt.datetime) -> int:
    return (ts - _EPOCH) // _MINUTE


# ~300 kB per session: keep a working set, not years (daily bars are cached on their own).
@lru_cache(maxsize=64)
def _session_minutes(ticker: str, day: dt.date) -> tuple[SyntheticBar, ...]:
    hours = session(day)
    if hours is None:
        return ()
    first = _minute_index(hours.premarket_open)
    last = _minute_index(hours.after_hours_close)
    regular_first = _minute_index(hours.regular_open)
    regular_last = _minute_index(hours.regular_close)
    prices = _prices(ticker, first, last + 1)
    wick = base_price(ticker) * 0.0008
    volume_scale = float(_base_volume(ticker))
    blake2b, unpack = hashlib.blake2b, _FOUR_WORDS.unpack
    bars = []
    for offset, minute in enumerate(range(first, last)):
        if regular_first <= minute < regular_last:
            missing, size_scale = _MISSING_REGULAR, volume_scale
        elif minute < first + 60 or minute >= last - 60:
            missing, size_scale = _MISSING_THIN, volume_scale * 0.06
        else:
            missing, size_scale = _MISSING_EXTENDED, volume_scale * 0.06
        gap, up, down, size = unpack(blake2b(f"minute|{ticker}|{minute}".encode(), digest_size=16).digest())
        if gap < missing * 2**32:
            continue
        open_, close = prices[offset], prices[offset + 1]
        high = round(max(open_, close) + wick * up / 2**32, 2)
        low = max(round(min(open_, close) - wick * down / 2**32, 2), 0.01)
        volume = 1 + int(size_scale * (0.3 + size / 2**32))
        bars.append(
            SyntheticBar(
                _EPOCH + minute * _MINUTE,
                open_,
                high,
                low,
                close,
                volume,
                round((high + low + close) / 3, 4),
                max(1, volume // 60),
                1,
                1,
            )
        )
    return tuple(bars)


def minute_bars(ticker: str, day: dt.date, *, extended: bool = True) -> list[SyntheticBar]:
    """The minute bars of session `day` (only 09:30-close unless `extended`)."""
    bars = _session_minutes(ticker, day)
    hours = session(day)
    if extended or hours is None:
        return list(bars)
    return [b for b in bars if hours.regular_open <= b.ts < hours.regular_close]


def combine(ts: dt.datetime, parts: Sequence[SyntheticBar], *, sessions: int = 1) -> SyntheticBar:
    """One bar starting at `ts` from consecutive `parts` spanning `sessions` sessions."""
    volume = sum(p.volume for p in parts)
    return SyntheticBar(
        ts=ts,
        open=parts[0].open,
        high=max(p.high for p in parts),
        low=min(p.low for p in parts),
        close=parts[-1].close,
        volume=volume,
        vwap=round(sum(p.vwap * p.volume for p in parts) / volume, 4),
        trade_count=sum(p.trade_count for p in parts),
        minutes=sum(p.minutes for p in parts),
        sessions=sessions,
    )


def bucketed(
    parts: Iterable[SyntheticBar], bucket: Callable[[dt.datetime], dt.datetime]
) -> list[SyntheticBar]:
    """Bars combined by `bucket(ts)` (consecutive parts with the same key, one session)."""
    out: list[SyntheticBar] = []
    group: list[SyntheticBar] = []
    key: dt.datetime | None = None
    for part in parts:
        start = bucket(part.ts)
        if group and start != key:
            assert key is not None
            out.append(combine(key, group))
            group = []
        key = start
        group.append(part)
    if group:
        assert key is not None
        out.append(combine(key, group))
    return out


def new_york_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=NEW_YORK).astimezone(dt.UTC)


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def clock_bucket(minutes: int) -> Callable[[dt.datetime], dt.datetime]:
    """Bucket start `minutes` wide, counted from 00:00 New York of the bar's date."""

    def bucket(ts: dt.datetime) -> dt.datetime:
        local = ts.astimezone(NEW_YORK)
        since_midnight = local.hour * 60 + local.minute
        floored = local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(
            minutes=since_midnight - since_midnight % minutes
        )
        return floored.astimezone(dt.UTC)

    return bucket


@lru_cache(maxsize=65_536)
def daily_bar(ticker: str, day: dt.date) -> SyntheticBar | None:
    """The regular session of `day` as one bar at 00:00 New York (daily bars are regular hours)."""
    parts = minute_bars(ticker, day, extended=False)
    if not parts:
        return None
    return combine(new_york_midnight(day), parts)


def weekly_bar(ticker: str, monday: dt.date) -> SyntheticBar | None:
    """Every session of the week starting `monday`, at 00:00 New York of that Monday."""
    days = [
        bar
        for s in sessions(monday, monday + dt.timedelta(days=6))
        if (bar := daily_bar(ticker, s.session_date)) is not None
    ]
    if not days:
        return None
    return combine(new_york_midnight(monday), days, sessions=len(days))


def iter_bars(
    ticker: str,
    timeframe: str,
    first_session: dt.date,
    last_session: dt.date,
    *,
    extended: bool = True,
) -> Iterator[SyntheticBar]:
    """Every bar of `timeframe` for the sessions first..last, in time order, computed lazily.

    Intraday bars cover pre-market to after-hours when `extended`; d1 bars are
    the regular session; w1 bars are whole weeks (every session of each week
    that has a session in first..last, even ones outside that range).
    """
    days = [s.session_date for s in sessions(first_session, last_session)]
    if timeframe in TIMEFRAME_MINUTES:
        bucket = clock_bucket(TIMEFRAME_MINUTES[timeframe])
        for day in days:
            # Per session, so no bucket can ever join two sessions.
            yield from bucketed(minute_bars(ticker, day, extended=extended), bucket)
    elif timeframe == "d1":
        yield from (bar for day in days if (bar := daily_bar(ticker, day)) is not None)
    elif timeframe == "w1":
        mondays = sorted({monday_of(day) for day in days})
        yield from (bar for monday in mondays if (bar := weekly_bar(ticker, monday)) is not None)
    else:
        raise ValueError(f"unknown timeframe {timeframe!r}")


def bars(
    ticker: str,
    timeframe: str,
    first_session: dt.date,
    last_session: dt.date,
    *,
    extended: bool = True,
) -> list[SyntheticBar]:
    """`iter_bars` as a list."""
    return list(iter_bars(ticker, timeframe, first_session, last_session, extended=extended))
