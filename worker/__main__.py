"""`python -m worker ...` is `pgbars ...`."""

from worker.main import cli

cli(prog_name="pgbars")
