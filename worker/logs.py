"""The log lines of `pgbars work` and `pgbars demo`: one line each, UTC timestamps, on stderr."""

from __future__ import annotations

import logging
import sys
import time


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def to_stderr(debug: bool) -> None:
    """Send the `pgbars` loggers to stderr, at DEBUG with --debug, else INFO."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("pgbars")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
    # psycopg's pool warns once per connection it drops or fails to open: a database
    # restart would print a dozen lines. The cause reaches pgbars' own log as the error
    # raised (serve: one `database_unavailable` line per try, with it). The pool's errors
    # are printed in pgbars' format, and with --debug its warnings too.
    pool = logging.getLogger("psycopg.pool")
    pool.handlers[:] = [handler]
    pool.setLevel(logging.WARNING if debug else logging.ERROR)
    pool.propagate = False
