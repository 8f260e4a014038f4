"""The server a benchmark runs on: the one --dsn names, or a private embedded one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def postgres(dsn: str | None, name: str) -> Iterator[str]:
    """`dsn` as given, or the DSN of a private embedded server, stopped and deleted at the end."""
    if dsn:
        yield dsn
        return
    from worker.embedded import EmbeddedPostgres

    scratch = Path(tempfile.mkdtemp(prefix=f"pgbars-bench-{name}-"))
    server = EmbeddedPostgres(scratch / "postgres", delete_on_stop=True)
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
