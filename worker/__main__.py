"""`python -m worker ...` is `pgbars ...`."""

from .main import cli

cli(prog_name="pgbars")
