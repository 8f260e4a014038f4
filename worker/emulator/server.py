"""The local HTTP server the provider emulators share: threads, recording, faults.

Each emulator is a `ThreadingHTTPServer` on 127.0.0.1 (an ephemeral port) run
by a background thread. It records every request, can be told to misbehave
(`inject`), and optionally enforces a rate limit. HTTP/1.0 keeps it simple:
one request per connection, so stopping never waits on an idle keep-alive.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

from .. import clock
from ..calendar import NEW_YORK
from ..emulator.faults import Fault

# Faults that replace the answer before any provider logic runs.
_EARLY_FAULTS = frozenset({"rate_limited", "server_error", "reset"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it."""

    monotonic: float  # time.monotonic() on arrival
    wall: dt.datetime  # aware UTC on arrival
    method: str
    target: str  # path and query exactly as sent
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # every header, names lower-cased

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200, **headers: str) -> Reply:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": "application/json", **headers})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Reply:
        return cls(status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8"})


@dataclass(slots=True)
class _Armed:
    fault: Fault
    path_prefix: str
    remaining: int
    skip: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 10  # a vanished client must not pin a handler thread for long

    def do_GET(self) -> None:
        emulator = getattr(self.server, "emulator", None)
        assert isinstance(emulator, EmulatorServer)
        emulator._serve(self)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: tests read `EmulatorServer.requests` instead of stderr."""


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads, joined by server_close(): stop() leaves no thread behind.
    daemon_threads = False
    block_on_close = True

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return  # the client gave up (a timeout test, usually): nothing to report
        self.emulator._record_error(traceback.format_exc())


class EmulatorServer:
    """Base of the provider emulators: subclasses implement `route`.

    `now` fixes the server's idea of the current time (lookback limits, live
    rows, the date prices are split-adjusted to); None means the real clock.
    `rate_limit=(calls, seconds)` answers 429 to calls beyond `calls` in any
    rolling `seconds`. `withheld_actions` names tickers whose corporate actions
    the server does not report (Polygon's reference API, Yahoo's events) while
    their bars stay the same: an action the client learns of later. It is a
    set tests may change while the server runs.
    """

    provider = "emulator"

    def __init__(
        self,
        *,
        now: dt.datetime | None = None,
        rate_limit: tuple[int, float] | None = None,
        withheld_actions: Iterable[str] = (),
    ) -> None:
        self.now = now
        self.rate_limit = rate_limit
        self.withheld_actions: set[str] = set(withheld_actions)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Armed] = []
        self._errors: list[str] = []
        self._recent: deque[float] = deque()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # how long stop() waits for the loop
            name=f"{self.provider}-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a "slow" fault
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- what tests look at and program ---

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of exceptions inside the emulator itself (should stay empty)."""
        with self._lock:
            return list(self._errors)

    def clear(self) -> None:
        """Forget recorded requests (and the rate-limit history)."""
        with self._lock:
            self._requests.clear()
            self._recent.clear()

    def inject(self, fault: Fault, *, path_prefix: str = "/", times: int = 1, skip: int = 0) -> None:
        """Answer `times` requests whose path starts with `path_prefix` with `fault`,
        after letting `skip` such requests through (e.g. skip=1: fail the second page).

        Faults are consumed in the order injected; the first matching one applies.
        """
        with self._lock:
            self._faults.append(_Armed(fault, path_prefix, times, skip))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(armed.remaining for armed in self._faults)

    def clock(self) -> dt.datetime:
        return self.now or clock.now()

    def today(self) -> dt.date:
        """The clock's New York date: what split-adjusted prices are adjusted to."""
        return self.clock().astimezone(NEW_YORK).date()

    # --- for subclasses ---

    def route(self, request: RecordedRequest, fault: Fault | None) -> Reply:
        """The answer to `request`; `fault` is a provider-specific fault to apply, or None."""
        raise NotImplementedError

    def error_reply(self, status: int, message: str) -> Reply:
        """An error in the provider's own format."""
        return Reply.json({"error": message}, status)

    # --- internals ---

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def _take_fault(self, path: str) -> Fault | None:
        for armed in self._faults:
            if not path.startswith(armed.path_prefix):
                continue
            if armed.skip > 0:
                armed.skip -= 1
                return None
            armed.remaining -= 1
            if armed.remaining <= 0:
                self._faults.remove(armed)
            return armed.fault
        return None

    def _over_rate_limit(self, now: float) -> float | None:
        """Seconds until a slot frees up when this call is over the limit, else None."""
        if self.rate_limit is None:
            return None
        calls, window = self.rate_limit
        while self._recent and self._recent[0] <= now - window:
            self._recent.popleft()
        if len(self._recent) >= calls:
            return self._recent[0] + window - now
        self._recent.append(now)
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        request = RecordedRequest(
            monotonic=time.monotonic(),
            wall=dt.datetime.now(dt.UTC),
            method=handler.command,
            target=handler.path,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in handler.headers.items()},
        )
        with self._lock:
            self._requests.append(request)
            # A call refused by the rate limit never reached the provider: no fault used up.
            wait = self._over_rate_limit(request.monotonic)
            fault = self._take_fault(split.path) if wait is None else None
        if wait is not None:
            reply = self.error_reply(429, "rate limit exceeded")
            reply.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        elif fault is not None and fault.kind == "reset":
            return  # close without a word
        elif fault is not None and fault.kind in _EARLY_FAULTS:
            reply = self.error_reply(fault.status, f"emulated HTTP {fault.status}")
            if fault.retry_after is not None:
                reply.headers["Retry-After"] = fault.retry_after
        else:
            try:
                reply = self.route(request, fault)
            except Exception:
                self._record_error(traceback.format_exc())
                reply = Reply.text("emulator error", 500)
        body = reply.body
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.delay)
        if fault is not None and fault.kind == "malformed_json":
            body = body[: len(body) // 2]
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if fault is not None and fault.kind == "truncated":
                body = body[: len(body) // 2]  # Content-Length promised the whole body
            handler.wfile.write(body)
        except (ConnectionError, TimeoutError):
            pass  # the client already hung up (timeout tests)
