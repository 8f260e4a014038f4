"""Tradier market data: recent intraday time & sales (m1/m5/m15) and daily/weekly history.

Its intraday lookback is a few weeks, so pgbars routes today's bars here, not history.
"""

from __future__ import annotations

import datetime as dt

from ..providers.classify import ErrorReply
from ..providers.grid import NEW_YORK, day_start, is_intraday, trading_week_monday
from ..providers.http import HttpProvider
from ..providers.sieve import BarSieve
from ..providers.types import FetchRequest, FetchResult, Pace, spell_ticker

DEFAULT_BASE_URL = "https://api.tradier.com"
SHARE_CLASS_SEPARATOR = "/"  # BRK/B: Tradier refuses BRK.B (docs/database.md#tickers)

TIMESALES_INTERVALS: dict[str, str] = {"m1": "1min", "m5": "5min", "m15": "15min"}
HISTORY_INTERVALS: dict[str, str] = {"d1": "daily", "w1": "weekly"}


def _wall_clock(ts: dt.datetime) -> str:
    """Tradier's timesales bounds are New York wall-clock times without an offset."""
    return ts.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M")


class TradierProvider(HttpProvider):
    """`/v1/markets/timesales` and `/v1/markets/history`, Bearer token, JSON by Accept header."""

    name = "tradier"
    credential_name = "TRADIER_TOKEN"
    base_url_setting = "TRADIER_BASE_URL"
    timeframes = frozenset(TIMESALES_INTERVALS) | frozenset(HISTORY_INTERVALS)

    async def fetch(self, request: FetchRequest, pace: Pace) -> FetchResult:
        self._check_request(request)
        sieve = BarSieve(request)
        if is_intraday(request.timeframe):
            params = {
                "symbol": spell_ticker(request.ticker, SHARE_CLASS_SEPARATOR),
                "interval": TIMESALES_INTERVALS[request.timeframe],
                "start": _wall_clock(request.start),
                # `end` is inclusive; the sieve drops anything at or past request.end.
                "end": _wall_clock(request.end - dt.timedelta(minutes=1)),
                "session_filter": "all",
            }
            body = await self._get_json(f"{self.base_url}/v1/markets/timesales", params, pace)
            for row in self._rows(body, "series", "data"):
                self._offer_timesale(row, sieve)
        else:
            first = request.first_session
            if request.timeframe == "w1":
                first = trading_week_monday(first)
            params = {
                "symbol": spell_ticker(request.ticker, SHARE_CLASS_SEPARATOR),
                "interval": HISTORY_INTERVALS[request.timeframe],
                "start": first.isoformat(),
                "end": request.last_session.isoformat(),
            }
            body = await self._get_json(f"{self.base_url}/v1/markets/history", params, pace)
            for row in self._rows(body, "history", "day"):
                self._offer_day(row, sieve)
        return sieve.result(self.name, 1)

    def _rows(self, body: object, outer: str, inner: str) -> list[object]:
        """The row list, whatever shape Tradier chose for it.

        Empty answers come as `null`, `"null"`, `{"history": null}` or
        `{"history": "null"}`; a single row comes as an object, not a list.
        """
        if body is None or body == "null":
            return []
        if not isinstance(body, dict):
            raise self._error(ErrorReply(200, body, detail="answer is not a JSON object"))
        if "errors" in body:
            raise self._error(ErrorReply(200, body))
        section = body.get(outer)
        if section is None or section == "null":
            return []
        if not isinstance(section, dict):
            raise self._error(ErrorReply(200, body, detail=f"{outer} is not an object"))
        rows = section.get(inner)
        if rows is None or rows == "null":
            return []
        if isinstance(rows, dict):
            return [rows]
        if not isinstance(rows, list):
            raise self._error(ErrorReply(200, body, detail=f"{outer}.{inner} is not a list"))
        return rows

    def _offer_timesale(self, raw: object, sieve: BarSieve) -> None:
        # `time` is New York wall-clock without an offset; `timestamp` is unambiguous.
        parsed = sieve.row_epoch(raw, "timestamp")
        if parsed is None:
            return
        row, stamp = parsed
        sieve.offer(
            row,
            dt.datetime.fromtimestamp(stamp, dt.UTC),
            open=row.get("open"),
            high=row.get("high"),
            low=row.get("low"),
            close=row.get("close"),
            volume=row.get("volume"),
            vwap=row.get("vwap"),
        )

    def _offer_day(self, row: object, sieve: BarSieve) -> None:
        if not isinstance(row, dict):
            sieve.reject({"row": row}, "not an object")
            return
        try:
            day = dt.date.fromisoformat(str(row.get("date")))
        except ValueError:
            sieve.reject(row, "invalid date")
            return
        if sieve.request.timeframe == "w1":
            day = trading_week_monday(day)
        sieve.offer(
            row,
            day_start(day),
            open=row.get("open"),
            high=row.get("high"),
            low=row.get("low"),
            close=row.get("close"),
            volume=row.get("volume"),
        )
