"""The packaged SQL and alembic migrations.

In a source checkout they are the top-level ``sql/`` and ``migrations/`` folders; an installed
wheel carries them as ``pyes/_sql`` and ``pyes/_migrations``.
"""

from __future__ import annotations

import re
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(installed: str, source: str) -> Path:
    for candidate in (_PACKAGE / installed, _PACKAGE.parent / source):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pyes cannot find its {source}/ folder (looked in {_PACKAGE})")


def sql_dir() -> Path:
    return _find("_sql", "sql")


def migrations_dir() -> Path:
    return _find("_migrations", "migrations")


def install_files() -> list[Path]:
    """The SQL files that install the schema, in the order sql/install.sql includes them."""
    root = sql_dir()
    files = []
    for line in (root / "install.sql").read_text().splitlines():
        match = re.fullmatch(r"\\ir\s+(\S+)", line.strip())
        if match:
            files.append(root / match.group(1))
    return files


def install_sql() -> str:
    """The whole schema as one script (without psql's BEGIN/COMMIT: the caller owns the
    transaction)."""
    return "\n".join(path.read_text() for path in install_files())


def functions_sql(*only: str) -> str:
    """Function, trigger and view files in install order: all of them, or only those named.
    They are all CREATE OR REPLACE: each migration re-applies those that exist at its
    revision after its own table changes."""
    return "\n".join(
        path.read_text() for path in install_files()
        if path.parent.name == "functions" and (not only or path.name in only)
    )


def schema_sql(*names: str) -> str:
    """Table files by name (such as "002_streams.sql"): each runs once, in its migration."""
    return "\n".join((sql_dir() / "schema" / name).read_text() for name in names)
