"""Concurrency, with several real connections and transactions held open on purpose.

Every test here has a timeout (pyproject sets a default; some set a shorter one) so that a
deadlock fails fast instead of hanging CI. Waiting is never measured with a clock: a writer
that must not wait runs with a lock_timeout, and a writer that must wait is seen waiting in
pg_stat_activity.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from conftest import settle

from pyes import (
    EventStore,
    ExpectedVersion,
    NewEvent,
    TransactionConflict,
    WrongExpectedVersion,
    retry_transaction,
)


def wait_until_blocked(observer: psycopg.Connection[Any], pid: int, timeout: float = 10.0) -> None:
    """Wait until backend ``pid`` waits on a lock (as PostgreSQL itself reports)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = observer.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a lock")


def blocked_until_commit(connect: Any, holder: psycopg.Connection[Any], call: Any) -> BaseException | None:
    """Run ``call(conn)`` on a new connection in a thread, check that it waits on a lock held
    by ``holder``'s open transaction, commit ``holder``, and return what the call raised."""
    observer = connect(autocommit=True)
    waiter = connect(autocommit=True)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call(waiter)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - returned to the test
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until_blocked(observer, waiter.info.backend_pid)
    assert outcome == [], "the call should still be waiting"
    holder.commit()
    thread.join(10)
    assert len(outcome) == 1, "the call did not finish after the commit"
    return outcome[0]


def read_everything(store: EventStore, after: str | None = None) -> list[Any]:
    events, checkpoint = [], after
    while True:
        page = store.read_all(after=checkpoint, max_count=7)
        if not page:
            return events
        events.extend(page)
        checkpoint = page[-1].checkpoint


