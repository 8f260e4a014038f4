"""Hypothesis settings of the fault suite: reproducible in CI, nothing written into the repository.

Profiles (select one with HYPOTHESIS_PROFILE):
- `pgbars-ci` (default): derandomized, so every run tries the same examples and a
  failure reproduces by running the test again;
- `pgbars-explore`: random examples on each run; a failure prints the
  `@reproduce_failure(...)` decorator that replays it.

Neither keeps an example database (`database=None`), and Hypothesis's own cache
(Unicode tables) goes to the temporary directory instead of `.hypothesis/` in the
working directory, unless HYPOTHESIS_STORAGE_DIRECTORY says where.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "pgbars-hypothesis")

# Each test resets the database per example itself (a rolled-back transaction, or
# a DELETE before each CLI call), so a function-scoped fixture is safe to share.
_SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "pgbars-ci", derandomize=True, database=None, deadline=None, suppress_health_check=_SUPPRESSED
)
settings.register_profile(
    "pgbars-explore",
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,  # a failure prints the @reproduce_failure(...) that replays it
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pgbars-ci"))
