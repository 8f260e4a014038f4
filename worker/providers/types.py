"""The plain data every provider and the worker pass between them: bars, requests, results.

Kept apart from any HTTP or checking code so that the worker, the tests and the
benchmarks can name a Bar or a FetchRequest without pulling in more. A provider
turns a `FetchRequest` (one chunk: ticker, timeframe, sessions) into a
`FetchResult`: bars already on the pgbars grid plus the rows it could not use,
kept for quarantine. Providers do HTTP and parsing only; they never touch the
database (the worker owns that) and never decide what to fetch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from ..calendar import SessionHours
from ..providers.grid import TIMEFRAMES, sessions_between

__all__ = [
    "TIMEFRAMES",
    "ActionSource",
    "ActionsRequest",
    "ActionsResult",
    "Bar",
    "CorporateAction",
    "FetchRequest",
    "FetchResult",
    "Pace",
    "Provider",
    "RawRow",
    "spell_ticker",
]


def spell_ticker(ticker: str, class_separator: str) -> str:
    """A stored ticker as a provider writes it: its share class after `class_separator`.

    pgbars stores one spelling, the class after a dot (BRK.B; the ticker domain
    admits no other separator, see docs/database.md#tickers); providers differ:
    Polygon BRK.B, Yahoo BRK-B, Tradier BRK/B. Each provider spells the ticker
    where it builds its request.
    """
    return ticker.replace(".", class_separator)


class Bar(NamedTuple):
    """One bar already mapped onto the pgbars grid (see worker.providers.grid).

    A tuple in the column order of the worker's staging table, so COPY writes
    it as it is.
    """

    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trade_count: int | None


@dataclass(frozen=True, slots=True)
class RawRow:
    """A provider row that could not become a Bar, kept verbatim for quarantine."""

    raw: dict[str, object]
    reason: str
    ts: dt.datetime | None = None  # where the row claimed to be, when that was readable


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One chunk: bars with start in [start, end) for the sessions first..last.

    `sessions` are the XNYS sessions around them (a week either side), with
    their hours: the worker takes them from its lease (market_sessions, so the
    database is its only calendar); tests and benchmarks build them with
    `for_sessions`, from exchange_calendars.
    """

    ticker: str
    timeframe: str
    start: dt.datetime
    end: dt.datetime
    first_session: dt.date
    last_session: dt.date
    sessions: tuple[SessionHours, ...]

    @classmethod
    def for_sessions(
        cls, ticker: str, timeframe: str, first_session: dt.date, last_session: dt.date
    ) -> FetchRequest:
        """The request covering pre-market of `first_session` to after-hours of `last_session`."""
        week = dt.timedelta(days=7)
        around = tuple(sessions_between(first_session - week, last_session + week))
        sessions = [s for s in around if first_session <= s.session_date <= last_session]
        if not sessions:
            raise ValueError(f"no XNYS session between {first_session} and {last_session}")
        return cls(
            ticker=ticker,
            timeframe=timeframe,
            start=sessions[0].premarket_open,
            end=sessions[-1].after_hours_close,
            first_session=first_session,
            last_session=last_session,
            sessions=around,
        )

    def sessions_inside(self) -> list[SessionHours]:
        """The sessions first_session..last_session, in order."""
        return [s for s in self.sessions if self.first_session <= s.session_date <= self.last_session]


@dataclass(slots=True)
class FetchResult:
    provider: str
    bars: list[Bar]
    rejected: list[RawRow]
    requests: int  # HTTP requests made, every page counted


class Pace(Protocol):
    """Brackets every HTTP request of a fetch, pagination pages included.

    The worker's implementation reserves a rate-limit slot in the database
    and sleeps until it, then records the answer in the call ledger.
    """

    async def __call__(self) -> None:
        """Before the request: wait for its slot."""

    def answered(self, status: int | None) -> None:
        """After it: the HTTP status, or None when no response arrived."""


class Provider(Protocol):
    name: str

    def supports(self, timeframe: str) -> bool: ...

    async def fetch(self, request: FetchRequest, pace: Pace) -> FetchResult: ...


@dataclass(frozen=True, slots=True)
class ActionsRequest:
    """One symbol's corporate actions with an ex-date in [start, end] (both New York dates)."""

    ticker: str
    start: dt.date
    end: dt.date


class CorporateAction(NamedTuple):
    """A split or a cash dividend as the provider reported it (no conversion).

    A tuple in the column order of the worker's action staging table. A split
    has split_from/split_to (new shares per old = split_to / split_from; a
    reverse split has split_from > split_to); a dividend has cash_amount and
    currency, per share in the provider's own basis (Yahoo's is split-adjusted
    as of the day it answered; the database converts, see docs/database.md).
    """

    kind: Literal["split", "dividend"]
    ex_date: dt.date
    split_from: float | None
    split_to: float | None
    cash_amount: float | None
    currency: str | None
    reference: str | None  # the provider's id of the action, when it has one


@dataclass(slots=True)
class ActionsResult:
    provider: str
    actions: list[CorporateAction]
    rejected: list[RawRow]  # malformed rows, or rows that are not a split or a cash dividend
    requests: int  # HTTP requests made, every page counted


class ActionSource(Protocol):
    """A provider that reports corporate actions (Polygon's reference API, Yahoo's chart events)."""

    name: str

    async def fetch_actions(self, request: ActionsRequest, pace: Pace) -> ActionsResult: ...
