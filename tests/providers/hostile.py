"""A local HTTP server that answers however a test says, for answers no emulator gives.

Gzip bombs, bodies that drip a byte at a time, a status line that never
comes, next_url chains that never end. Each test hands it an `answer`
function that writes the raw response onto the socket; the server records the
requests and stops its handler threads (a drip included) when it stops.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class Exchange:
    """One request as the answer function sees it: its target and headers, and the socket."""

    def __init__(self, handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        self.handler = handler
        self.target = handler.path
        self.headers = {name.lower(): value for name, value in handler.headers.items()}
        self.stopping = stopping

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.handler.send_response(status)
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self.handler.end_headers()
        self.handler.wfile.flush()

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def wait(self, seconds: float) -> bool:
        """Sleep; True when the server is stopping (the answer should end)."""
        return self.stopping.wait(seconds)


Answer = Callable[[Exchange], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 30

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        owner = server.owner
        exchange = Exchange(self, owner.stopping)
        with owner.lock:
            owner.targets.append(self.path)
            owner.headers.append(exchange.headers)
        with contextlib.suppress(
            ConnectionError, TimeoutError
        ):  # the client gave up: what these tests are about
            owner.answer(exchange)

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: HostileServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class HostileServer:
    """`with HostileServer(answer) as server:` a server at `server.base_url` answering with `answer`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.targets: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.stopping = threading.Event()
        self._httpd = _Server(self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of `inflated` zero bytes: about a thousandth of that on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(inflated >> 20)]
    parts.append(packer.compress(bytes(inflated % (1 << 20))))
    parts.append(packer.flush())
    return b"".join(parts)


def send(body: bytes, status: int = 200, **headers: str) -> Answer:
    """An answer function: `body` whole, with Content-Length and the given headers."""

    def answer(exchange: Exchange) -> None:
        names = {name.replace("_", "-"): value for name, value in headers.items()}
        exchange.head(status, {"Content-Type": "application/json", "Content-Length": str(len(body)), **names})
        exchange.write(body)

    return answer
