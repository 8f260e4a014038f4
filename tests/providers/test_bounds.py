"""Every answer is bounded: its decoded size, its total time, Polygon's pages; and no answer at all
is told apart from a broken one. The real httpx client against hostile local servers."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from tests.providers.helpers import NO_PACE, POLYGON_KEY, chunk
from tests.providers.hostile import Exchange, HostileServer, gzip_bomb, send
from worker.providers import (
    Misconfigured,
    PolygonProvider,
    ProviderError,
    TransientError,
    Unreachable,
    YahooProvider,
)
from worker.providers.polygon import max_pages

D = dt.date
ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


class Answers:
    """A Pace that records what `answered` was told."""

    def __init__(self) -> None:
        self.answers: list[int | None] = []

    async def __call__(self) -> None:
        return None

    def answered(self, status: int | None) -> None:
        self.answers.append(status)


def _polygon(client: httpx.AsyncClient, base_url: str, **bounds: float) -> PolygonProvider:
    max_bytes = bounds.pop("max_bytes", None)
    return PolygonProvider(
        client,
        base_url,
        POLYGON_KEY,
        max_bytes=None if max_bytes is None else int(max_bytes),
        total_seconds=bounds.pop("total_seconds", None),
    )


def _page(results: list[dict[str, object]], next_url: str | None = None) -> bytes:
    body: dict[str, object] = {"status": "OK", "resultsCount": len(results), "results": results or None}
    if next_url is not None:
        body["next_url"] = next_url
    return json.dumps(body).encode()


_BAR: dict[str, object] = {
    "t": 1714564800000,
    "o": 1.0,
    "h": 2.0,
    "l": 0.5,
    "c": 1.5,
    "v": 100,
    "vw": 1.2,
    "n": 3,
}  # 08:00 NY
_EMPTY_DAY = _page([])

# --- size -------------------------------------------------------------------------------

# Runs in a subprocess of its own, so that its peak RSS is the fetch's and nothing else's.
_PROBE = """
import asyncio, json
import httpx
from tests.providers.helpers import NO_PACE, chunk
from tests.providers.hostile import HostileServer, gzip_bomb, send
from worker.providers import PolygonProvider
import datetime as dt

bomb = gzip_bomb(200 << 20)

def status_mib(field):
    # VmHWM, not getrusage's ru_maxrss: that one keeps the parent's size across fork and exec.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024

async def main():
    with HostileServer(send(bomb, Content_Encoding="gzip")) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            provider = PolygonProvider(client, server.base_url, "pk")
            before = status_mib("VmRSS")
            try:
                await provider.fetch(chunk("h1", dt.date(2024, 5, 1)), NO_PACE)
                error = None
            except Exception as exc:
                error = [type(exc).__name__, str(exc)]
            peak = status_mib("VmHWM")
    print(json.dumps({"wire": len(bomb), "before": before, "peak": peak, "error": error}))

asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    """About 200 KiB on the wire, 200 MiB inflated: refused past the 32 MiB cap, and the
    process grows by about the cap (measured: 37 MiB; reading it whole grew it by 417 MiB)."""
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert probe.returncode == 0, probe.stderr
    measured = json.loads(probe.stdout)

    assert measured["wire"] < 300 * 1024
    assert measured["error"] == ["ProviderError", "polygon: answer larger than 32 MiB, abandoned"]
    growth = measured["peak"] - measured["before"]
    assert growth < 64, f"the fetch grew the process by {growth:.0f} MiB"


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
async def test_an_answer_over_the_cap_is_a_permanent_provider_error(
    client: httpx.AsyncClient, encoding: str
) -> None:
    body = b'{"status": "OK", "pad": "' + b" " * (2 * MIB) + b'"}'
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    with HostileServer(send(body, Content_Encoding=encoding)) as server:
        pace = Answers()
        with pytest.raises(ProviderError) as raised:
            await _polygon(client, server.base_url, max_bytes=MIB).fetch(chunk("d1", D(2024, 5, 1)), pace)

    assert type(raised.value) is ProviderError and raised.value.kind == "permanent"
    assert str(raised.value) == "polygon: answer larger than 1 MiB, abandoned"
    assert pace.answers == [200]


