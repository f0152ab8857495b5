"""Backfill while the application writes, resuming after an interruption; time travel and
audited restore on captured tables; the `pyes capture` commands."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from test_capture import USERS, _now, assert_history_matches_table, events

from pyes import InvalidCaptureOption, InvalidRowKey, NothingToRestore, RestoreNeedsReason
from pyes import capture as cap
from pyes.cli import main


@pytest.fixture
def db(connect: Any) -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] = connect(autocommit=True)
    conn.execute(USERS)
    return conn


def assert_every_history_is_well_formed(conn: psycopg.Connection[Any], prefix: str) -> None:
    """Each stream: at most one RowImported, and only as its first event; creations only when
    the row is absent; updates and deletes only when it exists."""
    rows = conn.execute("SELECT stream_id, type FROM pyes.events WHERE category = %s ORDER BY stream_id, version",
                        (prefix,)).fetchall()
    alive: dict[str, bool] = {}
    imports: Counter[str] = Counter()
    for stream, kind in rows:
        exists = alive.get(stream)
        if kind == "RowImported":
            assert exists is None, f"{stream}: RowImported after other events"
            imports[stream] += 1
            alive[stream] = True
        elif kind == "RowCreated":
            assert not exists, f"{stream}: RowCreated of a row that exists"
            alive[stream] = True
        else:
            assert exists, f"{stream}: {kind} before the row's history started"
            alive[stream] = kind != "RowDeleted"
    assert all(n == 1 for n in imports.values())


def test_backfill_imports_each_row_once_in_resumable_batches(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO users (email, password_hash) SELECT 'u' || i || '@x', 'h' || i FROM generate_series(1, 250) i")
    cap.add(db, "users", exclude=["password_hash"])
    # An interrupted backfill: two batches committed, then the process died.
    for _ in range(2):
        assert db.execute("SELECT imported, done FROM pyes.capture_backfill_batch('users', 100)").fetchone() == (100, False)
    assert cap.list_tables(db)[0].backfill == 'after {"id": 200}'
    seen: list[tuple[int, int]] = []
    result = cap.backfill(db, "users", batch_size=30, progress=lambda done, total: seen.append((done, total)))
    assert (result.imported, result.skipped) == (50, 0)
    assert seen[-1] == (50, 50)
    assert db.execute("SELECT count(*), count(DISTINCT stream_id) FROM pyes.events WHERE type = 'RowImported'").fetchone() == (250, 250)
    assert "h1" not in json.dumps([r[3] for r in events(db)])
    # Done is done: running it again imports nothing.
    assert cap.backfill(db, "users").imported == 0
    listed = cap.list_tables(db)[0]
    assert (listed.backfill, listed.imported) == ("done", 250)
    assert_history_matches_table(db, "users", excluded=("password_hash",))
    with pytest.raises(psycopg.Error) as caught:
        db.execute("SELECT * FROM pyes.capture_backfill_batch('users', 0)")
    assert caught.value.sqlstate == "PE503"


def test_backfill_while_the_application_writes(db: psycopg.Connection[Any], connect: Any) -> None:
    rows = 2000
    db.execute("INSERT INTO users (id, email) SELECT i, 'u' || i || '@x' FROM generate_series(1, %s) i", (rows,))
    cap.add(db, "users")
    started = threading.Event()
    finished = threading.Event()
    writes = Counter[str]()
    failures: list[BaseException] = []

    def application() -> None:
        conn = connect(autocommit=True)
        rng = random.Random(7)
        next_id = rows + 1
        try:
            started.wait(30)
            while not finished.is_set() or writes["total"] < 300:
                key = rng.randrange(1, next_id)
                action = rng.random()
                try:
                    with conn.transaction():
                        if action < 0.45:
                            conn.execute("UPDATE users SET name = %s, active = NOT active WHERE id = %s", (f"n{writes['total']}", key))
                        elif action < 0.60:
                            conn.execute("DELETE FROM users WHERE id = %s", (key,))
                        elif action < 0.80:
                            conn.execute("INSERT INTO users (id, email) VALUES (%s, 'new@x')", (next_id,))
                            next_id += 1
                        elif action < 0.90:
                            # Two rows in one transaction, one of them not yet backfilled.
                            conn.execute("UPDATE users SET name = 'pair' WHERE id IN (%s, %s)", (key, rows - key % 100))
                        else:
                            conn.execute("UPDATE users SET id = %s WHERE id = %s", (next_id, key))
                            next_id += 1
                    writes["total"] += 1
                except psycopg.errors.SerializationFailure:
                    writes["retried"] += 1  # the younger-writer refusal of pyes.append: the app retries
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    writer = threading.Thread(target=application)
    writer.start()
    during: list[int] = []

    def progress(done: int, total: int) -> None:
        started.set()
        during.append(writes["total"])
        time.sleep(0.01)  # leave the application room to write between batches

    try:
        result = cap.backfill(connect(autocommit=True), "users", batch_size=50, progress=progress,
                              lock_timeout_ms=200)
    finally:
        finished.set()
        writer.join(60)
    assert not failures, failures
    assert during[-1] - during[0] >= 20, "the application did not write during the backfill"
    assert result.imported + result.skipped >= 1
    assert_every_history_is_well_formed(db, "users")
    assert_history_matches_table(db, "users")
    # Every row that exists has a history, and every pre-existing row was imported at most once.
    missing = db.execute("SELECT count(*) FROM users u WHERE NOT EXISTS "
                         "(SELECT 1 FROM pyes.streams s WHERE s.stream_id = 'users-' || u.id)").fetchone()
    assert missing == (0,)


def test_backfill_waits_for_a_transaction_holding_a_row(db: psycopg.Connection[Any], connect: Any) -> None:
    db.execute("INSERT INTO users (id, email) SELECT i, 'u' || i || '@x' FROM generate_series(1, 30) i")
    cap.add(db, "users")
    app = connect()
    app.execute("UPDATE users SET name = 'held' WHERE id = 5")  # open transaction: its trigger imported row 5
    result: list[cap.BackfillResult] = []
    worker = threading.Thread(target=lambda: result.append(
        cap.backfill(connect(autocommit=True), "users", batch_size=10, lock_timeout_ms=100)))
    worker.start()
    time.sleep(0.6)
    assert worker.is_alive()  # waiting for row 5, retrying batch 1
    app.commit()
    worker.join(30)
    (done,) = result
    assert done.retries >= 1
    assert (done.imported, done.skipped) == (29, 1)
    assert [r[2] for r in events(db, "users-5")] == ["RowImported", "RowUpdated"]
    assert_every_history_is_well_formed(db, "users")
    assert_history_matches_table(db, "users")


def test_time_travel_on_a_captured_table(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO users (id, email, name) VALUES (1, 'ann@x', 'Ann'), (2, 'bob@x', 'Bob')")
    cap.add(db, "users", exclude=["password_hash"])
    cap.backfill(db, "users")
    t_imported = _now(db)
    db.execute("UPDATE users SET active = false, password_hash = 'h' WHERE id = 1")
    db.execute("INSERT INTO users (id, email) VALUES (3, 'cy@x')")
    t_tuesday = _now(db)
    db.execute("DELETE FROM users WHERE id = 2")
    db.execute("UPDATE users SET name = 'Ann Lee' WHERE id = 1")

    assert cap.row_at(db, "users", 1, t_imported) == {"id": 1, "email": "ann@x", "name": "Ann", "active": True, "api_token": None}
    assert cap.row_at(db, "users", {"id": 1}, t_tuesday)["active"] is False  # type: ignore[index]
    assert cap.row_at(db, "users", "1", _now(db))["name"] == "Ann Lee"  # type: ignore[index]
    assert cap.row_at(db, "users", 2, _now(db)) is None
    assert cap.row_at(db, "users", 3, t_imported) is None
    # "Which users were active at that moment" is one query.
    active = db.execute("SELECT u.id FROM pyes.capture_rows_at('users', %s) r, jsonb_populate_record(NULL::users, r) u"
                        " WHERE u.active ORDER BY u.id", (t_tuesday,)).fetchall()
    assert active == [(2,), (3,)]
    assert [r["id"] for r in cap.rows_at(db, "users", t_imported)] == [1, 2]
    history = cap.history(db, "users", 1)
    assert [(h.version, h.type, h.changes) for h in history] == [
        (1, "RowImported", {"id": {"old": None, "new": 1}, "email": {"old": None, "new": "ann@x"},
                            "name": {"old": None, "new": "Ann"}, "active": {"old": None, "new": True},
                            "api_token": {"old": None, "new": None}}),
        (2, "RowUpdated", {"active": {"old": True, "new": False}}),
        (3, "RowUpdated", {"name": {"old": "Ann", "new": "Ann Lee"}}),
    ]
    assert history[-1].state == {"id": 1, "email": "ann@x", "name": "Ann Lee", "active": False, "api_token": None}
    assert [h.type for h in cap.history(db, "users", 2)] == ["RowImported", "RowDeleted"]
    assert cap.history(db, "users", 2)[-1].state is None
    for bad in ({"uid": 1}, {"id": 1, "email": "x"}, [1, 2], None):
        with pytest.raises(InvalidRowKey):
            cap.row_at(db, "users", bad, t_imported)
    with pytest.raises(InvalidCaptureOption):
        cap.rows_at(db, "users", None)  # type: ignore[arg-type]


def test_restore_is_an_audited_change(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO users (id, email, name, password_hash) VALUES (1, 'ann@x', 'Ann', 'h1'), (2, 'bob@x', 'Bob', 'h2')")
    cap.add(db, "users", exclude=["password_hash"])
    cap.backfill(db, "users")
    good = _now(db)
    with cap.audit(db, actor="script:bulk-fix"):
        db.execute("UPDATE users SET name = 'WRONG', active = false")
    db.execute("UPDATE users SET password_hash = 'h1-new' WHERE id = 1")
    db.execute("DELETE FROM users WHERE id = 2")

    assert cap.restore(db, "users", 1, good, reason="undo bulk fix", actor="support:lena") == "updated"
    assert cap.restore(db, "users", 2, good, reason="deleted by mistake", actor="support:lena") == "inserted"
    assert cap.restore(db, "users", 1, good, reason="again", actor="support:lena") == "unchanged"
    rows = db.execute("SELECT id, name, active, password_hash FROM users ORDER BY id").fetchall()
    assert rows == [(1, "Ann", True, "h1-new"), (2, "Bob", True, None)]  # excluded columns are not restored
    restored = events(db, "users-1")[-1]
    assert restored[2] == "RowUpdated"
    assert restored[3]["changes"] == {"name": {"old": "WRONG", "new": "Ann"}, "active": {"old": False, "new": True}}
    assert restored[4]["actor"] == "support:lena" and restored[4]["reason"] == "undo bulk fix"
    assert datetime.fromisoformat(restored[4]["restored_to"]) == good
    reinserted = events(db, "users-2")[-1]
    assert (reinserted[2], reinserted[4]["reason"]) == ("RowCreated", "deleted by mistake")
    # The caller's own settings are left as they were.
    assert db.execute("SELECT coalesce(current_setting('pyes.reason', true), '')").fetchone() == ("",)
    # An actor from the session setting is enough.
    with cap.audit(db, actor="support:omar"):
        assert cap.restore(db, "users", 1, _now(db), reason="no-op") == "unchanged"
    with pytest.raises(RestoreNeedsReason):
        cap.restore(db, "users", 1, good, reason=" ", actor="x")
    with pytest.raises(RestoreNeedsReason):
        cap.restore(db, "users", 1, good, reason="why")
    with pytest.raises(NothingToRestore):
        cap.restore(db, "users", 3, good, reason="why", actor="x")
    db.execute("INSERT INTO users (id, email) VALUES (3, 'cy@x')")
    with pytest.raises(NothingToRestore):  # row 3 did not exist yet then
        cap.restore(db, "users", 3, good, reason="why", actor="x")


def test_cli_capture_commands(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO users (email, password_hash) SELECT 'u' || i || '@x', 'h' FROM generate_series(1, 12) i")
    runner = CliRunner()
    added = runner.invoke(main, ["capture", "add", "users", "-x", "password_hash", "-x", "api_token", "--format", "json", "--dsn", dsn])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)[0]["excluded_columns"] == ["api_token", "password_hash"]
    filled = runner.invoke(main, ["capture", "backfill", "users", "--batch-size", "5", "--no-progress", "--dsn", dsn])
    assert filled.exit_code == 0, filled.output
    assert "users: 12 rows imported, 0 already had history (3 batches, 0 retried)" in filled.stdout
    db.execute("UPDATE users SET name = 'Ann' WHERE id = 1")
    shown = runner.invoke(main, ["capture", "history", "users", "1", "--format", "jsonl", "--dsn", dsn])
    assert shown.exit_code == 0, shown.output
    assert [json.loads(line)["type"] for line in shown.stdout.splitlines()] == ["RowImported", "RowUpdated"]
    listed = runner.invoke(main, ["capture", "list", "--format", "json", "--dsn", dsn])
    assert [(t["table_name"], t["status"], t["backfill"]) for t in json.loads(listed.stdout)] == [("public.users", "active", "done")]
    removed = runner.invoke(main, ["capture", "remove", "users", "--dsn", dsn])
    assert removed.exit_code == 0 and "history is kept" in removed.stdout
    again = runner.invoke(main, ["capture", "remove", "users", "--dsn", dsn])
    assert again.exit_code == 6  # a pyes error (PE504)
    assert "TableNotCaptured [PE504]" in again.stderr
    nokey = runner.invoke(main, ["capture", "add", "pyes.streams_nope", "--dsn", dsn])
    assert nokey.exit_code == 1
