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


def _manifest() -> tuple[list[str], list[tuple[str, Path]]]:
    """The revisions sql/install.sql names, and (revision, file) for each file it includes, in
    its order: a "-- revision: X" line names the alembic revision that introduces the files
    below it (a revision may introduce none and only re-apply the function files)."""
    root = sql_dir()
    revisions: list[str] = []
    files = []
    for line in (root / "install.sql").read_text().splitlines():
        marker = re.fullmatch(r"--\s*revision:\s*(\S+)", line.strip())
        if marker:
            revisions.append(marker.group(1))
        match = re.fullmatch(r"\\ir\s+(\S+)", line.strip())
        if match:
            files.append((revisions[-1] if revisions else "", root / match.group(1)))
    return revisions, files


def install_files() -> list[Path]:
    """The SQL files that install the schema, in the order sql/install.sql includes them."""
    return [path for _revision, path in _manifest()[1]]


def install_sql() -> str:
    """The whole schema as one script (without psql's BEGIN/COMMIT: the caller owns the
    transaction)."""
    return "\n".join(path.read_text() for path in install_files())


def revision_sql(revision: str) -> str:
    """What alembic revision REVISION runs: its own table files (once), then every function
    file introduced up to and including it, in install order. Function files are all CREATE
    OR REPLACE, so re-applying those of earlier revisions brings them up to date."""
    known, manifest = _manifest()
    if revision not in known:
        raise ValueError(f"sql/install.sql has no '-- revision: {revision}' section")
    tables = [p for rev, p in manifest if rev == revision and p.parent.name == "schema"]
    functions = [p for rev, p in manifest if rev <= revision and p.parent.name == "functions"]
    return "\n".join(path.read_text() for path in tables + functions)
