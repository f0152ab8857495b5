"""Which database a command talks to: ``--dsn``, then ``PYES_DATABASE_URL``, then libpq's
own ``PG*`` variables."""

from __future__ import annotations

import os

PG_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


class NoDatabaseConfigured(RuntimeError):
    """No --dsn, no PYES_DATABASE_URL and no PG* variable."""


def configured_dsn(dsn: str | None = None) -> str | None:
    """The connection string to use, or None when nothing is configured.

    An empty string is a valid answer: it means "libpq's defaults and PG* variables"."""
    if dsn is not None:
        return dsn
    env = os.environ.get("PYES_DATABASE_URL")
    if env:
        return env
    if any(os.environ.get(name) for name in PG_VARIABLES):
        return ""
    return None


def resolve_dsn(dsn: str | None = None) -> str:
    found = configured_dsn(dsn)
    if found is None:
        raise NoDatabaseConfigured(
            "no database configured: pass --dsn, or set PYES_DATABASE_URL or the PG* variables"
        )
    return found
