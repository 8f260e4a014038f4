"""Deterministic synthetic bars: the market the emulated providers serve.

For a ticker there is a minute bar for every minute from pre-market open to
after-hours close of each real XNYS session, except some deterministic gaps
(1% of regular-session minutes, 10% of extended-hours ones, 60% in the thin
first pre-market and last after-hours hour, so even 5-minute slots go empty).
Prices follow a random-walk-like path built from hashed value noise at several
scales (weeks down to five minutes), so any minute costs O(1) to compute and
the same (ticker, minute) always gives the same bar. That path is continuous
(on the share basis after every split in `actions`), but bars here are as
traded: a session's minute prices are the path times `actions.raw_factor` and
its volumes are divided by it, so raw bars jump at a split (tickers without
splits trade on the path itself). `adjusted_bars` is the split-adjusted view
the providers serve. A session's minutes are
computed as numpy arrays and intraday aggregates are reduced from them
directly (under a millisecond per session); the last 256 sessions' arrays
and every daily bar are cached.

Why over 400 lines: one market model, whose noise, minute arrays and
aggregations into every timeframe must agree bar for bar; split, each part
would reach into the others' arrays.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ..calendar import SessionHours, xnys_sessions
from ..emulator import actions

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


@dataclass(frozen=True, slots=True)
class AdjustedBar:
    """A bar split-adjusted as of some date: a SyntheticBar whose volume may be fractional
    (raw shares times a ratio such as 3:2); adjusted prices and vwap have 4 decimals."""

    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trade_count: int
    minutes: int
    sessions: int


AnyBar = TypeVar("AnyBar", SyntheticBar, AdjustedBar)


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) determined by `parts`."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@lru_cache(maxsize=4096)
def base_price(ticker: str) -> float:
    return round(20.0 + 480.0 * _unit("price", ticker), 2)


@lru_cache(maxsize=4096)
def _base_volume(ticker: str) -> int:
    return 2_000 + int(40_000 * _unit("volume", ticker))


def price_at(ticker: str, minute: int) -> float:
    """The continuous price at the start of `minute` (minutes since the Unix epoch); a
    minute bar's as-traded price is this times `actions.raw_factor` of its session."""
    return float(_prices(ticker, minute, minute + 1)[0])


def _prices(ticker: str, start: int, stop: int) -> npt.NDArray[np.float64]:
    """`price_at` for every minute in [start, stop): interpolated knots, one array op per scale."""
    minutes = np.arange(start, stop, dtype=np.int64)
    drift = np.zeros(stop - start)
    for spacing, amplitude in _NOISE_SCALES:
        first_knot = start // spacing
        knots = _knots(ticker, spacing, first_knot, (stop - 1) // spacing + 2)
        index, offset = np.divmod(minutes, spacing)
        left = knots[index - first_knot]
        right = knots[index - first_knot + 1]
        drift += amplitude * (left + (right - left) * offset / spacing)
    return np.round(base_price(ticker) * np.exp(drift), 2)


def _mix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a well-spread 64-bit hash of each value (wrapping arithmetic)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@lru_cache(maxsize=4096)
def _ticker_seed(ticker: str, purpose: str = "minute") -> int:
    return int.from_bytes(hashlib.blake2b(f"{purpose}|{ticker}".encode(), digest_size=8).digest(), "big")


def _knots(ticker: str, spacing: int, first: int, stop: int) -> npt.NDArray[np.float64]:
    """The value noise's knots first..stop-1 at `spacing`: uniform in [-1, 1), fixed per ticker."""
    seed = np.uint64(_ticker_seed(ticker, f"knot|{spacing}"))
    hashed = _mix64(np.arange(first, stop, dtype=np.int64).astype(np.uint64) ^ seed)
    return (hashed >> np.uint64(11)).astype(np.float64) / 2.0**53 * 2.0 - 1.0


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


@dataclass(frozen=True, slots=True)
class _Minutes:
    """One session's minute bars as columns (only the minutes that traded)."""

    minute: npt.NDArray[np.int64]  # minutes since the Unix epoch
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.int64]
    vwap: npt.NDArray[np.float64]
    trade_count: npt.NDArray[np.int64]
    local_offset: int  # add to `minute` for New York minutes since the Unix epoch (constant in a session)


