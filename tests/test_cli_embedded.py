"""The embedded database: what commands use when no database is configured, and
``pyes embedded status|start|stop|uri|destroy``.

Each test has its own PYES_EMBEDDED_DIR under tmp_path, with PYES_DATABASE_URL and the PG*
variables removed, and its fixture stops the server at the end: no server outlives the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from pyes import embedded_db, migrate
from pyes.cli import main
from pyes.dsn import PG_VARIABLES


def _clear_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYES_DATABASE_URL", raising=False)
    for name in PG_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def embedded_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _clear_configuration(monkeypatch)
    folder = tmp_path / "embedded"
    monkeypatch.setenv("PYES_EMBEDDED_DIR", str(folder))
    yield folder
    embedded_db.stop(folder)


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def status() -> dict[str, Any]:
    rows = json.loads(ok(invoke("embedded", "status", "--format", "json")).stdout)
    assert isinstance(rows, list) and len(rows) == 1
    row: dict[str, Any] = rows[0]
    return row


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`pyes ARGS` in a process of its own (same environment)."""
    return subprocess.run(
        [sys.executable, "-c", "from pyes.cli import main; main()", *args],
        check=False, capture_output=True, text=True, timeout=90, env=dict(os.environ),
    )


@pytest.mark.timeout(120)
def test_start_reuse_stop_start_destroy(embedded_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = migrate.head()

    before = status()
    assert before["running"] is False and before["initialized"] is False
    assert before["folder"] == str(embedded_dir) and before["uri"] is None and before["used_by_default"] is True
    assert not embedded_dir.exists()  # status starts nothing

    started = ok(invoke("embedded", "start"))
    uri = started.stdout.strip()
    assert started.stdout == uri + "\n" and uri.startswith("postgresql://")
    assert "creating the embedded database" in started.stderr
    assert (embedded_dir / embedded_db.MARKER).is_file()

    running = status()
    assert running["running"] is True and running["initialized"] is True
    assert running["uri"] == uri and running["schema_revision"] == head
    assert running["postgres_version"] and isinstance(running["pid"], int)
    pid = running["pid"]
    with psycopg.connect(uri) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None and Path(row[0]).resolve() == (embedded_dir / "data").resolve()
        conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")

    table = ok(invoke("embedded", "status"))
    assert "running" in table.stdout and "True" in table.stdout and head in table.stdout

    again = ok(invoke("embedded", "start"))
    assert again.stdout == uri + "\n" and "already running" in again.stderr

    printed = ok(invoke("embedded", "uri"))
    assert printed.stdout == uri + "\n"

    current = ok(invoke("db", "current"))
    assert current.stdout.strip() == head
    assert f"using the embedded database ({uri})" in current.stderr

    # Another process finds the same server running and reuses it.
    other = in_process("embedded", "status", "--format", "json")
    assert other.returncode == 0, other.stderr
    seen = json.loads(other.stdout)[0]
    assert (seen["running"], seen["pid"], seen["uri"]) == (True, pid, uri)
    other = in_process("embedded", "uri")
    assert other.returncode == 0, other.stderr
    assert other.stdout == uri + "\n"
    other = in_process("db", "current")
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == head and uri in other.stderr
    assert status()["pid"] == pid

    # `embedded uri` is about the embedded database even when another one is configured.
    monkeypatch.setenv("PYES_DATABASE_URL", "postgresql://nowhere.invalid/db")
    printed = ok(invoke("embedded", "uri"))
    assert printed.stdout == uri + "\n" and "other commands do not use the embedded database" in printed.stderr
    assert status()["used_by_default"] is False
    monkeypatch.delenv("PYES_DATABASE_URL")

    # A schema below pyes's head is migrated by the next command.
    migrate.downgrade(uri, "base")
    current = ok(invoke("db", "current"))
    assert current.stdout.strip() == head and "migrated the embedded database from base" in current.stderr

    stopped = ok(invoke("embedded", "stop"))
    assert "stopped" in stopped.stdout
    assert "not running" in ok(invoke("embedded", "stop")).stdout  # stopping twice is fine
    down = status()
    assert down["running"] is False and down["pid"] is None and down["uri"] is None
    assert down["initialized"] is True and down["schema_revision"] is None and down["postgres_version"]

    restarted = ok(invoke("embedded", "start"))
    assert restarted.stdout == uri + "\n" and "starting the embedded database" in restarted.stderr
    up = status()
    assert up["running"] is True and up["schema_revision"] == head and up["pid"] != pid
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]  # the data survived

    destroyed = ok(invoke("embedded", "destroy", "--yes"))
    assert "deleted" in destroyed.stdout
    assert not embedded_dir.exists()
    gone = status()
    assert gone["running"] is False and gone["initialized"] is False
    assert "nothing to destroy" in ok(invoke("embedded", "destroy", "--yes")).stdout


