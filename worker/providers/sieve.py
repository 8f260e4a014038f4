"""Turning a provider's parsed rows into grid bars: one sieve shared by every provider.

The checks (types, the grid, the chunk's sessions, price sanity, duplicates) are
the same whoever answered, so they live here once; each provider only says
where a row's fields are.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..providers.grid import (
    INTRADAY_MINUTES,
    is_on_grid,
    new_york_date,
    trading_week_monday,
)
from ..providers.types import Bar, FetchRequest, FetchResult, RawRow

__all__ = ["BarSieve"]

# Intraday timeframes that divide an hour: their grid check is plain UTC arithmetic.
_HOURLY_OR_FINER = {tf: m for tf, m in INTRADAY_MINUTES.items() if 60 % m == 0}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The largest trade count a float holds exactly: _check stores int(float(n)).
_EXACT_FLOAT_INT = 2**53


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _number(name: str, value: object) -> float:
    if value is None:
        raise _Reject(f"null {name}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"wrong type for {name}")
    number = float(value)
    if not math.isfinite(number):
        raise _Reject(f"non-finite {name}")
    return number


def _optional_number(name: str, value: object) -> float | None:
    return None if value is None else _number(name, value)


@dataclass(slots=True)
class BarSieve:
    """Checks parsed rows against the request and the grid; keeps bars, rejects the rest.

    Among valid rows the first of a timestamp wins; later ones are rejected as
    duplicates. Rows outside the chunk are rejected too (a live row for today,
    a bar past the requested end): the chunk owns only its own sessions.
    """

    request: FetchRequest
    bars: list[Bar] = field(default_factory=list, init=False)
    rejected: list[RawRow] = field(default_factory=list, init=False)
    # The latest bar start taken. While every bar is later than the one before
    # (providers answer in time order), no timestamp can repeat and `bars` is
    # sorted: the set of timestamps taken is only built at the first bar that
    # is not, and result() sorts only then.
    _latest: dt.datetime | None = field(default=None, init=False, repr=False)
    _seen: set[dt.datetime] | None = field(default=None, init=False, repr=False)
    _session_dates: frozenset[dt.date] | None = field(default=None, init=False, repr=False)
    _session_opens: list[dt.datetime] | None = field(default=None, init=False, repr=False)
    _session_closes: list[dt.datetime] = field(default_factory=list, init=False, repr=False)

    def reject(self, raw: Mapping[str, object], reason: str, ts: dt.datetime | None = None) -> None:
        self.rejected.append(RawRow(dict(raw), reason, ts))

    def row_epoch(self, row: object, key: str) -> tuple[Mapping[str, object], int] | None:
        """The row and its integer epoch field `key`, or None after rejecting the row."""
        if not isinstance(row, dict):
            self.reject({"row": row}, "not an object")
            return None
        stamp = row.get(key)
        if stamp is None:
            self.reject(row, f"null {key}")
            return None
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            self.reject(row, f"wrong type for {key}")
            return None
        return row, stamp

    def offer(
        self,
        raw: Mapping[str, object],
        ts: dt.datetime,
        *,
        open: object,
        high: object,
        low: object,
        close: object,
        volume: object,
        vwap: object = None,
        trade_count: object = None,
    ) -> None:
        try:
            bar = self._check(ts, open, high, low, close, volume, vwap, trade_count)
        except _Reject as rejection:
            self.reject(raw, rejection.reason, ts)
            return
        latest = self._latest
        if latest is not None and bar.ts <= latest:
            seen = self._seen
            if seen is None:
                seen = self._seen = {b.ts for b in self.bars}
            if bar.ts in seen:
                self.reject(raw, "duplicate timestamp", ts)
                return
            seen.add(bar.ts)
        else:
            self._latest = bar.ts
            if self._seen is not None:
                self._seen.add(bar.ts)
        self.bars.append(bar)

    def offer_epoch_rows(
        self,
        rows: Iterable[object],
        offer_one: Callable[[object], None],
        *,
        stamp: str,
        unit: dt.timedelta,
        fields: tuple[str, str, str, str, str, str, str],
    ) -> None:
        """Offer a page of rows: `offer_one(row)` is the provider's own per-row path.

        Rows are dicts with an integer epoch `stamp` in `unit`s and the fields open,
        high, low, close, volume, vwap and trade_count under the names `fields`. For
        timeframes that divide an hour, the common row (float prices, an int or
        float volume, a float or null vwap, an int or null trade count, on the
        grid, inside a session, later than the bar before, every check passed) is
        taken here in one step; any other row, and every row of other timeframes,
        goes through `offer_one`, which takes or rejects it with its reason. So the
        bars, the rejects and their order are those of `offer_one` alone.
        """
        minutes = _HOURLY_OR_FINER.get(self.request.timeframe)
        if minutes is None:
            for row in rows:
                offer_one(row)
            return
        grid, remainder = divmod(dt.timedelta(minutes=minutes), unit)
        if remainder:
            raise ValueError(f"a {unit} stamp unit does not divide {self.request.timeframe}")
        k_open, k_high, k_low, k_close, k_volume, k_vwap, k_count = fields
        opens, closes = self._sessions()
        start, end = self.request.start, self.request.end
        isfinite, bar_of, append = math.isfinite, Bar, self.bars.append
        latest = self._latest
        session_open = session_close = _EPOCH  # the session of the row before (none yet: empty)
        for row in rows:
            if type(row) is dict:
                at = row.get(stamp)
                o, h, lo, c = row.get(k_open), row.get(k_high), row.get(k_low), row.get(k_close)
                v, vw, n = row.get(k_volume), row.get(k_vwap), row.get(k_count)
                if (
                    type(at) is int
                    and not at % grid
                    and type(o) is float
                    and type(h) is float
                    and type(lo) is float
                    and type(c) is float
                    and isfinite(o + h + lo + c)
                    and 0 < lo <= o <= h
                    and lo <= c <= h
                    and (type(v) is int or (type(v) is float and isfinite(v) and v.is_integer()))
                    and 0 <= v <= _EXACT_FLOAT_INT
                    and (vw is None or (type(vw) is float and isfinite(vw) and vw > 0))
                    and (n is None or (type(n) is int and 0 <= n <= _EXACT_FLOAT_INT))
                ):
                    ts = _EPOCH + unit * at
                    if (latest is None or ts > latest) and start <= ts < end:
                        if not session_open <= ts < session_close:
                            k = bisect.bisect_right(opens, ts) - 1
                            if k >= 0:
                                session_open, session_close = opens[k], closes[k]
                        if session_open <= ts < session_close:
                            append(bar_of(ts, o, h, lo, c, float(v), vw, n))
                            latest = self._latest = ts
                            if self._seen is not None:
                                self._seen.add(ts)
                            continue
            offer_one(row)
            latest = self._latest

    def result(self, provider: str, requests: int) -> FetchResult:
        bars = self.bars if self._seen is None else sorted(self.bars, key=lambda b: b.ts)
        return FetchResult(provider, bars, self.rejected, requests)

    def _check(
        self,
        ts: dt.datetime,
        open_: object,
        high_: object,
        low_: object,
        close_: object,
        volume_: object,
        vwap_: object,
        trade_count_: object,
    ) -> Bar:
        # The common row (floats, an int volume, finite values) is taken as it is;
        # anything else goes through the checks that name what is wrong.
        if (
            type(open_) is float
            and type(high_) is float
            and type(low_) is float
            and type(close_) is float
            and math.isfinite(open_ + high_ + low_ + close_)
        ):
            open, high, low, close = open_, high_, low_, close_
        else:
            open = _number("open", open_)
            high = _number("high", high_)
            low = _number("low", low_)
            close = _number("close", close_)
        volume = float(volume_) if type(volume_) is int else _number("volume", volume_)
        vwap = vwap_ if type(vwap_) is float and math.isfinite(vwap_) else _optional_number("vwap", vwap_)
        count = (
            float(trade_count_)
            if type(trade_count_) is int
            else _optional_number("trade_count", trade_count_)
        )
        minutes = _HOURLY_OR_FINER.get(self.request.timeframe)
        if minutes is not None and ts.utcoffset() == dt.timedelta(0):
            # New York's offset from UTC is whole hours, so for timeframes that divide
            # an hour the New York grid is the UTC minute grid.
            if ts.second or ts.microsecond or ts.minute % minutes:
                raise _Reject("off grid")
            self._check_inside_sessions(ts)
        else:
            if not is_on_grid(ts, self.request.timeframe):
                raise _Reject("off grid")
            self._check_inside_chunk(ts)
        if min(open, high, low, close) <= 0:
            raise _Reject("non-positive price")
        if high < low:
            raise _Reject("high below low")
        if high < max(open, close) or low > min(open, close):
            raise _Reject("open or close outside high..low")
        if volume < 0:
            raise _Reject("negative volume")
        # Volumes and counts are stored as bigint through a float8 staging column:
        # only whole numbers up to 2**53 pass unchanged, anything else is lossy.
        if volume > _EXACT_FLOAT_INT:
            raise _Reject("volume out of range")
        if not volume.is_integer():
            raise _Reject("fractional volume")
        if vwap is not None and vwap <= 0:
            raise _Reject("non-positive vwap")
        if count is not None and (count < 0 or not count.is_integer()):
            raise _Reject("invalid trade_count")
        if count is not None and count > _EXACT_FLOAT_INT:
            raise _Reject("trade_count out of range")
        return Bar(ts, open, high, low, close, volume, vwap, None if count is None else int(count))

    def _check_inside_sessions(self, ts: dt.datetime) -> None:
        """An intraday bar starts inside the chunk and inside one of its sessions'
        extended hours (04:00 to 20:00 New York, 17:00 on early closes)."""
        if not self.request.start <= ts < self.request.end:
            raise _Reject("outside chunk")
        opens, closes = self._sessions()
        at = bisect.bisect_right(opens, ts) - 1
        if at < 0 or ts >= closes[at]:
            raise _Reject("outside session hours")

    def _sessions(self) -> tuple[list[dt.datetime], list[dt.datetime]]:
        """Pre-market opens and after-hours closes of the chunk's sessions, in order."""
        if self._session_opens is None:
            hours = self.request.sessions_inside()
            self._session_opens = [s.premarket_open for s in hours]
            self._session_closes = [s.after_hours_close for s in hours]
        return self._session_opens, self._session_closes

    def _check_inside_chunk(self, ts: dt.datetime) -> None:
        request = self.request
        if request.timeframe in INTRADAY_MINUTES:
            self._check_inside_sessions(ts)
            return
        day = new_york_date(ts)
        if request.timeframe == "w1":
            first = trading_week_monday(request.first_session)
            if not first <= day <= trading_week_monday(request.last_session):
                raise _Reject("outside chunk")
            return
        if not request.first_session <= day <= request.last_session:
            raise _Reject("outside chunk")
        if self._session_dates is None:
            self._session_dates = frozenset(s.session_date for s in request.sessions_inside())
        if day not in self._session_dates:
            raise _Reject("not a session")
