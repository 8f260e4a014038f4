"""An emulated Yahoo Finance chart API (`/v8/finance/chart/{symbol}`), quirks included.

- Intraday intervals are clock-aligned, except 60m/1h: those start at 09:30
  New York during the regular session, which is why pgbars does not route h1
  or h4 to Yahoo (see `hourly_bucket`).
- Lookback limits: 1m 30 days (8 per request), 2m..30m 60 days, 60m/1h 730
  days; older requests get HTTP 422 with chart.error.
- Daily bars are stamped with the session's 09:30 open, except (`dst_quirk`)
  in the week after a DST change, where they carry 22:00/23:00 UTC of the
  previous day. Weekly bars are stamped 00:00 New York of the Monday.
- Options: `null_rows` pads empty intraday slots with all-null rows,
  `duplicate_timestamps` repeats the first row of each session, `live_row`
  appends a row for the session after the range (today's live bar).
- Prices are never raw: `indicators.quote` (open/high/low/close, and volume,
  rounded to whole shares) is split-adjusted as of the server clock's New York
  date, at every interval; `indicators.adjclose` (1d, 1wk) is that close times
  the CRSP dividend factor (`actions.dividend_adjustment`) as of the same date.
- `events=div,splits` (also `div|split`; `capitalGains` is ignored) adds
  `events.dividends` and `events.splits` for ex-dates in [period1, period2]
  up to the clock's date, keyed and dated at the ex-date's 09:30 New York
  open; a kind without events is left out, and so is `events` when both are
  (and for a ticker the server withholds). Assumption: a dividend's `amount`
  is split-adjusted as of the clock's date, like the quotes (the raw amount
  times `actions.split_adjustment` of its ex-date: NVDA's $0.04 of 2023 is
  0.004), which is how yfinance's dividend history reads.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import replace

from ..calendar import SessionHours
from ..emulator import actions, synthetic
from ..emulator.faults import Fault, Row, spoil
from ..emulator.server import EmulatorServer, RecordedRequest, Reply
from ..emulator.synthetic import NEW_YORK, AdjustedBar

_PATH = re.compile(r"^/v8/finance/chart/(?P<symbol>[^/]+)$")
CLOCK_INTERVALS = {"1m": 1, "2m": 2, "5m": 5, "15m": 15, "30m": 30}
HOURLY_INTERVALS = ("60m", "1h")
LOOKBACK_DAYS = {"1m": 30, "2m": 60, "5m": 60, "15m": 60, "30m": 60, "60m": 730, "1h": 730}
ONE_MINUTE_SPAN_DAYS = 8
_VALID = "[1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 1d, 5d, 1wk, 1mo, 3mo]"


def _chart_error(code: str, description: str, status: int) -> Reply:
    return Reply.json(
        {"chart": {"result": None, "error": {"code": code, "description": description}}}, status
    )


def hourly_bucket(hours: SessionHours) -> Callable[[dt.datetime], dt.datetime]:
    """Yahoo's hours: anchored at the 09:30 open in the regular session, clock hours outside."""
    clock = synthetic.clock_bucket(60)

    def bucket(ts: dt.datetime) -> dt.datetime:
        if hours.regular_open <= ts < hours.regular_close:
            return hours.regular_open + (ts - hours.regular_open) // dt.timedelta(hours=1) * dt.timedelta(
                hours=1
            )
        return clock(ts)

    return bucket


def _dst_changed_within(day: dt.date, days: int) -> bool:
    now = synthetic.new_york_midnight(day).astimezone(NEW_YORK).utcoffset()
    before = synthetic.new_york_midnight(day - dt.timedelta(days=days)).astimezone(NEW_YORK)
    return now != before.utcoffset()


def daily_stamp(hours: SessionHours, *, dst_quirk: bool) -> dt.datetime:
    """The timestamp Yahoo puts on the daily bar of a session."""
    if dst_quirk and _dst_changed_within(hours.session_date, 7):
        midnight_utc = dt.datetime.combine(hours.session_date, dt.time(0, 0), tzinfo=dt.UTC)
        summer = bool(hours.regular_open.astimezone(NEW_YORK).dst())
        return midnight_utc - dt.timedelta(hours=2 if summer else 1)
    return hours.regular_open


