"""Yahoo Finance chart API: m5/m15/m30 within its lookback, d1/w1 for decades, and the
splits and dividends of its chart events.

Not h1/h4: Yahoo's hourly bars start at 09:30 New York, off the clock-aligned
grid, so they cannot share timestamps with other providers' hours. Not m1:
seven days of lookback make it useless for history.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from urllib.parse import quote

from ..calendar import SessionHours
from ..providers.action_sieve import ActionSieve
from ..providers.classify import ErrorReply
from ..providers.grid import day_start, new_york_date, trading_week_monday
from ..providers.http import HttpProvider
from ..providers.sieve import BarSieve
from ..providers.types import ActionsRequest, ActionsResult, FetchRequest, FetchResult, Pace, spell_ticker

DEFAULT_BASE_URL = "https://query1.finance.yahoo.com"
# BRK-B: Yahoo's dot means another exchange (SHOP.TO), not a share class (docs/database.md#tickers)
SHARE_CLASS_SEPARATOR = "-"

INTERVALS: dict[str, str] = {"m5": "5m", "m15": "15m", "m30": "30m", "d1": "1d", "w1": "1wk"}
# Yahoo answers python-httpx's default User-Agent with 429s more readily.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) pgbars"
# How far before a session's pre-market open a daily timestamp may lie and still
# belong to it: covers the 22:00/23:00 UTC previous-evening stamps around DST.
_DAILY_LEAD = dt.timedelta(hours=12)
_FIELDS = ("open", "high", "low", "close", "volume")


def daily_session(ts: dt.datetime, sessions: list[SessionHours]) -> SessionHours | None:
    """The session a Yahoo daily timestamp stands for, or None.

    The rule: the first session whose regular close is after `ts`, if `ts` is
    no more than 12 hours before its pre-market open. Yahoo stamps a daily bar
    with the session's 09:30 open, sometimes 00:00 New York, and around DST
    with 22:00/23:00 UTC of the previous day (17:00-19:00 New York, after that
    day's close). Truncating the UTC or even the New York date gets the last
    case wrong; "the next session to close" gets all three right.
    """
    closes = [s.regular_close for s in sessions]
    index = bisect_right(closes, ts)
    if index == len(sessions):
        return None
    session = sessions[index]
    return session if session.premarket_open - ts <= _DAILY_LEAD else None


class YahooProvider(HttpProvider):
    """`GET /v8/finance/chart/{T}`: with includePrePost=true for bars, events=div,splits for
    actions; needs no credential."""

    name = "yahoo"
    credential_name = None
    base_url_setting = "YAHOO_BASE_URL"
    timeframes = frozenset(INTERVALS)

    def _headers(self) -> dict[str, str]:
        return {**super()._headers(), "User-Agent": USER_AGENT}

    async def fetch(self, request: FetchRequest, pace: Pace) -> FetchResult:
        self._check_request(request)
        period1 = request.start
        if request.timeframe == "w1":
            # Start at the week's Monday so Yahoo cannot begin a week mid-way.
            period1 = day_start(trading_week_monday(request.first_session))
        params = {
            "interval": INTERVALS[request.timeframe],
            "period1": str(int(period1.timestamp())),
            "period2": str(int(request.end.timestamp())),
            "includePrePost": "true",
        }
        body = await self._get_json(self._chart_url(request.ticker), params, pace)
        sieve = BarSieve(request)
        self._read_chart(body, sieve)
        return sieve.result(self.name, 1)

    async def fetch_actions(self, request: ActionsRequest, pace: Pace) -> ActionsResult:
        """One daily chart request with `events=div,splits`; its quote arrays are not read."""
        self._check_ready()
        params = {
            "interval": "1d",
            "period1": str(int(day_start(request.start).timestamp())),
            "period2": str(int(day_start(request.end + dt.timedelta(days=1)).timestamp())),
            "events": "div,splits",
            "includePrePost": "false",
        }
        body = await self._get_json(self._chart_url(request.ticker), params, pace)
        result = self._chart_result(body)
        sieve = ActionSieve(request)
        events = result.get("events")
        if events is None:
            return sieve.result(self.name, 1)  # no events in the range
        if not isinstance(events, dict):
            raise self._error(ErrorReply(200, body, detail="events is not an object"))
        meta = result.get("meta")
        currency = meta.get("currency") if isinstance(meta, dict) else None
        for kind in ("splits", "dividends"):
            entries = events.get(kind)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                raise self._error(ErrorReply(200, body, detail=f"events.{kind} is not an object"))
            for key, entry in entries.items():
                self._offer_event(kind, key, entry, "USD" if currency is None else currency, sieve)
        return sieve.result(self.name, 1)

    def _offer_event(self, kind: str, key: str, entry: object, currency: object, sieve: ActionSieve) -> None:
        raw: dict[str, object] = {kind: {key: entry}}  # where it was in the answer, verbatim
        if not isinstance(entry, dict):
            sieve.reject(raw, "not an object")
            return
        stamp = entry.get("date")
        if stamp is None:
            sieve.reject(raw, "date missing")
            return
        try:
            if isinstance(stamp, bool) or not isinstance(stamp, int):
                raise ValueError(stamp)
            # Yahoo dates an event at the ex-date's session open.
            ex_date = new_york_date(dt.datetime.fromtimestamp(stamp, dt.UTC))
        except (ValueError, OverflowError, OSError):
            sieve.reject(raw, "date is not an epoch in seconds")
            return
        if kind == "splits":
            names = ("denominator", "numerator")
            sieve.offer_split(raw, ex_date, entry.get(names[0]), entry.get(names[1]), None, names=names)
        else:
            names = ("amount", "meta.currency")
            sieve.offer_dividend(raw, ex_date, entry.get("amount"), currency, None, names=names)

    def _chart_url(self, ticker: str) -> str:
        symbol = spell_ticker(ticker, SHARE_CLASS_SEPARATOR)
        return f"{self.base_url}/v8/finance/chart/{quote(symbol, safe='')}"

    def _chart_result(self, body: object) -> dict[str, object]:
        """`chart.result[0]`, or the error the answer is."""
        chart = body.get("chart") if isinstance(body, dict) else None
        if not isinstance(chart, dict):
            raise self._error(ErrorReply(200, body, detail="no chart object"))
        if chart.get("error"):
            raise self._error(ErrorReply(200, body))
        results = chart.get("result")
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise self._error(ErrorReply(200, body, detail="chart.result is empty"))
        return results[0]

    def _read_chart(self, body: object, sieve: BarSieve) -> None:
        result = self._chart_result(body)
        timestamps = result.get("timestamp")
        if timestamps is None:
            return  # Yahoo leaves out timestamp and quote arrays when the range has no bars
        quote_ = _first(_first(result, "indicators"), "quote")
        if not isinstance(timestamps, list) or not isinstance(quote_, dict):
            raise self._error(ErrorReply(200, body, detail="timestamp or quote malformed"))
        columns: dict[str, list[object]] = {}
        for name in _FIELDS:
            column = quote_.get(name)
            if not isinstance(column, list):
                raise self._error(ErrorReply(200, body, detail=f"quote {name} malformed"))
            columns[name] = column

        request = sieve.request
        sessions: list[SessionHours] = []
        if request.timeframe == "d1":
            # A week either side, so a live row for a later day still maps to a
            # date (and is rejected as outside the chunk rather than unmappable).
            sessions = list(request.sessions)
        for index, stamp in enumerate(timestamps):
            row: dict[str, object] = {"timestamp": stamp}
            for name, column in columns.items():
                row[name] = column[index] if index < len(column) else None
            if all(row[name] is None for name in ("open", "high", "low", "close")):
                continue  # Yahoo pads quiet slots with all-null rows: not bars
            if isinstance(stamp, bool) or not isinstance(stamp, int):
                sieve.reject(row, "wrong type for timestamp")
                continue
            ts = dt.datetime.fromtimestamp(stamp, dt.UTC)
            if request.timeframe == "d1":
                session = daily_session(ts, sessions)
                if session is None:
                    sieve.reject(row, "no session for timestamp")
                    continue
                ts = day_start(session.session_date)
            elif request.timeframe == "w1":
                ts = day_start(trading_week_monday(new_york_date(ts)))
            sieve.offer(
                row,
                ts,
                open=row["open"],
                high=row["high"],
                low=row["low"],
                close=row["close"],
                volume=row["volume"],
            )


def _first(container: object, key: str) -> object:
    """`container[key]`, or its first element when Yahoo wraps it in a list."""
    value = container.get(key) if isinstance(container, dict) else None
    if isinstance(value, list):
        return value[0] if value else None
    return value
