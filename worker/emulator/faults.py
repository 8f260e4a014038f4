"""Faults the emulated providers can be told to produce, and the invalid bars they inject."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal

from ..emulator.synthetic import AdjustedBar, SyntheticBar

FaultKind = Literal[
    # answered the same way by every server
    "rate_limited",  # HTTP 429, with Retry-After when given
    "server_error",  # HTTP 5xx with the provider's error body
    "slow",  # the normal answer after `delay` seconds
    "truncated",  # the normal answer cut in half, connection closed mid-body
    "malformed_json",  # a complete answer whose JSON is cut in half
    "reset",  # the connection closed without any answer
    # answered in each provider's own words
    "null_results",  # Polygon results null, Yahoo result null, Tradier series/history null
    "provider_error",  # an error inside a 200: Polygon status ERROR, Yahoo chart.error
    "not_authorized",  # Polygon 403 NOT_AUTHORIZED (plan), Yahoo/Tradier 401
    "unknown_ticker",  # Polygon 404 NOT_FOUND, Yahoo 404 "Not Found", Tradier empty
    "empty",  # a well-formed answer without bars
    "invalid_bars",  # the normal answer with the bars listed in `invalid` spoiled
    "invalid_actions",  # corporate actions with a zero ratio, a bad amount, a missing date
]

InvalidBar = Literal[
    "high_below_low",  # high set below low
    "off_grid",  # start moved 30 s off its grid slot
    "duplicate",  # the first bar repeated right after itself (higher volume)
    "outside_range",  # an extra bar after the requested range
    "null_field",  # open set to null
    "null_volume",  # volume set to null
]


@dataclass(frozen=True, slots=True)
class Fault:
    """One programmed misbehaviour. Build with the class methods."""

    kind: FaultKind
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    invalid: tuple[InvalidBar, ...] = ()

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Fault:
        """HTTP 429; `retry_after` is sent verbatim (seconds or an HTTP-date), None for none."""
        return cls("rate_limited", status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("server_error", status=status)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls("slow", delay=delay)

    @classmethod
    def truncated(cls) -> Fault:
        return cls("truncated")

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("malformed_json")

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def null_results(cls) -> Fault:
        return cls("null_results")

    @classmethod
    def provider_error(cls) -> Fault:
        return cls("provider_error")

    @classmethod
    def not_authorized(cls) -> Fault:
        return cls("not_authorized")

    @classmethod
    def unknown_ticker(cls) -> Fault:
        return cls("unknown_ticker")

    @classmethod
    def empty(cls) -> Fault:
        return cls("empty")

    @classmethod
    def invalid_bars(cls, *invalid: InvalidBar) -> Fault:
        return cls("invalid_bars", invalid=invalid)

    @classmethod
    def invalid_actions(cls) -> Fault:
        """Spoils the corporate actions of the answer, one defect per row (where there are
        enough rows). Polygon splits: the first gets split_to 0, the last (when more than
        one) loses execution_date. Polygon dividends: the first gets a negative
        cash_amount, the second (when three or more) none at all, the last (when more
        than one) loses ex_dividend_date. Yahoo events: the first split gets denominator
        0 ("10:0"), the first dividend a negative amount, the last dividend (when more
        than one) loses its date. Bars are untouched."""
        return cls("invalid_actions")


@dataclass(slots=True)
class Row:
    """A bar on its way into a response; fields may be None once spoiled."""

    ts: dt.datetime
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None  # an int, except split-adjusted volumes across a reverse split
    vwap: float | None
    trade_count: int | None
    adjclose: float | None = None  # Yahoo's split- and dividend-adjusted close (daily and longer)

    @classmethod
    def of(cls, bar: SyntheticBar | AdjustedBar) -> Row:
        return cls(bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap, bar.trade_count)


def spoil(rows: list[Row], invalid: tuple[InvalidBar, ...], *, outside: dt.datetime) -> list[Row]:
    """`rows` with the listed invalid bars worked in; `outside` is a start past the range.

    Each kind spoils a different row where there are enough rows (first, a third
    of the way in, middle, last), so every spoiled row has exactly one defect.
    """
    rows = [replace(row) for row in rows]
    if not rows:
        return rows
    last = len(rows) - 1
    pristine_last = replace(rows[last])
    # Values first, on the original positions; then the rows that add rows.
    for kind in invalid:
        if kind == "high_below_low":
            row = rows[len(rows) // 2]
            if row.low is not None:
                row.high = round(row.low - 0.5, 2)
        elif kind == "off_grid":
            rows[len(rows) // 3].ts += dt.timedelta(seconds=30)
        elif kind == "null_field":
            rows[last].open = None
        elif kind == "null_volume":
            rows[max(last - 1, 0)].volume = None
    if "outside_range" in invalid:
        rows.append(replace(pristine_last, ts=outside))
    if "duplicate" in invalid:
        rows.insert(1, replace(rows[0], volume=(rows[0].volume or 0) + 7))
    return rows