async def test_an_answer_without_content_length_is_counted_as_it_comes(client: httpx.AsyncClient) -> None:
    def stream(exchange: Exchange) -> None:
        exchange.head(200, {"Content-Type": "application/json"})  # HTTP/1.0: the body ends at close
        for _ in range(64):
            exchange.write(b" " * 65536)

    with HostileServer(stream) as server, pytest.raises(ProviderError, match="larger than 1 MiB"):
        await _polygon(client, server.base_url, max_bytes=MIB).fetch(chunk("d1", D(2024, 5, 1)), NO_PACE)


async def test_a_huge_error_answer_is_cut_not_refused(client: httpx.AsyncClient) -> None:
    """The status is the answer: a 503 with 40 MiB of body is still a transient HTTP 503."""
    body = gzip_bomb(40 << 20)
    server = HostileServer(send(body, 503, Content_Encoding="gzip"))
    with server, pytest.raises(TransientError, match="HTTP 503") as raised:
        await _polygon(client, server.base_url).fetch(chunk("d1", D(2024, 5, 1)), NO_PACE)
    assert type(raised.value) is TransientError


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda b: (b, "identity"), id="identity"),
        pytest.param(lambda b: (gzip.compress(b), "gzip"), id="gzip"),
        pytest.param(lambda b: (gzip.compress(b[:9]) + gzip.compress(b[9:]), "gzip"), id="gzip-two-members"),
        pytest.param(lambda b: (zlib.compress(b), "deflate"), id="deflate"),
        pytest.param(
            lambda b: ((lambda z: z.compress(b) + z.flush())(zlib.compressobj(wbits=-15)), "deflate"),
            id="raw-deflate",
        ),
    ],
)
async def test_compressed_answers_are_read_whole(client: httpx.AsyncClient, encode: object) -> None:
    assert callable(encode)
    body, encoding = encode(_page([_BAR]))
    with HostileServer(send(body, Content_Encoding=encoding)) as server:
        result = await _polygon(client, server.base_url).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
        sent = server.headers[0]
    assert [bar.close for bar in result.bars] == [1.5]
    assert sent["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("body", "encoding", "match"),
    [
        (
            gzip.compress(_page([_BAR]))[:-20],
            "gzip",
            "could not be decoded .the compressed stream ends early",
        ),
        (
            b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 30,
            "gzip",
            "could not be decoded .Error -3 while decompressing data: invalid block type",
        ),
        (b"whatever", "br", "encoding pgbars did not ask for"),
    ],
    ids=["truncated", "corrupt", "not-asked-for"],
)
async def test_an_answer_that_cannot_be_decoded_is_transient(
    client: httpx.AsyncClient, body: bytes, encoding: str, match: str
) -> None:
    server = HostileServer(send(body, Content_Encoding=encoding))
    with server, pytest.raises(TransientError, match=match):
        await _polygon(client, server.base_url).fetch(chunk("d1", D(2024, 5, 1)), NO_PACE)


# --- time -------------------------------------------------------------------------------


def _drip(exchange: Exchange) -> None:
    """A status line at once, then a byte every 0.1 s for 20 s: no single read ever times out."""
    exchange.head(200, {"Content-Type": "application/json", "Content-Length": "200"})
    for _ in range(200):
        exchange.write(b" ")
        if exchange.wait(0.1):
            return


async def test_a_dripping_body_is_cut_off_at_the_total_bound(client: httpx.AsyncClient) -> None:
    with HostileServer(_drip) as server:
        provider = _polygon(client, server.base_url, total_seconds=1.0)
        pace = Answers()
        started = time.monotonic()
        with pytest.raises(TransientError) as raised:
            await provider.fetch(chunk("d1", D(2024, 5, 1)), pace)
        took = time.monotonic() - started

    assert type(raised.value) is TransientError and raised.value.kind == "transient"
    assert str(raised.value) == "polygon: answer not complete within 1 s, abandoned"
    assert 0.9 < took < 3.0
    assert pace.answers == [200]


async def test_no_status_line_within_the_total_bound_is_unreachable(client: httpx.AsyncClient) -> None:
    def silent(exchange: Exchange) -> None:
        exchange.wait(20)

    with HostileServer(silent) as server:
        pace = Answers()
        started = time.monotonic()
        with pytest.raises(Unreachable, match=r"no answer within 0\.5 s") as raised:
            await _polygon(client, server.base_url, total_seconds=0.5).fetch(chunk("d1", D(2024, 5, 1)), pace)
    assert time.monotonic() - started < 2.5
    assert raised.value.kind == "unreachable"
    assert pace.answers == [None]


