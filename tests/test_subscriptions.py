"""Persistent subscriptions: delivery in order after commit, checkpoints that move only after
success, filters and starting points, late commits, wake-ups by NOTIFY and by polling,
retries and parking, the idempotency helper, crashes and SIGTERM in real processes, and
every input error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import settle

from pyes import EventStore, NewEvent, RecordedEvent
from pyes.cli import main
from pyes.errors import (
    InvalidSubscriptionArgument,
    LeaseLost,
    ParkedEventNotFound,
    SubscriptionConflict,
    SubscriptionNotFound,
)
from pyes.subscriptions import Subscriptions, SubscriptionWorker, idempotent, record_processed

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def collect() -> tuple[list[RecordedEvent], Callable[[RecordedEvent], None]]:
    seen: list[RecordedEvent] = []
    return seen, seen.append


def run_idle(store: EventStore, name: str, handler: Callable[[RecordedEvent], object], **options: Any) -> SubscriptionWorker:
    settle(store)
    worker = SubscriptionWorker(store, name, handler, poll_interval=0.05, **options)
    worker.run(until_idle=True, handle_signals=False)
    return worker


def fill(store: EventStore) -> None:
    store.append("account-1", [NewEvent("AccountOpened"), NewEvent("AccountBalanceDeposited", {"amount": "5"})])
    store.append("ledger-1", [NewEvent("Posted")])
    store.append("account-2", [NewEvent("AccountOpened"), NewEvent("AccountBalanceDeposited", {"amount": "7"})])
    store.append("account-1", [NewEvent("AccountBalanceDeposited", {"amount": "9"})])


# -- delivery --------------------------------------------------------------------------------


def test_every_event_once_in_the_global_order_and_the_checkpoint_is_saved(store: EventStore) -> None:
    fill(store)
    seen, handler = collect()
    run_idle(store, "everything", handler)
    assert seen == store.read_all()
    subs = Subscriptions(store)
    saved = subs.checkpoint("everything")
    assert tuple(map(int, saved.split("/"))) >= (seen[-1].transaction_id, seen[-1].position)
    info = subs.get("everything")
    assert info.handled == 6 and info.parked == 0 and info.members == 0  # the worker left
    # Running again delivers nothing twice; a new event only.
    again, handler2 = collect()
    run_idle(store, "everything", handler2)
    assert again == []
    store.append("account-3", [NewEvent("AccountOpened")])
    run_idle(store, "everything", handler2)
    assert [(e.stream_id, e.type) for e in again] == [("account-3", "AccountOpened")]


def test_the_seed_example_types_and_categories(store: EventStore) -> None:
    fill(store)
    seen, handler = collect()
    run_idle(store, "SendDepositNotification", handler, types=["AccountBalanceDeposited"])
    assert [(e.stream_id, e.data["amount"]) for e in seen] == [("account-1", "5"), ("account-2", "7"), ("account-1", "9")]
    ledger, handler2 = collect()
    run_idle(store, "LedgerAndAccountOpenings", handler2, categories=["ledger", "account"], types=["Posted", "AccountOpened"])
    assert [(e.stream_id, e.type) for e in ledger] == [("account-1", "AccountOpened"), ("ledger-1", "Posted"),
                                                       ("account-2", "AccountOpened")]
    only_ledger, handler3 = collect()
    run_idle(store, "Ledger", handler3, categories=["ledger"])
    assert [e.stream_id for e in only_ledger] == ["ledger-1"]


def test_start_from_now_and_from_a_checkpoint(store: EventStore) -> None:
    fill(store)
    settle(store)
    everything = store.read_all()
    seen, handler = collect()
    run_idle(store, "from-now", handler, start="now")
    assert seen == []
    store.append("account-9", [NewEvent("AccountOpened")])
    run_idle(store, "from-now", handler, start="now")
    assert [e.stream_id for e in seen] == ["account-9"]

    from_third, handler2 = collect()
    run_idle(store, "from-third", handler2, start=everything[2].checkpoint)
    assert [e.event_id for e in from_third] == [e.event_id for e in store.read_all()[3:]]


def test_a_late_commit_is_delivered_not_skipped(store: EventStore, connect: Any) -> None:
    store.append("account-1", [NewEvent("First")])
    settle(store)
    seen, handler = collect()
    run_idle(store, "late", handler)
    slow = connect()
    store.append("account-2", [NewEvent("Slow")], conn=slow)  # begun first, commits last
    store.append("account-3", [NewEvent("Fast")])
    worker = SubscriptionWorker(store, "late", handler, poll_interval=0.05)
    worker.run(until_idle=True, handle_signals=False)
    assert [e.type for e in seen] == ["First"]  # Fast waits behind Slow's open transaction
    slow.commit()
    run_idle(store, "late", handler)
    assert [e.type for e in seen] == ["First", "Slow", "Fast"]


def test_the_checkpoint_moves_only_after_the_handler_succeeded(store: EventStore) -> None:
    """A handler that dies (here, an exception that is not an Exception, as a crash would
    be) leaves the checkpoint before the event it was on; the next worker starts there."""
    fill(store)

    class Crash(BaseException):
        pass

    seen: list[str] = []

    def crashing(event: RecordedEvent) -> None:
        if len(seen) == 3:
            raise Crash
        seen.append(str(event.event_id))

    settle(store)
    with pytest.raises(Crash):
        SubscriptionWorker(store, "crashy", crashing, poll_interval=0.05).run(until_idle=True, handle_signals=False)
    all_ids = [str(e.event_id) for e in store.read_all()]
    assert seen == all_ids[:3]
    assert Subscriptions(store).checkpoint("crashy") == store.read_all()[2].checkpoint
    rest, handler = collect()
    run_idle(store, "crashy", handler)
    assert [str(e.event_id) for e in rest] == all_ids[3:]


# -- wake-ups ----------------------------------------------------------------------------------


def _run_in_thread(worker: SubscriptionWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    return thread


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_notify_wakes_the_worker_long_before_its_poll(store: EventStore) -> None:
    seen, handler = collect()
    worker = SubscriptionWorker(store, "woken", handler, poll_interval=60.0)
    thread = _run_in_thread(worker)
    try:
        _wait_for(lambda: worker.owned_partitions() == [0])
        time.sleep(0.2)  # the worker is now waiting on LISTEN, its next poll a minute away
        store.append("account-1", [NewEvent("Opened")])
        _wait_for(lambda: len(seen) == 1, timeout=30)
        assert worker.stats.notifications >= 1
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_polling_catches_up_when_notifications_are_dropped(store: EventStore, connect: Any) -> None:
    """Notifications dropped on purpose, twice: the writer switches them off (pyes.notify),
    and a second worker does not LISTEN at all. Both catch up by polling."""
    writer = connect(autocommit=True)
    writer.execute("SET pyes.notify = 'off'")
    listening, handler = collect()
    deaf, handler2 = collect()
    w1 = SubscriptionWorker(store, "listening", handler, poll_interval=0.3)
    w2 = SubscriptionWorker(store, "deaf", handler2, poll_interval=0.3, listen=False)
    threads = [_run_in_thread(w1), _run_in_thread(w2)]
    try:
        _wait_for(lambda: w1.owned_partitions() == [0] and w2.owned_partitions() == [0])
        for n in range(5):
            store.append(f"account-{n}", [NewEvent("Opened")], conn=writer)
        _wait_for(lambda: len(listening) == 5 and len(deaf) == 5)
        assert w1.stats.notifications == 0 and w1.stats.polls >= 1
        assert w2.stats.notifications == 0 and w2.stats.polls >= 1
        assert w2._listen_conn is None
    finally:
        w1.stop()
        w2.stop()
        for thread in threads:
            thread.join(10)
    assert [e.stream_id for e in listening] == [f"account-{n}" for n in range(5)]


# -- failures ----------------------------------------------------------------------------------


def test_retry_with_backoff_then_park_then_move_on(store: EventStore) -> None:
    fill(store)
    attempts: dict[str, int] = {}
    seen: list[str] = []
    broken = {"on": True}

    def handler(event: RecordedEvent) -> None:
        attempts[event.type] = attempts.get(event.type, 0) + 1
        if event.type == "Posted" and broken["on"]:
            raise RuntimeError("the mail server said no")
        seen.append(event.type)

    worker = run_idle(store, "notify", handler, max_attempts=3, retry_delay=0.01)
    assert attempts["Posted"] == 3
    assert worker.stats.parked == 1 and worker.stats.failures == 3
    assert seen == ["AccountOpened", "AccountBalanceDeposited", "AccountOpened", "AccountBalanceDeposited",
                    "AccountBalanceDeposited"]  # moved on past the parked event
    subs = Subscriptions(store)
    [parked] = subs.parked("notify")
    posted = store.read_stream("ledger-1")[0]
    assert (parked.event_id, parked.stream_id, parked.type, parked.attempts) == (posted.event_id, "ledger-1", "Posted", 3)
    assert "RuntimeError: the mail server said no" in parked.error
    assert subs.get("notify").parked == 1

    # A retry that fails again stays parked, with the attempts added up.
    assert subs.retry_parked("notify", [parked.id]) == 1
    run_idle(store, "notify", handler, max_attempts=3, retry_delay=0.01)
    [again] = subs.parked("notify")
    assert again.attempts == 4 and again.retry_requested_at is None
    # Fixed: the retry runs the handler once more, and the parked row goes.
    broken["on"] = False
    assert subs.retry_parked("notify") == 1
    worker = run_idle(store, "notify", handler)
    assert worker.stats.retried_ok == 1
    assert subs.parked("notify") == [] and seen[-1] == "Posted"


def test_discard_parked_and_unknown_ids(store: EventStore) -> None:
    fill(store)

    def failing(event: RecordedEvent) -> None:
        if event.stream_id == "account-2":
            raise ValueError("bad account")

    run_idle(store, "picky", failing, max_attempts=1)
    subs = Subscriptions(store)
    parked = subs.parked("picky")
    assert [p.stream_id for p in parked] == ["account-2", "account-2"]
    with pytest.raises(ParkedEventNotFound) as caught:
        subs.discard_parked("picky", [parked[0].id, 999999])
    assert caught.value.sqlstate == "PE405" and "999999" in (caught.value.detail or "")
    assert len(subs.parked("picky")) == 2  # nothing changed
    with pytest.raises(ParkedEventNotFound):
        subs.retry_parked("picky", [999999])
    assert subs.discard_parked("picky", [parked[0].id]) == 1
    assert [p.id for p in subs.parked("picky")] == [parked[1].id]
    assert subs.discard_parked("picky") == 1
    assert subs.parked("picky") == []
    with pytest.raises(SubscriptionNotFound):
        subs.parked("nobody")


def test_parked_from_the_cli(store: EventStore, dsn: str) -> None:
    fill(store)

    def failing(event: RecordedEvent) -> None:
        if event.type == "Posted":
            raise RuntimeError("no route")

    run_idle(store, "cli-notify", failing, max_attempts=2, retry_delay=0.0)
    runner = CliRunner()
    listed = runner.invoke(main, ["parked", "list", "cli-notify", "--dsn", dsn, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    import json

    [row] = json.loads(listed.output)
    assert row["type"] == "Posted" and row["attempts"] == 2 and "no route" in row["error"]
    table = runner.invoke(main, ["parked", "list", "--dsn", dsn])
    assert table.exit_code == 0 and "parked events" in table.output and str(row["id"]) in table.output
    every = runner.invoke(main, ["parked", "list", "--dsn", dsn, "--format", "jsonl"])
    assert every.exit_code == 0 and '"subscription": "cli-notify"' in every.output
    retried = runner.invoke(main, ["parked", "retry", "cli-notify", str(row["id"]), "--dsn", dsn])
    assert retried.exit_code == 0 and "1 parked event(s) of cli-notify marked for retry" in retried.output
    assert Subscriptions(store).parked("cli-notify")[0].retry_requested_at is not None
    usage = runner.invoke(main, ["parked", "discard", "cli-notify", "--dsn", dsn])
    assert usage.exit_code == 2  # neither ids nor --all
    missing = runner.invoke(main, ["parked", "discard", "cli-notify", "424242", "--dsn", dsn])
    assert missing.exit_code == 6 and "PE405" in missing.output
    discarded = runner.invoke(main, ["parked", "discard", "cli-notify", "--all", "--dsn", dsn])
    assert discarded.exit_code == 0 and "1 parked event(s) of cli-notify discarded" in discarded.output
    assert Subscriptions(store).parked("cli-notify") == []


def test_subscriptions_cli_create_list_show_delete(store: EventStore, dsn: str) -> None:
    runner = CliRunner()
    created = runner.invoke(main, ["subscriptions", "create", "SendDepositNotification", "--category", "account",
                                   "--type", "AccountBalanceDeposited", "--partitions", "4", "--dsn", dsn])
    assert created.exit_code == 0 and "created SendDepositNotification" in created.output
    same = runner.invoke(main, ["subscriptions", "create", "SendDepositNotification", "--category", "account",
                                "--type", "AccountBalanceDeposited", "--partitions", "4", "--dsn", dsn])
    assert same.exit_code == 0 and "already exists" in same.output
    conflict = runner.invoke(main, ["subscriptions", "create", "SendDepositNotification", "--dsn", dsn])
    assert conflict.exit_code == 6 and "PE402" in conflict.output
    bad = runner.invoke(main, ["subscriptions", "create", "x", "--category", "a-b", "--dsn", dsn])
    assert bad.exit_code == 5 and "PE403" in bad.output
    listed = runner.invoke(main, ["subscriptions", "list", "--dsn", dsn, "--format", "jsonl"])
    assert listed.exit_code == 0 and '"partitions": 4' in listed.output
    shown = runner.invoke(main, ["subscriptions", "show", "SendDepositNotification", "--dsn", dsn, "--format", "jsonl"])
    assert shown.exit_code == 0 and len(shown.output.splitlines()) == 4
    deleted = runner.invoke(main, ["subscriptions", "delete", "SendDepositNotification", "--dsn", dsn])
    assert deleted.exit_code == 0
    gone = runner.invoke(main, ["subscriptions", "show", "SendDepositNotification", "--dsn", dsn])
    assert gone.exit_code == 6 and "PE401" in gone.output


# -- idempotency -------------------------------------------------------------------------------


def test_the_idempotency_helper_applies_a_redelivered_event_once(store: EventStore, connect: Any) -> None:
    conn = connect(autocommit=True)
    conn.execute("CREATE TABLE points (account text PRIMARY KEY, total int NOT NULL)")
    store.append("account-1", [NewEvent("AccountBalanceDeposited", {"amount": "5"})])
    [event] = store.read_stream("account-1")

    @idempotent(store, "CreditPoints")
    def credit(e: RecordedEvent, c: psycopg.Connection[Any]) -> None:
        c.execute("INSERT INTO points VALUES (%s, 1) ON CONFLICT (account) DO UPDATE SET total = points.total + 1",
                  (e.stream_id,))

    credit(event)
    credit(event)  # redelivered
    assert conn.execute("SELECT total FROM points").fetchone() == (1,)

    # A handler that fails after recording rolls the record back with its writes.
    @idempotent(store, "Failing")
    def failing(e: RecordedEvent, c: psycopg.Connection[Any]) -> None:
        c.execute("INSERT INTO points VALUES ('other', 1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing(event)
    assert conn.execute("SELECT count(*) FROM pyes.processed_events WHERE consumer = 'Failing'").fetchone() == (0,)
    with store.connection() as c:
        assert record_processed(c, "Failing", event.event_id) is True
        assert record_processed(c, "Failing", event.event_id) is False
    with pytest.raises(InvalidSubscriptionArgument), store.connection() as c:
        record_processed(c, "", event.event_id)


CRASH_WORKER = """
import os, sys
import psycopg
from pyes.subscriptions import SubscriptionWorker, idempotent
from pyes import EventStore