@lru_cache(maxsize=256)
def _session_arrays(ticker: str, day: dt.date) -> _Minutes | None:
    hours = session(day)
    if hours is None:
        return None
    first = _minute_index(hours.premarket_open)
    last = _minute_index(hours.after_hours_close)
    regular_first = _minute_index(hours.regular_open)
    regular_last = _minute_index(hours.regular_close)
    minutes = np.arange(first, last, dtype=np.int64)
    prices = _prices(ticker, first, last + 1)

    regular = (minutes >= regular_first) & (minutes < regular_last)
    thin = ~regular & ((minutes < first + 60) | (minutes >= last - 60))
    missing = np.where(regular, _MISSING_REGULAR, np.where(thin, _MISSING_THIN, _MISSING_EXTENDED))
    volume_scale = float(_base_volume(ticker))
    size_scale = np.where(regular, volume_scale, volume_scale * 0.06)

    seed = np.uint64(_ticker_seed(ticker))
    first_hash = _mix64(minutes.astype(np.uint64) ^ seed)
    second_hash = _mix64(first_hash)
    low_word, high_word = np.uint64(0xFFFFFFFF), np.uint64(32)
    gap = (first_hash >> high_word).astype(np.float64)
    up = (first_hash & low_word).astype(np.float64)
    down = (second_hash >> high_word).astype(np.float64)
    size = (second_hash & low_word).astype(np.float64)

    keep = gap >= missing * 2**32
    open_, close = prices[:-1][keep], prices[1:][keep]
    wick = base_price(ticker) * 0.0008
    high = np.round(np.maximum(open_, close) + wick * up[keep] / 2**32, 2)
    low = np.maximum(np.round(np.minimum(open_, close) - wick * down[keep] / 2**32, 2), 0.01)
    volume = 1 + np.floor(size_scale[keep] * (0.3 + size[keep] / 2**32)).astype(np.int64)
    trade_count = np.maximum(1, volume // 60)  # trades, not shares: a split leaves them be
    factor = actions.raw_factor(ticker, day)
    if factor != 1.0:  # as traded before a later split; untouched otherwise, to the bit
        open_, close, high = (np.round(a * factor, 2) for a in (open_, close, high))
        low = np.maximum(np.round(low * factor, 2), 0.01)
        volume = np.maximum(1, np.rint(volume / factor)).astype(np.int64)
    local = hours.premarket_open.astimezone(NEW_YORK)
    local_offset = int(local.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    return _Minutes(
        minute=minutes[keep],
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        vwap=np.round((high + low + close) / 3, 4),
        trade_count=trade_count,
        local_offset=local_offset,
    )


def _bars_of(
    ts_minutes: list[int],
    opens: list[float],
    highs: list[float],
    lows: list[float],
    closes: list[float],
    volumes: list[int],
    vwaps: list[float],
    trade_counts: list[int],
    widths: list[int],
) -> list[SyntheticBar]:
    return [
        SyntheticBar(_EPOCH + minute * _MINUTE, o, h, lo, c, v, vw, n, width, 1)
        for minute, o, h, lo, c, v, vw, n, width in zip(
            ts_minutes, opens, highs, lows, closes, volumes, vwaps, trade_counts, widths, strict=True
        )
    ]


@lru_cache(maxsize=64)
def _session_minutes(ticker: str, day: dt.date) -> tuple[SyntheticBar, ...]:
    m = _session_arrays(ticker, day)
    if m is None:
        return ()
    return tuple(
        _bars_of(
            m.minute.tolist(),
            m.open.tolist(),
            m.high.tolist(),
            m.low.tolist(),
            m.close.tolist(),
            m.volume.tolist(),
            m.vwap.tolist(),
            m.trade_count.tolist(),
            [1] * len(m.minute),
        )
    )


def _session_aggregates(ticker: str, day: dt.date, width: int) -> list[SyntheticBar]:
    """The session's bars `width` minutes wide, clock-aligned from 00:00 New York."""
    m = _session_arrays(ticker, day)
    if m is None or len(m.minute) == 0:
        return []
    local = m.minute + m.local_offset
    bucket = m.minute - local % width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bucket)]
    volume = np.add.reduceat(m.volume, starts)
    weighted = np.add.reduceat(m.vwap * m.volume, starts)
    return _bars_of(
        bucket[starts].tolist(),
        m.open[starts].tolist(),
        np.maximum.reduceat(m.high, starts).tolist(),
        np.minimum.reduceat(m.low, starts).tolist(),
        m.close[ends - 1].tolist(),
        volume.tolist(),
        np.round(weighted / volume, 4).tolist(),
        np.add.reduceat(m.trade_count, starts).tolist(),
        (ends - starts).tolist(),
    )


def minute_bars(ticker: str, day: dt.date, *, extended: bool = True) -> list[SyntheticBar]:
    """The minute bars of session `day` (only 09:30-close unless `extended`)."""
    bars = _session_minutes(ticker, day)
    hours = session(day)
    if extended or hours is None:
        return list(bars)
    return [b for b in bars if hours.regular_open <= b.ts < hours.regular_close]


