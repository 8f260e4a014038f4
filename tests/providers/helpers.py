"""Shared by the provider tests: credentials, chunks, and what the emulators served."""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from worker.emulator import EmulatorServer, synthetic
from worker.providers import Bar, FetchRequest

ServerT = TypeVar("ServerT", bound=EmulatorServer)

POLYGON_KEY = "pk-test-Zq8xW3vN5mB7"
TRADIER_TOKEN = "tt-test-Lr4kP9sD2fG6"
TICKER = "ACME"
# Yahoo's and Tradier's short intraday lookbacks are counted from the servers' "now".
NOW = dt.datetime(2024, 12, 2, 15, 0, tzinfo=dt.UTC)


@dataclass
class PaceRecorder:
    """A Pace that notes, at each call, how many requests the server had received."""

    server: EmulatorServer
    seen_at_call: list[int] = field(default_factory=list)
    called_at: list[float] = field(default_factory=list)

    answers: list[int | None] = field(default_factory=list)

    async def __call__(self) -> None:
        self.seen_at_call.append(len(self.server.requests))
        self.called_at.append(time.monotonic())

    def answered(self, status: int | None) -> None:
        self.answers.append(status)

    @property
    def calls(self) -> int:
        return len(self.seen_at_call)

    def paced_every_request(self) -> bool:
        """True when each request was preceded by exactly one pace() call."""
        return self.seen_at_call == list(range(len(self.server.requests)))


def serving(server: ServerT) -> Iterator[ServerT]:
    """Run `server` for a fixture; afterwards, fail the test if the emulator itself broke."""
    with server:
        yield server
    assert server.errors == [], "the emulator itself failed:\n" + "\n".join(server.errors)


class _NoPace:
    """A Pace for tests that do not look at pacing: no wait, nothing recorded."""

    async def __call__(self) -> None:
        return None

    def answered(self, status: int | None) -> None:
        return None


NO_PACE = _NoPace()


def chunk(timeframe: str, first: dt.date, last: dt.date | None = None) -> FetchRequest:
    return FetchRequest.for_sessions(TICKER, timeframe, first, last or first)


def served(
    timeframe: str,
    first: dt.date,
    last: dt.date | None = None,
    *,
    extended: bool = True,
    with_vwap: bool = True,
    with_trade_count: bool = True,
) -> list[Bar]:
    """The synthetic bars an emulator served for a chunk, as the provider should map them."""
    return [
        Bar(
            ts=bar.ts,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=float(bar.volume),
            vwap=bar.vwap if with_vwap else None,
            trade_count=bar.trade_count if with_trade_count else None,
        )
        for bar in synthetic.bars(TICKER, timeframe, first, last or first, extended=extended)
    ]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def new_york(ts: dt.datetime) -> str:
    """`ts` as New York wall-clock 'YYYY-MM-DD HH:MM', for readable assertions."""
    return ts.astimezone(synthetic.NEW_YORK).strftime("%Y-%m-%d %H:%M")


def all_text(error: BaseException) -> str:
    """Everything an error can show: str, repr, and the formatted traceback with its chain."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])