@pytest.mark.timeout(120)
def test_destroy_asks_first(embedded_dir: Path) -> None:
    uri = ok(invoke("embedded", "start")).stdout.strip()

    declined = invoke("embedded", "destroy", input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "not confirmed" in declined.stderr and "Traceback" not in declined.output
    assert (embedded_dir / "data" / "PG_VERSION").exists()
    assert status()["running"] is True

    unanswered = invoke("embedded", "destroy", input="")  # end of input: no answer is a no
    assert unanswered.exit_code == 1, unanswered.output
    assert (embedded_dir / "data" / "PG_VERSION").exists()
    with psycopg.connect(uri) as conn:
        conn.execute("SELECT 1")

    confirmed = ok(invoke("embedded", "destroy", input="y\n"))
    assert "deleted" in confirmed.stdout
    assert not embedded_dir.exists()


@pytest.mark.timeout(120)
def test_a_folder_pyes_did_not_create_is_neither_used_nor_deleted(embedded_dir: Path) -> None:
    embedded_dir.mkdir()
    (embedded_dir / "precious.txt").write_text("keep me")

    result = invoke("embedded", "destroy", "--yes")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("pyes: refusing to delete") and "Traceback" not in result.output
    assert (embedded_dir / "precious.txt").read_text() == "keep me"

    result = invoke("db", "current")
    assert result.exit_code == 1, result.output
    assert "is not a pyes embedded database folder" in result.stderr and "PYES_EMBEDDED_DIR" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(entry.name for entry in embedded_dir.iterdir()) == ["precious.txt"]

    # A pyes folder that someone put other files in is not deleted either.
    (embedded_dir / "precious.txt").unlink()
    ok(invoke("embedded", "start"))
    (embedded_dir / "notes.txt").write_text("mine")
    result = invoke("embedded", "destroy", "--yes")
    assert result.exit_code == 1, result.output
    assert "notes.txt" in result.stderr
    assert (embedded_dir / "notes.txt").exists() and (embedded_dir / "data").is_dir()
    assert status()["running"] is True


@pytest.mark.timeout(120)
def test_two_commands_at_once_share_one_server(embedded_dir: Path) -> None:
    command = [sys.executable, "-c", "from pyes.cli import main; main()", "db", "current"]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    outputs = [process.communicate(timeout=90) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
        assert out.strip() == migrate.head()
    running = status()
    assert running["running"] is True
    for _, err in outputs:
        assert f"using the embedded database ({running['uri']})" in err
    # The advisory lock lets exactly one of them migrate.
    assert sum("migrated the embedded database" in err for _, err in outputs) == 1


@pytest.mark.timeout(120)
def test_stop_and_status_without_a_database(embedded_dir: Path) -> None:
    assert "not running" in ok(invoke("embedded", "stop")).stdout
    row = status()
    assert row["running"] is False and row["initialized"] is False and row["postgres_version"] is None
    assert not embedded_dir.exists()


@pytest.mark.timeout(120)
def test_a_folder_with_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # macOS's data folder is ~/Library/Application Support: the socket then goes elsewhere.
    _clear_configuration(monkeypatch)
    folder = tmp_path / "Application Support" / "pyes"
    monkeypatch.setenv("PYES_EMBEDDED_DIR", str(folder))
    try:
        uri = ok(invoke("embedded", "uri")).stdout.strip()
        with psycopg.connect(uri) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
            assert row is not None and Path(row[0]).resolve() == (folder / "data").resolve()
        assert in_process("embedded", "uri").stdout == uri + "\n"
        ok(invoke("embedded", "destroy", "--yes"))
        assert not folder.exists()
    finally:
        embedded_db.stop(folder)