dsn, crash_after = sys.argv[1], int(sys.argv[2])
store = EventStore(dsn)
delivered = 0

@idempotent(store, "crash-test")
def apply(event, conn):
    conn.execute("INSERT INTO applied (event_id) VALUES (%s)", (event.event_id,))

def handler(event):
    global delivered
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO deliveries (event_id) VALUES (%s)", (event.event_id,))
    apply(event)
    delivered += 1
    if delivered == crash_after:
        os._exit(17)  # dies after the handler committed, before any checkpoint is saved

SubscriptionWorker(store, "crash-test", handler, poll_interval=0.05, batch_size=50, lease_seconds=1).run(until_idle=True)
"""


def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(store: EventStore, dsn: str,
                                                                           connect: Any) -> None:
    conn = connect(autocommit=True)
    conn.execute("CREATE TABLE applied (event_id uuid NOT NULL)")  # no unique key: a double apply would show
    conn.execute("CREATE TABLE deliveries (event_id uuid NOT NULL)")
    for n in range(30):
        store.append(f"account-{n % 7}", [NewEvent("AccountBalanceDeposited", {"n": n})])
    settle(store)
    crashed = subprocess.run([sys.executable, "-c", CRASH_WORKER, dsn, "12"], cwd=REPO, timeout=60, check=False)
    assert crashed.returncode == 17
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (12,)
    assert Subscriptions(store).checkpoint("crash-test") == "0/0"  # nothing was saved before the crash
    finished = subprocess.run([sys.executable, "-c", CRASH_WORKER, dsn, "0"], cwd=REPO, timeout=60, check=False)
    assert finished.returncode == 0
    all_ids = {e.event_id for e in store.read_all()}
    applied = [row[0] for row in conn.execute("SELECT event_id FROM applied").fetchall()]
    delivered = [row[0] for row in conn.execute("SELECT event_id FROM deliveries").fetchall()]
    assert sorted(applied) == sorted(all_ids)  # each applied exactly once
    assert len(delivered) == 30 + 12 and set(delivered) == all_ids  # the first 12 were delivered twice


def slow_handler(event: RecordedEvent) -> None:
    """For the SIGTERM test (run by `pyes subscriptions run` in a subprocess)."""
    with psycopg.connect(os.environ["PYES_DATABASE_URL"], autocommit=True) as c:
        c.execute("INSERT INTO handled (event_id, phase) VALUES (%s, 'start')", (event.event_id,))
        time.sleep(1.0)
        c.execute("INSERT INTO handled (event_id, phase) VALUES (%s, 'end')", (event.event_id,))


def test_sigterm_finishes_the_current_event_and_saves_its_checkpoint(store: EventStore, dsn: str, connect: Any) -> None:
    conn = connect(autocommit=True)
    conn.execute("CREATE TABLE handled (n serial, event_id uuid NOT NULL, phase text NOT NULL)")
    for n in range(5):
        store.append(f"account-{n}", [NewEvent("Opened")])
    settle(store)
    env = {**os.environ, "PYES_DATABASE_URL": dsn, "PYTHONPATH": str(TESTS)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from pyes.cli import main; main()", "subscriptions", "run", "graceful", "test_subscriptions:slow_handler",
         "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: conn.execute("SELECT count(*) FROM handled WHERE phase = 'start'").fetchone() == (2,), 60)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    rows = conn.execute("SELECT event_id, phase FROM handled ORDER BY n").fetchall()
    events = store.read_all()
    second = events[1].event_id
    assert rows == [(events[0].event_id, "start"), (events[0].event_id, "end"), (second, "start"), (second, "end")]
    assert Subscriptions(store).checkpoint("graceful") == events[1].checkpoint
    assert Subscriptions(store).partitions("graceful")[0].owner is None  # handed back


# -- input errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"name": ""}, InvalidSubscriptionArgument),
    ({"name": "bad\nname"}, InvalidSubscriptionArgument),
    ({"name": "x" * 256}, InvalidSubscriptionArgument),
    ({"partitions": 0}, InvalidSubscriptionArgument),
    ({"partitions": 1025}, InvalidSubscriptionArgument),
    ({"categories": []}, InvalidSubscriptionArgument),
    ({"categories": ["account-1"]}, InvalidSubscriptionArgument),
    ({"categories": [""]}, InvalidSubscriptionArgument),
    ({"types": []}, InvalidSubscriptionArgument),
    ({"types": [""]}, InvalidSubscriptionArgument),
    ({"start": "yesterday"}, InvalidSubscriptionArgument),
])
def test_create_refuses_bad_input_and_writes_nothing(store: EventStore, kwargs: dict[str, Any], error: type) -> None:
    subs = Subscriptions(store)
    args = {"name": "ok", **kwargs}
    with pytest.raises(error) as caught:
        subs.create(args.pop("name"), **args)
    assert caught.value.sqlstate == "PE403" and caught.value.detail
    assert subs.all() == []


def test_conflicting_definition_unknown_subscription_and_lease_errors(store: EventStore, connect: Any) -> None:
    subs = Subscriptions(store)
    assert subs.create("s", categories=["account"], partitions=2) is True
    assert subs.create("s", categories=["account"], partitions=2) is False
    with pytest.raises(SubscriptionConflict) as conflict:
        subs.create("s", categories=["account"], partitions=3)
    assert conflict.value.sqlstate == "PE402" and "2 partitions" in (conflict.value.detail or "")
    with pytest.raises(SubscriptionNotFound) as unknown:
        subs.get("nope")
    assert unknown.value.sqlstate == "PE401"
    conn = connect(autocommit=True)
    rows = conn.execute("SELECT partition FROM pyes.join_subscription('s', 'm1', 5) WHERE held").fetchall()
    assert rows == [(0,), (1,)]
    for statement, state in [
        ("SELECT pyes.save_checkpoint('s', 'm2', 0, '5/5')", "PE404"),
        ("SELECT pyes.save_checkpoint('s', 'm1', 7, '5/5')", "PE404"),
        ("SELECT pyes.save_checkpoint('nope', 'm1', 0, '5/5')", "PE401"),
        ("SELECT pyes.save_checkpoint('s', 'm1', 0, 'x')", "PE108"),
        ("SELECT pyes.save_checkpoint('s', 'm1', 0, NULL)", "PE108"),
        ("SELECT * FROM pyes.join_subscription('s', '', 5)", "PE403"),
        ("SELECT * FROM pyes.join_subscription('s', 'm3', 0)", "PE403"),
        ("SELECT * FROM pyes.join_subscription('nope', 'm3', 5)", "PE401"),
        ("SELECT * FROM pyes.read_subscription('s', 2, NULL, 10)", "PE403"),
        ("SELECT * FROM pyes.read_subscription('s', 0, NULL, 0)", "PE109"),
        ("SELECT pyes.park_event('s', 'm1', 0, gen_random_uuid(), 'e', 1)", "PE405"),
        ("SELECT pyes.record_processed('c', NULL)", "PE403"),
    ]:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(statement)
        assert caught.value.sqlstate == state, statement
    with pytest.raises(LeaseLost):
        from pyes.errors import translate

        try:
            conn.execute("SELECT pyes.save_checkpoint('s', 'm2', 0, '5/5')")
        except psycopg.Error as error:
            raise translate(error) from error
    # The checkpoint moves only forward.
    conn.execute("SELECT pyes.save_checkpoint('s', 'm1', 0, '9/9')")
    conn.execute("SELECT pyes.save_checkpoint('s', 'm1', 0, '5/5')")
    assert subs.checkpoint("s", 0) == "9/9"


def test_worker_arguments_are_checked(store: EventStore) -> None:
    for bad in ({"max_attempts": 0}, {"batch_size": 0}, {"poll_interval": 0}):
        with pytest.raises(ValueError):
            SubscriptionWorker(store, "w", print, **bad)
    with pytest.raises(SubscriptionNotFound):
        SubscriptionWorker(store, "never-created", print, create=False).run(until_idle=True, handle_signals=False)


def test_a_unique_member_id_by_default(store: EventStore) -> None:
    a = SubscriptionWorker(store, "w", print)
    b = SubscriptionWorker(store, "w", print)
    assert a.member_id != b.member_id and str(os.getpid()) in a.member_id
