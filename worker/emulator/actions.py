"""The corporate actions of the synthetic market: real splits and cash dividends.

The synthetic price path (`synthetic.price_at`) is continuous: it is on the
share basis after every split listed here. The market trades as the real one
did, so a session's as-traded (raw) prices are that path times `raw_factor`
(NVDA before 2024-06-10 trades about ten times higher) and its volumes are
divided by it. Providers then adjust raw bars back with `split_adjustment`
(Polygon's adjusted=true, Yahoo's quotes, Tradier's history) and Yahoo's
adjclose also with `dividend_adjustment` (the CRSP convention).

Ex-dates, ratios and amounts are the real ones (amounts raw: as paid per share
held on the ex-date) and every ex-date is an XNYS session (a test checks it).
Declaration, record and pay dates of the regular dividends are derived from
the ex-date (two weeks before; the ex-date itself under T+1 settlement from
2024-05-28, the next weekday before that; two weeks after the record date):
plausible, not the real ones. Only some of each ticker's history is here (no
AAPL 4-for-1 of 2020, no COST regular dividends): the bars of a ticker
without splits are exactly what they were before actions existed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

_T_PLUS_ONE = dt.date(2024, 5, 28)  # US settlement moved from T+2 to T+1: the record date became the ex-date


@dataclass(frozen=True, slots=True)
class Split:
    """`split_to` new shares for every `split_from` old ones (a reverse split has from > to);
    `ex_date` (Polygon's execution_date) is the first session on the new basis."""

    ticker: str
    ex_date: dt.date
    split_from: int
    split_to: int

    @property
    def ratio(self) -> Fraction:
        """New shares per old share."""
        return Fraction(self.split_to, self.split_from)


@dataclass(frozen=True, slots=True)
class Dividend:
    """A cash dividend, `cash_amount` per share as paid (raw: the basis of its ex-date)."""

    ticker: str
    ex_date: dt.date
    cash_amount: float
    currency: str
    declaration_date: dt.date
    record_date: dt.date
    pay_date: dt.date
    frequency: int  # payments a year; 0 for a one-time (special) dividend
    dividend_type: str  # "CD" regular cash, "SC" special cash


def _weekday_on_or_after(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def _weekday_on_or_before(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def _regular(ticker: str, cash_amount: float, *ex_dates: str) -> list[Dividend]:
    """Quarterly cash dividends of `cash_amount` with derived declaration/record/pay dates."""
    out = []
    for text in ex_dates:
        ex = dt.date.fromisoformat(text)
        record = ex if ex >= _T_PLUS_ONE else _weekday_on_or_after(ex + dt.timedelta(days=1))
        out.append(
            Dividend(
                ticker=ticker,
                ex_date=ex,
                cash_amount=cash_amount,
                currency="USD",
                declaration_date=_weekday_on_or_before(ex - dt.timedelta(days=14)),
                record_date=record,
                pay_date=_weekday_on_or_after(record + dt.timedelta(days=14)),
                frequency=4,
                dividend_type="CD",
            )
        )
    return out


SPLITS: tuple[Split, ...] = (
    Split("AVGO", dt.date(2024, 7, 15), 1, 10),
    Split("GE", dt.date(2021, 8, 2), 8, 1),  # reverse: 1 new share for 8 old
    Split("NVDA", dt.date(2024, 6, 10), 1, 10),
    Split("ORLY", dt.date(2025, 6, 10), 1, 15),
)

DIVIDENDS: tuple[Dividend, ...] = (
    *_regular("AAPL", 0.24, "2024-02-09", "2024-05-10"),
    *_regular("AAPL", 0.25, "2024-08-12", "2024-11-08", "2025-02-10", "2025-05-12"),
    *_regular("AAPL", 0.26, "2025-08-11", "2025-11-10", "2026-02-09", "2026-05-11"),
    *_regular("AAPL", 0.26, "2026-08-10", "2026-11-09"),
    *_regular("AVGO", 5.25, "2024-03-20", "2024-06-21"),  # before the 10-for-1
    *_regular("AVGO", 0.53, "2024-09-23", "2024-12-23"),
    *_regular("AVGO", 0.59, "2025-03-20", "2025-06-20", "2025-09-22", "2025-12-22"),
    *_regular("AVGO", 0.65, "2026-03-20", "2026-06-22", "2026-09-21"),
    # Costco's special dividend of December 2023 (its regular ones are left out).
    Dividend(
        ticker="COST",
        ex_date=dt.date(2023, 12, 27),
        cash_amount=15.0,
        currency="USD",
        declaration_date=dt.date(2023, 12, 14),
        record_date=dt.date(2023, 12, 28),
        pay_date=dt.date(2024, 1, 12),
        frequency=0,
        dividend_type="SC",
    ),
    *_regular("GE", 0.01, "2021-03-05", "2021-06-25"),  # before the 1-for-8
    *_regular("GE", 0.08, "2021-09-27", "2021-12-27"),
    *_regular("NVDA", 0.04, "2023-06-07", "2023-09-06", "2023-12-05", "2024-03-05"),  # before the 10-for-1
    *_regular(
        "NVDA",
        0.01,
        *("2024-06-11", "2024-09-12", "2024-12-05", "2025-03-12", "2025-06-11"),
        *("2025-09-11", "2025-12-04", "2026-03-11", "2026-06-10", "2026-09-10"),
    ),
)


@lru_cache(maxsize=1024)
def splits(ticker: str) -> tuple[Split, ...]:
    """`ticker`'s splits, oldest first."""
    return tuple(sorted((s for s in SPLITS if s.ticker == ticker), key=lambda s: s.ex_date))


@lru_cache(maxsize=1024)
def dividends(ticker: str) -> tuple[Dividend, ...]:
    """`ticker`'s cash dividends, oldest first."""
    return tuple(sorted((d for d in DIVIDENDS if d.ticker == ticker), key=lambda d: d.ex_date))


def raw_factor(ticker: str, session_date: dt.date) -> float:
    """What turns the continuous series into as-traded prices on `session_date`: the
    product of split_to/split_from of every split after it (volumes divide by it)."""
    factor = Fraction(1)
    for split in splits(ticker):
        if split.ex_date > session_date:
            factor *= split.ratio
    return float(factor)


def split_adjustment(ticker: str, session_date: dt.date, as_of: dt.date) -> float:
    """Raw price x this = the price split-adjusted as of `as_of` (volume: divided by it):
    the product of split_from/split_to over splits with session_date < ex_date <= as_of."""
    factor = Fraction(1)
    for split in splits(ticker):
        if session_date < split.ex_date <= as_of:
            factor /= split.ratio
    return float(factor)


def dividend_adjustment(ticker: str, session_date: dt.date, as_of: dt.date) -> float:
    """The CRSP dividend factor of a bar on `session_date` as of `as_of`: the product over
    dividends with session_date < ex_date <= as_of of 1 - cash_amount / the raw close of
    the session before the ex-date (the synthetic d1 close)."""
    factor = 1.0
    for dividend in dividends(ticker):
        if session_date < dividend.ex_date <= as_of:
            factor *= dividend_factor(dividend)
    return factor


@lru_cache(maxsize=1024)
def dividend_factor(dividend: Dividend) -> float:
    """1 - cash_amount / the raw d1 close of the last session before the ex-date."""
    # synthetic imports this module (raw_factor): import it when first needed.
    from ..emulator import synthetic

    ex_date = dividend.ex_date
    before = synthetic.sessions(ex_date - dt.timedelta(days=14), ex_date - dt.timedelta(days=1))
    for hours in reversed(before):
        bar = synthetic.daily_bar(dividend.ticker, hours.session_date)
        if bar is not None:
            return 1.0 - dividend.cash_amount / bar.close
    raise ValueError(f"no session before the ex-date of {dividend}")