class YahooServer(EmulatorServer):
    provider = "yahoo"

    def __init__(
        self,
        *,
        now: dt.datetime | None = None,
        rate_limit: tuple[int, float] | None = None,
        dst_quirk: bool = True,
        null_rows: bool = False,
        duplicate_timestamps: bool = False,
        live_row: bool = False,
        withheld_actions: Iterable[str] = (),
    ) -> None:
        super().__init__(now=now, rate_limit=rate_limit, withheld_actions=withheld_actions)
        self.dst_quirk = dst_quirk
        self.null_rows = null_rows
        self.duplicate_timestamps = duplicate_timestamps
        self.live_row = live_row

    def error_reply(self, status: int, message: str) -> Reply:
        if status == 429:
            return Reply.text("Too Many Requests\r\n", 429)  # Yahoo's 429 is plain text
        return _chart_error("Internal Server Error", message, status)

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        match = _PATH.match(request.path)
        if match is None:
            return _chart_error("Not Found", "HTTP 404 Not Found", 404)
        kind = fault.kind if fault is not None else None
        if "." in match["symbol"]:
            kind = "unknown_ticker"  # Yahoo writes a share class BRK-B (its dot names an exchange)
        if kind == "unknown_ticker":
            return _chart_error("Not Found", "No data found, symbol may be delisted", 404)
        if kind == "not_authorized":
            return Reply.json(
                {
                    "finance": {
                        "result": None,
                        "error": {"code": "Unauthorized", "description": "Invalid Crumb"},
                    }
                },
                401,
            )
        if kind == "null_results":
            return Reply.json({"chart": {"result": None, "error": None}})
        if kind == "provider_error":
            return _chart_error("Internal Server Error", "emulated failure inside a 200", 200)

        interval = request.param("interval") or "1d"
        try:
            period1 = dt.datetime.fromtimestamp(int(request.param("period1") or "0"), dt.UTC)
            period2 = dt.datetime.fromtimestamp(int(request.param("period2") or "0"), dt.UTC)
        except ValueError:
            return _chart_error("Bad Request", "Invalid input - period1/period2", 400)
        pre_post = (request.param("includePrePost") or "false").lower() == "true"
        refused = self._refuse(interval, period1, period2)
        if refused is not None:
            return refused

        symbol = match["symbol"]
        # The market of BRK-B is the one the other emulators serve as BRK.B and BRK/B.
        market = symbol.replace("-", ".")
        rows = [] if kind == "empty" else self._rows(market, interval, period1, period2, pre_post)
        if kind == "invalid_bars" and fault is not None:
            rows = spoil(rows, fault.invalid, outside=period2)
        events = None
        wanted = {name for name in re.split(r"[,|]", request.param("events") or "") if name}
        if wanted and market not in self.withheld_actions:
            events = self._events(market, wanted, period1, period2, spoiled=kind == "invalid_actions")
        return Reply.json(self._chart(symbol, interval, rows, events))

    def _refuse(self, interval: str, period1: dt.datetime, period2: dt.datetime) -> Reply | None:
        if interval not in CLOCK_INTERVALS and interval not in (*HOURLY_INTERVALS, "1d", "1wk"):
            return _chart_error(
                "Unprocessable Entity",
                f"Invalid input - interval={interval} is not supported. Valid intervals: {_VALID}",
                422,
            )
        limit = LOOKBACK_DAYS.get(interval)
        too_wide = interval == "1m" and period2 - period1 > dt.timedelta(days=ONE_MINUTE_SPAN_DAYS)
        if too_wide:
            return _chart_error(
                "Unprocessable Entity",
                f"Only {ONE_MINUTE_SPAN_DAYS} days worth of 1m granularity data are allowed"
                " to be fetched per request.",
                422,
            )
        if limit is not None and period1 < self.clock() - dt.timedelta(days=limit):
            return _chart_error(
                "Unprocessable Entity",
                f"{interval} data not available for startTime={int(period1.timestamp())} and"
                f" endTime={int(period2.timestamp())}. The requested range must be within the"
                f" last {limit} days.",
                422,
            )
        return None

    def _rows(
        self,
        symbol: str,
        interval: str,
        period1: dt.datetime,
        period2: dt.datetime,
        pre_post: bool,
    ) -> list[Row]:
        """Rows in time order, all-null padding rows included."""
        first = period1.astimezone(NEW_YORK).date()
        last = (period2 - dt.timedelta(seconds=1)).astimezone(NEW_YORK).date()
        days = synthetic.sessions(first, last)
        today = self.today()
        rows: list[Row] = []
        if interval == "1wk":
            weeks = synthetic.adjusted_bars(symbol, "w1", first, last + dt.timedelta(days=7), as_of=today)
            for week in weeks:
                if period1 <= week.ts < period2:
                    monday = week.ts.astimezone(NEW_YORK).date()
                    closing = synthetic.sessions(monday, monday + dt.timedelta(days=6))[-1]
                    rows.append(_restamped(symbol, week, week.ts, closing.session_date, today))
        elif interval == "1d":
            for hours in days:
                bar = synthetic.daily_bar(symbol, hours.session_date)
                if bar is not None:
                    stamp = daily_stamp(hours, dst_quirk=self.dst_quirk)
                    adjusted = synthetic.adjust(symbol, bar, today)
                    rows.append(_restamped(symbol, adjusted, stamp, hours.session_date, today))
        else:
            for hours in days:
                rows.extend(self._session_rows(symbol, interval, hours, pre_post, period1, period2))
        if self.duplicate_timestamps:
            rows = _with_duplicates(rows)
        if self.live_row and days:
            live = self._live_row(symbol, interval, days[-1].session_date)
            if live is not None:
                rows.append(live)
        return rows

    def _session_rows(
        self,
        symbol: str,
        interval: str,
        hours: SessionHours,
        pre_post: bool,
        period1: dt.datetime,
        period2: dt.datetime,
    ) -> list[Row]:
        minutes = synthetic.minute_bars(symbol, hours.session_date, extended=pre_post)
        if interval in HOURLY_INTERVALS:
            bucket = hourly_bucket(hours)
            step = dt.timedelta(hours=1)
        else:
            bucket = synthetic.clock_bucket(CLOCK_INTERVALS[interval])
            step = dt.timedelta(minutes=CLOCK_INTERVALS[interval])
        today = self.today()
        bars = {bar.ts: synthetic.adjust(symbol, bar, today) for bar in synthetic.bucketed(minutes, bucket)}
        if not self.null_rows:
            return [Row.of(bar) for ts, bar in bars.items() if period1 <= ts < period2]
        start = hours.premarket_open if pre_post else hours.regular_open
        end = hours.after_hours_close if pre_post else hours.regular_close
        slots = {bucket(start + k * step) for k in range((end - start) // step)} | bars.keys()
        rows: list[Row] = []
        for ts in sorted(slots):
            if not period1 <= ts < period2:
                continue
            if ts in bars:
                rows.append(Row.of(bars[ts]))
            else:
                rows.append(Row(ts, None, None, None, None, None, None, None))
        return rows

    def _live_row(self, symbol: str, interval: str, after: dt.date) -> Row | None:
        following = synthetic.sessions(after + dt.timedelta(days=1), after + dt.timedelta(days=14))
        if not following or interval == "1wk":
            return None
        hours = following[0]
        bar = synthetic.daily_bar(symbol, hours.session_date)
        if bar is None:
            return None
        today = self.today()
        adjusted = synthetic.adjust(symbol, bar, today)
        return _restamped(symbol, adjusted, hours.regular_open, hours.session_date, today)

    def _events(
        self, market: str, wanted: set[str], period1: dt.datetime, period2: dt.datetime, *, spoiled: bool
    ) -> dict[str, object] | None:
        """`chart.result[0].events` for the kinds in `wanted`, or None when there are none."""
        today = self.today()

        def stamped(ex_date: dt.date) -> int | None:
            hours = synthetic.session(ex_date)
            if ex_date > today or hours is None or not period1 <= hours.regular_open <= period2:
                return None
            return int(hours.regular_open.timestamp())

        dividends: dict[str, dict[str, object]] = {}
        if wanted & {"div", "divs", "dividends"}:
            for dividend in actions.dividends(market):
                if (stamp := stamped(dividend.ex_date)) is not None:
                    factor = actions.split_adjustment(market, dividend.ex_date, today)
                    dividends[str(stamp)] = {"amount": round(dividend.cash_amount * factor, 6), "date": stamp}
        splits: dict[str, dict[str, object]] = {}
        if wanted & {"split", "splits"}:
            for split in actions.splits(market):
                if (stamp := stamped(split.ex_date)) is not None:
                    splits[str(stamp)] = {
                        "date": stamp,
                        "numerator": split.split_to,
                        "denominator": split.split_from,
                        "splitRatio": f"{split.split_to}:{split.split_from}",
                    }
        if spoiled:
            _spoil_events(dividends, splits)
        events: dict[str, object] = {}
        if dividends:
            events["dividends"] = dividends
        if splits:
            events["splits"] = splits
        return events or None

    def _chart(
        self, symbol: str, interval: str, present: list[Row], events: dict[str, object] | None
    ) -> dict[str, object]:
        result: dict[str, object] = {"meta": self._meta(symbol, interval, present)}
        daily = interval in ("1d", "1wk")
        if present:
            result["timestamp"] = [int(row.ts.timestamp()) for row in present]
        if events is not None:
            result["events"] = events
        if present:
            quote = {
                "open": [row.open for row in present],
                "high": [row.high for row in present],
                "low": [row.low for row in present],
                "close": [row.close for row in present],
                "volume": [None if row.volume is None else round(row.volume) for row in present],
            }
            indicators: dict[str, object] = {"quote": [quote]}
            if daily:
                adjclose = [row.close if row.adjclose is None else row.adjclose for row in present]
                indicators["adjclose"] = [{"adjclose": adjclose}]
            result["indicators"] = indicators
        else:
            result["indicators"] = {"quote": [{}], **({"adjclose": [{}]} if daily else {})}
        return {"chart": {"result": [result], "error": None}}

    def _meta(self, symbol: str, interval: str, rows: list[Row]) -> dict[str, object]:
        now = self.clock().astimezone(NEW_YORK)
        offset = now.utcoffset()
        gmtoffset = int(offset.total_seconds()) if offset is not None else 0
        tzname = now.tzname() or "EST"
        today = synthetic.sessions(now.date(), now.date() + dt.timedelta(days=14))
        meta: dict[str, object] = {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": "NMS",
            "fullExchangeName": "NasdaqGS",
            "instrumentType": "EQUITY",
            "firstTradeDate": 345479400,
            "regularMarketTime": int(now.timestamp()),
            "hasPrePostMarketData": True,
            "gmtoffset": gmtoffset,
            "timezone": tzname,
            "exchangeTimezoneName": "America/New_York",
            "regularMarketPrice": next((r.close for r in reversed(rows) if r.close), None),
            "priceHint": 2,
            "dataGranularity": interval,
            "range": "",
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
        if today:
            hours = today[0]

            def period(start: dt.datetime, end: dt.datetime) -> dict[str, object]:
                return {
                    "timezone": tzname,
                    "start": int(start.timestamp()),
                    "end": int(end.timestamp()),
                    "gmtoffset": gmtoffset,
                }

            meta["currentTradingPeriod"] = {
                "pre": period(hours.premarket_open, hours.regular_open),
                "regular": period(hours.regular_open, hours.regular_close),
                "post": period(hours.regular_close, hours.after_hours_close),
            }
        return meta


def _restamped(symbol: str, bar: AdjustedBar, ts: dt.datetime, closing: dt.date, today: dt.date) -> Row:
    """A daily or weekly row stamped `ts`, its adjclose that of its last session `closing`."""
    row = Row.of(bar)
    row.ts = ts
    row.adjclose = round(bar.close * actions.dividend_adjustment(symbol, closing, today), 4)
    return row


def _spoil_events(dividends: dict[str, dict[str, object]], splits: dict[str, dict[str, object]]) -> None:
    """One defect per event, as `Fault.invalid_actions` describes."""
    if splits:
        first = splits[min(splits)]
        first["denominator"] = 0
        first["splitRatio"] = f"{first['numerator']}:0"
    if dividends:
        keys = sorted(dividends)
        amount = dividends[keys[0]]["amount"]
        assert isinstance(amount, int | float)
        dividends[keys[0]]["amount"] = -amount
        if len(keys) > 1:
            del dividends[keys[-1]]["date"]


def _with_duplicates(rows: list[Row]) -> list[Row]:
    """Each session's first bar repeated right after it, with a different volume."""
    out: list[Row] = []
    seen_days: set[dt.date] = set()
    for row in rows:
        out.append(row)
        if row.close is None:
            continue
        day = row.ts.astimezone(NEW_YORK).date()
        if day not in seen_days:
            seen_days.add(day)
            out.append(replace(row, volume=(row.volume or 0) + 1, vwap=None, trade_count=None))
    return out
