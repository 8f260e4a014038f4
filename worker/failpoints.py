"""Crash points for the fault tests: `PGBARS_FAILPOINT=<name>` kills the process there (SIGKILL).

Unset (always, outside tests) `hit` does nothing. The names: `after-claim`,
`during-reserve`, `during-fetch`, `during-copy`, `before-commit`
(tests/faults/test_chaos.py).
"""

from __future__ import annotations

import os
import signal

ENV = "PGBARS_FAILPOINT"


def hit(name: str) -> None:
    """Die at once, as `kill -9` would, when PGBARS_FAILPOINT names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
