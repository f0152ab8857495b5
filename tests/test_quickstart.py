"""The README's quickstart on a fresh copy of the project: `make demo` creates its own virtual
environment, installs the project into it and runs the bank story. (`make test` is what runs
this test, so it is not run again from here.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_make_demo_on_a_fresh_copy(tmp_path: Path, empty_dsn: str) -> None:
    copy = tmp_path / "pyes"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=False, capture_output=True)
    if listed.returncode == 0 and listed.stdout:  # a checkout: exactly the tracked files
        for name in filter(None, listed.stdout.decode().split("\0")):
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / name).is_file():
                shutil.copy2(REPO / name, target)
    else:  # an unpacked archive: everything but what a run leaves behind
        shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache",
            ".hypothesis", "dist", "build"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYES_TEST_DSN")}
    env["PYES_DATABASE_URL"] = make_conninfo(**conninfo_to_dict(empty_dsn))
    result = subprocess.run(["make", "demo", f"PYTHON={sys.executable}"], cwd=copy, env=env, check=False,
                            capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (copy / ".venv" / "bin" / "python").exists()
    assert "Done." in result.stdout and "$rewind" in result.stdout