def combine(ts: dt.datetime, parts: Sequence[AnyBar], *, sessions: int = 1) -> AnyBar:
    """One bar starting at `ts` from consecutive `parts` spanning `sessions` sessions."""
    volume = sum(p.volume for p in parts)
    return type(parts[0])(
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


def bucketed(parts: Iterable[AnyBar], bucket: Callable[[dt.datetime], dt.datetime]) -> list[AnyBar]:
    """Bars combined by `bucket(ts)` (consecutive parts with the same key, one session)."""
    out: list[AnyBar] = []
    group: list[AnyBar] = []
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
    m, hours = _session_arrays(ticker, day), session(day)
    if m is None or hours is None:
        return None
    regular = (m.minute >= _minute_index(hours.regular_open)) & (
        m.minute < _minute_index(hours.regular_close)
    )
    if not regular.any():
        return None
    volume = m.volume[regular]
    total = int(volume.sum())
    return SyntheticBar(
        ts=new_york_midnight(day),
        open=float(m.open[regular][0]),
        high=float(m.high[regular].max()),
        low=float(m.low[regular].min()),
        close=float(m.close[regular][-1]),
        volume=total,
        vwap=round(float((m.vwap[regular] * volume).sum()) / total, 4),
        trade_count=int(m.trade_count[regular].sum()),
        minutes=int(regular.sum()),
        sessions=1,
    )


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
    if timeframe in TIMEFRAME_MINUTES and extended:
        for day in days:
            # Per session, so no bucket can ever join two sessions.
            if timeframe == "m1":
                yield from _session_minutes(ticker, day)
            else:
                yield from _session_aggregates(ticker, day, TIMEFRAME_MINUTES[timeframe])
    elif timeframe in TIMEFRAME_MINUTES:
        bucket = clock_bucket(TIMEFRAME_MINUTES[timeframe])
        for day in days:
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


def adjust(ticker: str, bar: SyntheticBar, as_of: dt.date) -> AdjustedBar:
    """A raw bar of one session split-adjusted as of `as_of`: prices and vwap times
    `actions.split_adjustment` of its session, volume divided by it (not for w1 bars)."""
    day = bar.ts.astimezone(NEW_YORK).date()
    factor = actions.split_adjustment(ticker, day, as_of)
    if factor == 1.0:
        return AdjustedBar(
            bar.ts,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.vwap,
            bar.trade_count,
            bar.minutes,
            bar.sessions,
        )
    volume = round(bar.volume / factor, 4)
    return AdjustedBar(
        ts=bar.ts,
        open=round(bar.open * factor, 4),
        high=round(bar.high * factor, 4),
        low=round(bar.low * factor, 4),
        close=round(bar.close * factor, 4),
        volume=int(volume) if volume.is_integer() else volume,
        vwap=round(bar.vwap * factor, 4),
        trade_count=bar.trade_count,
        minutes=bar.minutes,
        sessions=bar.sessions,
    )


def iter_adjusted_bars(
    ticker: str,
    timeframe: str,
    first_session: dt.date,
    last_session: dt.date,
    *,
    as_of: dt.date,
    extended: bool = True,
) -> Iterator[AdjustedBar]:
    """`iter_bars` split-adjusted as of `as_of` (Polygon's adjusted=true on that date):
    each bar of a session times that session's adjustment; a w1 bar combines its
    week's adjusted d1 bars (a week may straddle a split)."""
    if timeframe != "w1":
        for bar in iter_bars(ticker, timeframe, first_session, last_session, extended=extended):
            yield adjust(ticker, bar, as_of)
        return
    days = [s.session_date for s in sessions(first_session, last_session)]
    for monday in sorted({monday_of(day) for day in days}):
        week = [
            adjust(ticker, day_bar, as_of)
            for s in sessions(monday, monday + dt.timedelta(days=6))
            if (day_bar := daily_bar(ticker, s.session_date)) is not None
        ]
        if week:
            yield combine(new_york_midnight(monday), week, sessions=len(week))


def adjusted_bars(
    ticker: str,
    timeframe: str,
    first_session: dt.date,
    last_session: dt.date,
    *,
    as_of: dt.date,
    extended: bool = True,
) -> list[AdjustedBar]:
    """What Polygon serves with adjusted=true on `as_of` (`iter_adjusted_bars` as a list)."""
    return list(
        iter_adjusted_bars(ticker, timeframe, first_session, last_session, as_of=as_of, extended=extended)
    )
