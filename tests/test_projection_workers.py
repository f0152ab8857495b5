"""Projection workers: one worker per projection at a time, crashes, wake-ups, SIGTERM, and
projections written in Python. Real processes and real connections; every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import settle
from test_projections import deposit, opened, state, withdrawal

from pyes import EventStore, NewEvent, Projections, ProjectionWorker, PythonProjection, RecordedEvent

# A projection that records every event it applies under a primary key: applying one twice
# fails (and stops the projection), so "exactly once" is checked by the database itself.
APPLIED_SQL = """
CREATE TABLE public.applied (event_id uuid PRIMARY KEY, position bigint NOT NULL, pid int NOT NULL);
CREATE FUNCTION public.apply_once(e pyes.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO applied VALUES (e.event_id, e.position, pg_backend_pid());
    IF (e.data ->> 'slow')::boolean THEN
        PERFORM pg_sleep(0.02);
    END IF;
END $$;
"""


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def applied_count(store: EventStore) -> int:
    with store.connection() as conn:
        row = conn.execute("SELECT count(*) FROM public.applied").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def once(store: EventStore) -> Projections:
    with store.connection() as conn:
        conn.execute(APPLIED_SQL)
    projections = Projections(store)
    projections.register("once", "public.apply_once(pyes.events)", tables=["applied"])
    return projections


def fill(store: EventStore, events: int, *, slow: bool = False, streams: int = 10) -> None:
    per_stream = events // streams
    for s in range(streams):
        store.append(f"item-{s}", [NewEvent("Noted", {"n": n, "slow": slow}) for n in range(per_stream)])


def worker_command(dsn: str, *args: str) -> list[str]:
    return [sys.executable, "-c", "from pyes.cli import main; main()", "projections", "run", "--dsn", dsn, *args]


def test_two_competing_workers_apply_each_event_once(once: Projections, store: EventStore) -> None:
    fill(store, 600)
    settle(store)
    workers = [ProjectionWorker(store, max_count=25, listen=False) for _ in range(2)]
    errors: list[BaseException] = []

    def run(worker: ProjectionWorker) -> None:
        try:
            worker.run_pending()
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert applied_count(store) == 600
    row = state(store, "once")
    assert (row.state, row.events_processed, row.lag_events) == ("running", 600, 0)
    with store.connection() as conn:
        pids = conn.execute("SELECT count(DISTINCT pid) FROM applied").fetchone()
    assert pids is not None and pids[0] >= 1
    assert sum(worker.batches for worker in workers) >= 600 // 25


def test_a_killed_worker_s_batch_is_redone_by_another(once: Projections, store: EventStore, dsn: str) -> None:
    fill(store, 400, slow=True)
    settle(store)
    crashing = subprocess.Popen(worker_command(dsn, "--batch", "100", "--no-listen", "--poll", "0.1"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(dsn, autocommit=True) as observer:
            # Mid-batch: the worker's backend is inside pyes.run_projection, some of its
            # writes made, none committed.
            def in_batch() -> bool:
                row = observer.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%%pyes.run_projection%%'"
                    " AND state = 'active' AND pid <> pg_backend_pid()").fetchone()
                return row is not None
            wait_for(in_batch, what="the worker to start a batch")
            time.sleep(0.3)
            crashing.kill()
            crashing.wait(timeout=30)
            # The machine died with it: its session goes too (PostgreSQL would notice the lost
            # client only when it next writes to it).
            observer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE query LIKE '%%pyes.run_projection%%' AND pid <> pg_backend_pid()")
    finally:
        if crashing.poll() is None:
            crashing.kill()
    done_before = applied_count(store)
    assert done_before < 400 and done_before % 100 == 0  # whole batches only
    assert state(store, "once").events_processed == done_before
    ProjectionWorker(store, max_count=100, listen=False).run_pending()
    assert applied_count(store) == 400
    assert state(store, "once").state == "running"


def test_a_notification_wakes_an_idle_worker(once: Projections, store: EventStore) -> None:
    worker = ProjectionWorker(store, poll_interval=120.0)  # polling alone would take two minutes
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.batches > 0, what="the first pass")
        time.sleep(0.2)  # now waiting on LISTEN
        store.append("item-1", [NewEvent("Noted", {"n": 1})])
        wait_for(lambda: applied_count(store) == 1, timeout=60, what="the woken worker to apply the event")
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_polling_catches_up_without_notifications(once: Projections, store: EventStore) -> None:
    worker = ProjectionWorker(store, poll_interval=0.1, listen=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.batches > 0, what="the first pass")
        store.append("item-1", [NewEvent("Noted", {"n": 1}), NewEvent("Noted", {"n": 2})])
        wait_for(lambda: applied_count(store) == 2, what="polling to catch up")
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_sigterm_lets_the_batch_commit_and_exits(once: Projections, store: EventStore, dsn: str) -> None:
    fill(store, 300, slow=True)
    settle(store)
    worker = subprocess.Popen(worker_command(dsn, "--batch", "50"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: applied_count(store) >= 50, what="a first batch")
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "projection worker stopped" in err
    done = applied_count(store)
    assert done < 300  # it stopped before the end
    assert state(store, "once").events_processed == done  # the checkpoint matches the writes
    ProjectionWorker(store, listen=False).run_pending()
    assert applied_count(store) == 300


# -- projections written in Python -------------------------------------------------------

class Ledger(PythonProjection):
    """Balances kept by Python code, rows keyed by stream (rewinds need no code)."""

    name = "ledger"
    event_types = ("AccountBalanceDeposited", "AccountBalanceWithdrawn")
    tables = ("ledger",)
    stream_column = "stream_id"

    def __init__(self, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.fail_on = fail_on
        self.delay = delay

    def handle(self, conn: psycopg.Connection[Any], event: RecordedEvent) -> None:
        amount = Decimal(event.data["amount"])
        if event.data["amount"] == self.fail_on:
            raise ValueError(f"refusing {amount}")
        sign = 1 if event.type == "AccountBalanceDeposited" else -1
        conn.execute("INSERT INTO ledger AS l VALUES (%s, %s) ON CONFLICT (stream_id)"
                     " DO UPDATE SET balance = l.balance + excluded.balance", (event.stream_id, sign * amount))
        if self.delay:
            time.sleep(self.delay)


LEDGER_SQL = "CREATE TABLE public.ledger (stream_id text PRIMARY KEY, balance numeric NOT NULL)"


@pytest.fixture
def ledger(store: EventStore) -> Projections:
    with store.connection() as conn:
        conn.execute(LEDGER_SQL)
    projections = Projections(store)
    projections.register_python(Ledger())
    return projections


def ledger_rows(store: EventStore) -> dict[str, Decimal]:
    with store.connection() as conn:
        return dict(conn.execute("SELECT stream_id, balance FROM ledger ORDER BY 1").fetchall())


def test_a_python_projection_applies_events_with_its_checkpoint(ledger: Projections, store: EventStore) -> None:
    store.append("account-1", [opened(), deposit("10.00"), withdrawal("4.00")])
    store.append("account-2", [deposit("1.00")])
    settle(store)
    assert ledger.status("ledger")[0].runner == "python"
    result = ledger.run_python_once(Ledger(), max_count=2)
    assert (result.processed, result.caught_up) == (2, False)
    result = ledger.run_python_once(Ledger(), max_count=2)
    assert (result.processed, result.caught_up) == (1, True)
    assert ledger_rows(store) == {"account-1": Decimal("6.00"), "account-2": Decimal("1.00")}
    assert ledger.run_python_once(Ledger()).processed == 0
    row = state(store, "ledger")
    assert (row.events_processed, row.lag_events) == (3, 0)


def test_a_python_handler_error_stops_it_at_that_event(ledger: Projections, store: EventStore) -> None:
    store.append("account-1", [deposit("1.00"), deposit("13.00"), deposit("2.00")])
    settle(store)
    result = ledger.run_python_once(Ledger(fail_on="13.00"))
    assert result.state == "failed"
    row = state(store, "ledger")
    assert row.state == "failed"
    assert row.last_error == "ValueError: refusing 13.00"
    with store.connection() as conn:
        failed = conn.execute("SELECT event_id FROM pyes.events WHERE data->>'amount' = '13.00'").fetchone()
    assert failed is not None and row.failed_event_id == failed[0]
    assert ledger_rows(store) == {}  # the batch's writes were rolled back with it
    ledger.resume("ledger")
    assert ledger.run_python_once(Ledger()).processed == 3
    assert ledger_rows(store) == {"account-1": Decimal("16.00")}


def test_a_python_projection_keyed_by_stream_follows_rewinds(ledger: Projections, store: EventStore) -> None:
    store.append("account-1", [opened(), deposit("10.00"), withdrawal("8.00")])
    store.rewind("account-1", 2, expected_version=3, reason="r", actor="a")
    store.append("account-1", [deposit("1.00")])
    settle(store)
    ledger.run_python_once(Ledger())
    assert ledger_rows(store) == {"account-1": Decimal("11.00")}


def test_a_python_projection_without_rewind_handling_is_marked(store: EventStore) -> None:
    class Counter(PythonProjection):
        name = "counter"

        def handle(self, conn: psycopg.Connection[Any], event: RecordedEvent) -> None:
            pass

    projections = Projections(store)
    projections.register_python(Counter())
    store.append("account-1", [opened(), deposit("1.00")])
    store.rewind("account-1", 1, expected_version=2, reason="r", actor="a")
    settle(store)
    projections.run_python_once(Counter())
    row = state(store, "counter")
    assert row.needs_rebuild and row.needs_rebuild_reason and "account-1" in row.needs_rebuild_reason


MODULE = textwrap.dedent('''
    import time
    from decimal import Decimal
    from pyes import PythonProjection

    class Ledger(PythonProjection):
        name = "ledger"
        event_types = ("AccountBalanceDeposited", "AccountBalanceWithdrawn")
        tables = ("ledger",)
        stream_column = "stream_id"

        def handle(self, conn, event):
            conn.execute("INSERT INTO ledger AS l VALUES (%s, %s) ON CONFLICT (stream_id)"
                         " DO UPDATE SET balance = l.balance + excluded.balance",
                         (event.stream_id, Decimal(event.data["amount"])))
            time.sleep(0.01)
''')


def test_a_killed_python_worker_loses_nothing_and_doubles_nothing(
        ledger: Projections, store: EventStore, dsn: str, tmp_path: Path) -> None:
    (tmp_path / "ledger_module.py").write_text(MODULE)
    for n in range(8):
        store.append(f"account-{n}", [deposit("1.00") for _ in range(50)])
    settle(store)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    crashing = subprocess.Popen(worker_command(dsn, "--module", "ledger_module:Ledger", "--batch", "100",
                                               "--no-listen"), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(dsn, autocommit=True) as observer:
            # Mid-batch: its transaction has written ledger rows and not committed.
            def in_batch() -> bool:
                row = observer.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                       " WHERE c.relname = 'ledger' AND l.mode = 'RowExclusiveLock'").fetchone()
                return bool(row and row[0])
            wait_for(in_batch, what="the worker to write")
            crashing.kill()  # its connection drops; PostgreSQL rolls the open transaction back
            crashing.wait(timeout=30)
    finally:
        if crashing.poll() is None:
            crashing.kill()
    survivor = ProjectionWorker(store, [Ledger()], listen=False)

    def finished() -> bool:
        survivor.run_pending()
        return state(store, "ledger").lag_events == 0

    wait_for(finished, what="the survivor to finish")  # the dead session may take a moment to go
    assert ledger_rows(store) == {f"account-{n}": Decimal("50.00") for n in range(8)}
    assert state(store, "ledger").events_processed == 400
