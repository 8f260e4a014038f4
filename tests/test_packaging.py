"""The wheel users install: built without a warning, carrying every SQL file, and `pgbars --version`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from click.testing import CliRunner

from worker.main import cli

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_builds_silently_and_ships_every_sql_file(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            tmp_path,
            ROOT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    output = build.stdout + build.stderr
    assert "warning" not in output.lower(), output
    assert "would be ignored" not in output, output
    (wheel,) = tmp_path.glob("pgbars_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    # one top-level package, named pgbars: a user's own `worker` module never collides with it
    assert {name.split("/")[0] for name in names if not name.startswith("pgbars_pipeline-")} == {"pgbars"}
    assert "pgbars/main.py" in names and "pgbars/db/queue.py" in names and "pgbars/py.typed" in names
    shipped = {name.removeprefix("pgbars/sql/") for name in names if name.startswith("pgbars/sql/")}
    expected = {path.relative_to(ROOT / "sql").as_posix() for path in (ROOT / "sql").rglob("*.sql")}
    assert expected, "no SQL files found in the checkout"
    assert expected == {name for name in shipped if name.endswith(".sql")}


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"pgbars {version('pgbars-pipeline')}\n"