async def test_the_total_bound_defaults_to_a_minute(client: httpx.AsyncClient) -> None:
    assert YahooProvider(client, "http://127.0.0.1:9", None).total_seconds == 60.0
    assert YahooProvider(client, "http://127.0.0.1:9", None, total_seconds=5).total_seconds == 5


# --- pages ------------------------------------------------------------------------------


def test_the_page_bound_follows_the_chunk() -> None:
    assert max_pages(chunk("d1", D(2024, 5, 1))) == 3  # one session, plus two spares
    assert max_pages(chunk("h1", D(2024, 5, 1))) == 17 + 2  # 04:00-20:00: 16 hours, 17 slots
    assert max_pages(chunk("m1", D(2024, 5, 1))) == 961 + 2
    assert max_pages(chunk("w1", D(2024, 4, 29), D(2024, 5, 10))) == 2 + 2
    # a 52-session h1 chunk, as seeded: about 880 pages at most, whatever the page size
    assert 850 < max_pages(chunk("h1", D(2024, 1, 2), D(2024, 3, 14))) < 900


async def test_a_next_url_that_repeats_is_cut_at_once(client: httpx.AsyncClient) -> None:
    def loop(exchange: Exchange) -> None:
        send(_page([_BAR], next_url=f"{base}/v2/aggs/again?cursor=same"))(exchange)

    with HostileServer(loop) as server:
        base = server.base_url
        with pytest.raises(ProviderError) as raised:
            await _polygon(client, base).fetch(chunk("h1", D(2024, 5, 1)), NO_PACE)
        pages = len(server.targets)

    assert type(raised.value) is ProviderError and raised.value.kind == "permanent"
    assert str(raised.value) == "polygon: next_url repeats itself after 2 pages, abandoned"
    assert pages == 2


async def test_a_next_url_chain_that_never_ends_is_cut_at_the_chunks_bound(client: httpx.AsyncClient) -> None:
    counter = iter(range(1_000_000))

    def endless(exchange: Exchange) -> None:
        send(_page([], next_url=f"{base}/v2/aggs/more?cursor={next(counter)}"))(exchange)

    request = chunk("d1", D(2024, 5, 1))
    with HostileServer(endless) as server:
        base = server.base_url
        with pytest.raises(ProviderError) as raised:
            await _polygon(client, base).fetch(request, NO_PACE)
        pages = len(server.targets)

    assert type(raised.value) is ProviderError
    assert str(raised.value) == "polygon: more than 3 pages for 1 session of d1, abandoned"
    assert pages == max_pages(request) == 3


# --- no answer at all -------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_closed_port_is_unreachable(client: httpx.AsyncClient) -> None:
    pace = Answers()
    with pytest.raises(Unreachable, match="unreachable, connection failed") as raised:
        await _polygon(client, f"http://127.0.0.1:{_closed_port()}").fetch(chunk("d1", D(2024, 5, 1)), pace)
    assert raised.value.kind == "unreachable"
    assert pace.answers == [None]


async def test_a_connection_closed_before_the_status_line_is_unreachable(client: httpx.AsyncClient) -> None:
    def hang_up(exchange: Exchange) -> None:
        exchange.handler.close_connection = True

    with HostileServer(hang_up) as server, pytest.raises(Unreachable):
        await _polygon(client, server.base_url).fetch(chunk("d1", D(2024, 5, 1)), NO_PACE)


@pytest.mark.parametrize(
    ("base_url", "calls"),
    [
        ("htp://api.polygon.io", 0),
        ("localhost:9", 0),
        ("http://127.0.0.1:99999", 0),
        ("http://api.polygon.io\x00x", 1),  # only httpx finds this one: InvalidURL
    ],
)
async def test_a_base_url_that_cannot_be_used_is_refused_at_request_time(
    client: httpx.AsyncClient, base_url: str, calls: int
) -> None:
    """The guards behind build_providers': the worker stops using the provider, the lease is
    given back. A URL the provider can tell is unusable costs no call at all."""
    pace = Answers()
    with pytest.raises(Misconfigured) as raised:
        await _polygon(client, base_url).fetch(chunk("d1", D(2024, 5, 1)), pace)
    assert raised.value.kind == "refused"
    assert "POLYGON_BASE_URL" in str(raised.value) and "polygon.io" not in str(raised.value)
    assert pace.answers == [None] * calls