@pytest.mark.timeout(60)
def test_racing_writers_on_one_stream_exactly_one_wins_each_version(dsn: str) -> None:
    writers, rounds = 6, 15
    barrier = threading.Barrier(writers)
    wins: dict[int, list[int]] = defaultdict(list)
    losses: dict[int, list[int]] = defaultdict(list)

    def writer(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for version in range(rounds):
                barrier.wait(timeout=30)
                try:
                    shared.append("race-1", [NewEvent("Tick", {"writer": n})], version, conn=conn)
                    wins[version].append(n)
                except WrongExpectedVersion as conflict:
                    assert conflict.actual == version + 1
                    losses[version].append(n)

    with EventStore(dsn, min_size=1, max_size=1) as shared, ThreadPoolExecutor(writers) as pool:
        for future in [pool.submit(writer, n) for n in range(writers)]:
            future.result()

    assert {v: len(w) for v, w in wins.items()} == {v: 1 for v in range(rounds)}
    assert {v: len(w) for v, w in losses.items()} == {v: writers - 1 for v in range(rounds)}
    with psycopg.connect(dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM pyes.events WHERE stream_id = 'race-1' ORDER BY version")]
        data = [r[0] for r in conn.execute("SELECT data->>'writer' FROM pyes.events ORDER BY version")]
    assert versions == list(range(1, rounds + 1))  # dense, no holes, no duplicates
    assert data == [str(wins[v][0]) for v in range(rounds)]


@pytest.mark.timeout(60)
def test_racing_creators_of_a_new_stream(dsn: str) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []

    def writer(n: int) -> None:
        with EventStore(dsn, min_size=1, max_size=1) as store:
            barrier.wait(timeout=30)
            try:
                store.append("new-1", [NewEvent("Created", {"by": n})], ExpectedVersion.NO_STREAM)
                outcomes.append("won")
            except WrongExpectedVersion:
                outcomes.append("lost")

    with ThreadPoolExecutor(writers) as pool:
        for future in [pool.submit(writer, n) for n in range(writers)]:
            future.result()
    assert sorted(outcomes) == ["lost"] * (writers - 1) + ["won"]


@pytest.mark.timeout(60)
def test_many_threads_appending_with_retries_keep_versions_dense(dsn: str) -> None:
    """Optimistic writers that reload and retry: every append lands once, versions dense."""
    writers, per_writer = 6, 20

    def writer(n: int) -> int:
        conflicts = 0
        with EventStore(dsn, min_size=1, max_size=1) as store:
            for i in range(per_writer):
                while True:
                    version = store.stream_version("counter-1")
                    try:
                        store.append("counter-1", [NewEvent("Incremented", {"writer": n, "i": i})], version)
                        break
                    except WrongExpectedVersion:
                        conflicts += 1
        return conflicts

    with ThreadPoolExecutor(writers) as pool:
        [f.result() for f in [pool.submit(writer, n) for n in range(writers)]]
    with EventStore(dsn) as store:
        events = store.read_stream("counter-1", max_count=1000)
    assert [e.version for e in events] == list(range(1, writers * per_writer + 1))
    assert sorted((e.data["writer"], e.data["i"]) for e in events) == sorted(
        (n, i) for n in range(writers) for i in range(per_writer))


@pytest.mark.timeout(30)
def test_writers_to_different_streams_never_wait(store: EventStore, connect: Any) -> None:
    store.append("account-1", [NewEvent("Opened")])
    store.append("account-2", [NewEvent("Opened")])
    holder = connect()
    store.append("account-1", [NewEvent("Deposited")], 1, conn=holder)  # row lock held, uncommitted

    other = connect(autocommit=True)
    # Any lock wait at all makes these fail with LockNotAvailable instead of succeeding.
    other.execute("SET lock_timeout = '200ms'")
    store.append("account-2", [NewEvent("Deposited")], 1, conn=other)  # same category, existing stream
    store.append("account-3", [NewEvent("Opened")], ExpectedVersion.NO_STREAM, conn=other)  # new stream
    store.append("ledger-1", [NewEvent("Posted")], conn=other)  # another category
    with other.transaction():  # a batch in an explicit transaction
        store.append("account-4", [NewEvent("Opened"), NewEvent("Deposited")], conn=other)
    holder.commit()
    assert store.stream_version("account-1") == 2
    assert store.stream_version("account-2") == 2


@pytest.mark.timeout(30)
def test_writers_to_the_same_stream_queue_and_the_second_fails(store: EventStore, connect: Any) -> None:
    store.append("account-1", [NewEvent("Opened")])
    first = connect()
    store.append("account-1", [NewEvent("Deposited")], 1, conn=first)
    error = blocked_until_commit(
        connect, first, lambda conn: store.append("account-1", [NewEvent("Withdrawn")], 1, conn=conn))
    assert isinstance(error, WrongExpectedVersion)
    assert error.actual == 2
    assert [e.type for e in store.read_stream("account-1")] == ["Opened", "Deposited"]


@pytest.mark.timeout(30)
def test_late_committer_is_not_skipped(store: EventStore, connect: Any) -> None:
    store.append("early-1", [NewEvent("Before")])
    settle(store)
    seen = read_everything(store)
    assert [e.type for e in seen] == ["Before"]
    checkpoint = seen[-1].checkpoint

    a = connect()
    store.append("a-1", [NewEvent("FromA")], conn=a)  # A appends first and holds its transaction
    b = connect()
    store.append("b-1", [NewEvent("FromB")], conn=b)
    b.commit()  # B has a later position and commits first

    # B is committed, yet the reader sees nothing past A's position while A is open.
    assert read_everything(store, checkpoint) == []
    assert store.read_category("b", after=None) == []
    assert store.read_stream("b-1")[0].type == "FromB"  # the stream itself is readable at once

    a.commit()
    settle(store)
    after = read_everything(store, checkpoint)
    assert [e.type for e in after] == ["FromA", "FromB"]  # both, once each, A first
    assert read_everything(store, after[-1].checkpoint) == []
    assert [e.type for e in store.read_category("b")] == ["FromB"]


@pytest.mark.timeout(30)
def test_late_committer_with_a_reader_that_polls_throughout(store: EventStore, connect: Any) -> None:
    """A reader that keeps polling while writers commit out of order sees every event once."""
    holders = [connect() for _ in range(3)]
    for n, conn in enumerate(holders):
        store.append(f"held-{n}", [NewEvent("Held")], conn=conn)
    for n in range(5):
        store.append(f"free-{n}", [NewEvent("Free")])
    delivered, checkpoint = [], None
    for conn in reversed(holders):
        page = store.read_all(after=checkpoint)
        delivered.extend(page)
        checkpoint = page[-1].checkpoint if page else checkpoint
        conn.commit()
    settle(store)
    delivered.extend(read_everything(store, checkpoint))
    ids = [e.event_id for e in delivered]
    assert len(ids) == len(set(ids)) == 8


@pytest.mark.timeout(30)
def test_append_from_an_older_transaction_is_refused_with_40001(store: EventStore, connect: Any) -> None:
    """The hole of ordering by transaction id alone, reproduced and closed.

    T1 takes its transaction id first (it writes something else); T2 then appends version 1
    of the stream and commits; T1 appends version 2. By transaction id T1 sorts first, so the
    global order would show version 2 before version 1. pyes refuses T1's append with 40001.
    """
    t1 = connect()
    t1.execute("CREATE TEMP TABLE scratch (x int)")
    t1.execute("INSERT INTO scratch VALUES (1)")
    t1_xid = t1.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    store.append("order-1", [NewEvent("Created")])  # T2: version 1, younger transaction id
    with pytest.raises(TransactionConflict) as caught:
        store.append("order-1", [NewEvent("Paid")], conn=t1)
    assert caught.value.sqlstate == "40001"
    assert "order-1" in (caught.value.detail or "")
    t1.rollback()
    assert t1_xid is not None

    # Retried as a whole, the transaction gets a new id and succeeds; the order holds.
    def work(conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (x int)")
        store.append("order-1", [NewEvent("Paid")], conn=conn)

    retry_transaction(lambda: _own(t1), work)
    settle(store)
    assert [(e.stream_id, e.version) for e in read_everything(store)] == [("order-1", 1), ("order-1", 2)]


class _own:
    """A context manager over an existing connection: one transaction per use."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.tx: Any = None

    def __enter__(self) -> psycopg.Connection[Any]:
        self.tx = self.conn.transaction()
        self.tx.__enter__()
        return self.conn

    def __exit__(self, *exc: object) -> Any:
        return self.tx.__exit__(*exc)


@pytest.mark.timeout(90)
def test_global_order_keeps_every_stream_in_version_order_under_racing_writers(dsn: str) -> None:
    """Writers that take their transaction id early (by writing elsewhere first), then
    append to a few shared streams, retried on 40001 and on version conflicts. The global
    read must show every stream's versions in increasing order."""
    writers, appends = 6, 25
    streams = [f"hot-{n}" for n in range(3)]
    conflicts = {"40001": 0}

    def writer(n: int) -> None:
        rng = random.Random(n)
        with EventStore(dsn, min_size=1, max_size=1) as store:
            for i in range(appends):
                stream = rng.choice(streams)

                def work(conn: psycopg.Connection[Any], stream: str = stream, i: int = i) -> None:
                    conn.execute("SELECT pg_current_xact_id()")  # take an id early
                    time.sleep(rng.random() * 0.003)
                    store.append(stream, [NewEvent("Step", {"w": n, "i": i})], conn=conn)

                while True:
                    try:
                        retry_transaction(store.connection, work, attempts=1)
                        break
                    except TransactionConflict:
                        conflicts["40001"] += 1

    with ThreadPoolExecutor(writers) as pool:
        [f.result() for f in [pool.submit(writer, n) for n in range(writers)]]

    with EventStore(dsn) as store:
        settle(store)
        events = read_everything(store)
    assert len(events) == writers * appends
    last: dict[str, int] = {}
    for event in events:
        assert event.version == last.get(event.stream_id, 0) + 1, (event.stream_id, event.version)
        last[event.stream_id] = event.version
    assert conflicts["40001"] > 0, "the race should have been provoked at least once"


def test_retry_transaction_gives_up_after_attempts(store: EventStore) -> None:
    calls = []

    def always_conflicts(conn: psycopg.Connection[Any]) -> None:
        calls.append(1)
        conn.execute("SELECT 1")
        raise psycopg.errors.SerializationFailure("forced")

    with pytest.raises(TransactionConflict):
        store.transaction(always_conflicts, attempts=3)
    assert len(calls) == 3

    def other_error(conn: psycopg.Connection[Any]) -> None:
        calls.append(1)
        raise ValueError("not retryable")

    calls.clear()
    with pytest.raises(ValueError):
        store.transaction(other_error, attempts=3)
    assert len(calls) == 1


@pytest.mark.timeout(30)
def test_same_id_appended_concurrently_fails_as_a_duplicate(store: EventStore, connect: Any) -> None:
    """Two transactions insert the same event id at once: the second waits for the first and,
    when it commits, fails with DuplicateEvent (unique_violation on events_event_id_key);
    nothing of the second is written."""
    from pyes import DuplicateEvent

    event = NewEvent("Opened")
    first = connect()
    store.append("account-1", [event], conn=first)
    error = blocked_until_commit(
        connect, first, lambda conn: store.append("account-2", [NewEvent("Opened"), event], conn=conn))
    assert isinstance(error, DuplicateEvent), error
    assert store.stream_version("account-2") == 0
    settle(store)
    assert [e.stream_id for e in store.read_all()] == ["account-1"]
