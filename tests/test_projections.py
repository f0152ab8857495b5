"""Projections: registry, inline projections, asynchronous batches, failures, status.

The bank demo's projections (examples/bank_projections.sql) are the subjects: an inline
balance per account and an asynchronous activity per account and day.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from bank import MONEY_TYPES, PROJECTIONS_SQL
from conftest import settle

from pyes import (
    EventStore,
    InlineProjectionFailed,
    InvalidProjection,
    NewEvent,
    ProjectionExists,
    ProjectionNotFound,
    Projections,
)

BALANCE_TYPES = ["AccountOpened", *MONEY_TYPES, "AccountClosed"]


def opened(owner: str = "Ann") -> NewEvent:
    return NewEvent("AccountOpened", {"owner": owner, "currency": "EUR"})


def deposit(amount: str) -> NewEvent:
    return NewEvent("AccountBalanceDeposited", {"amount": amount})


def withdrawal(amount: str) -> NewEvent:
    return NewEvent("AccountBalanceWithdrawn", {"amount": amount})


def register_balances(projections: Projections, mode: str = "inline", **options: Any) -> None:
    options.setdefault("stream_column", "stream_id")
    projections.register("balances", "bank.apply_balance(pyes.events)", event_types=BALANCE_TYPES, mode=mode,
                         schema="bank", tables=["balances"], **options)
    if mode == "inline":
        projections.catch_up("balances")


def register_activity(projections: Projections, **options: Any) -> None:
    options.setdefault("stream_column", "stream_id")
    projections.register("daily_activity", "bank.apply_daily_activity(pyes.events)", event_types=MONEY_TYPES,
                         schema="bank", tables=["daily_activity"], **options)


def balances(store: EventStore, table: str = "bank.balances") -> dict[str, Decimal]:
    with store.connection() as conn:
        return dict(conn.execute(f"SELECT stream_id, balance FROM {table} ORDER BY stream_id").fetchall())  # type: ignore[arg-type]


def folded_balances(store: EventStore) -> dict[str, Decimal]:
    """The balances computed from the events by hand (no rewinds in these streams)."""
    with store.connection() as conn:
        rows = conn.execute(
            "SELECT stream_id, sum(CASE type WHEN 'AccountBalanceDeposited' THEN (data->>'amount')::numeric"
            " WHEN 'AccountBalanceWithdrawn' THEN -(data->>'amount')::numeric ELSE 0 END)"
            " FROM pyes.events WHERE category = 'account' GROUP BY stream_id ORDER BY stream_id"
        ).fetchall()
    return dict(rows)


def state(store: EventStore, name: str, version: int = 1) -> Any:
    return next(row for row in Projections(store).status(name) if row.version == version)


# -- registry ------------------------------------------------------------------------------

def test_register_lists_the_projection(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    [row] = projections.status()
    assert (row.name, row.version, row.mode, row.runner, row.state, row.is_current) == (
        "daily_activity", 1, "async", "sql", "running", True)
    assert row.checkpoint == "0/0"


@pytest.mark.parametrize(("options", "field"), [
    ({"name": ""}, "name"),
    ({"name": " "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"mode": "sometimes"}, "mode"),
    ({"version": 0}, "version"),
    ({"handler": "bank.balances_typo(pyes.events)"}, "handler"),
    ({"handler": "pg_catalog.lower(text)"}, "handler"),
    ({"handler": None, "mode": "inline"}, "handler"),
    ({"tables": ["no_such_table"]}, "tables"),
    ({"schema": "no_such_schema"}, "schema"),
    ({"stream_column": "account"}, "stream_column"),
    ({"event_types": []}, "event_types"),
    ({"event_types": [""]}, "event_types"),
    ({"views": ["a", "b"]}, "views"),
    ({"rewind_handler": "bank.apply_balance(pyes.events)"}, "rewind_handler"),
])
def test_bad_definitions_are_refused_and_nothing_is_registered(
        projections: Projections, store: EventStore, options: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"name": "balances", "handler": "bank.apply_balance(pyes.events)", "mode": "inline",
                                 "schema": "bank", "tables": ["balances"], "event_types": BALANCE_TYPES}
    arguments.update(options)
    name, handler = arguments.pop("name"), arguments.pop("handler")
    with pytest.raises((InvalidProjection, psycopg.errors.UndefinedFunction)) as raised:
        projections.register(name, handler, **arguments)
    if isinstance(raised.value, InvalidProjection):
        assert raised.value.sqlstate == "PE304"
        assert raised.value.detail
    else:
        assert field == "handler"  # the regprocedure cast itself: no such function
    assert projections.status() == []


def test_a_version_is_registered_once(projections: Projections) -> None:
    register_activity(projections)
    with pytest.raises(ProjectionExists) as raised:
        register_activity(projections)
    assert raised.value.sqlstate == "PE303"
    assert "daily_activity" in (raised.value.detail or "")


def test_unknown_projections_raise_pe302(projections: Projections) -> None:
    for call in (lambda: projections.run_once("nope"), lambda: projections.pause("nope"),
                 lambda: projections.reset("nope"), lambda: projections.unregister("nope"),
                 lambda: projections.switch("nope", 2)):
        with pytest.raises(ProjectionNotFound) as raised:
            call()
        assert raised.value.sqlstate == "PE302"


def test_a_run_batch_size_out_of_range_is_refused(projections: Projections) -> None:
    register_activity(projections)
    with pytest.raises(Exception) as raised:  # the SQLSTATE is what counts
        projections.run_once("daily_activity", max_count=0)
    assert getattr(raised.value, "sqlstate", None) == "PE109"


def test_unregister_keeps_or_drops_tables(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    assert projections.unregister("daily_activity") == 1
    assert projections.status() == []
    with store.connection() as conn:
        assert conn.execute("SELECT to_regclass('bank.daily_activity') IS NOT NULL").fetchone() == (True,)
    register_activity(projections)
    projections.unregister("daily_activity", drop_tables=True)
    with store.connection() as conn:
        assert conn.execute("SELECT to_regclass('bank.daily_activity') IS NULL").fetchone() == (True,)


def test_register_file_runs_the_file_then_registers(store: EventStore) -> None:
    projections = Projections(store)
    projections.register_file(PROJECTIONS_SQL, "daily_activity", "bank.apply_daily_activity(pyes.events)",
                              schema="bank", tables=["daily_activity"], event_types=MONEY_TYPES)
    assert [row.name for row in projections.status()] == ["daily_activity"]


def test_register_file_is_one_transaction(store: EventStore) -> None:
    with pytest.raises(InvalidProjection):
        Projections(store).register_file(PROJECTIONS_SQL, "daily_activity", "bank.apply_daily_activity(pyes.events)",
                                         schema="bank", tables=["no_such_table"])
    with store.connection() as conn:
        assert conn.execute("SELECT to_regnamespace('bank') IS NULL").fetchone() == (True,)


# -- inline ------------------------------------------------------------------------------

def test_inline_projection_is_current_in_the_appending_transaction(projections: Projections, store: EventStore) -> None:
    register_balances(projections)
    with store.connection() as conn:
        store.append("account-1", [opened(), deposit("100.00"), withdrawal("30.50")], conn=conn)
        row = conn.execute("SELECT balance FROM bank.balances WHERE stream_id = 'account-1'").fetchone()
        assert row == (Decimal("69.50"),)
    assert balances(store) == {"account-1": Decimal("69.50")}
    assert state(store, "balances").state == "running"


def test_an_inline_projection_catches_up_with_history_first(projections: Projections, store: EventStore) -> None:
    for n in range(5):
        store.append(f"account-{n}", [opened(), deposit(f"{n + 1}.00")])
    projections.register("balances", "bank.apply_balance(pyes.events)", event_types=BALANCE_TYPES, mode="inline",
                         schema="bank", tables=["balances"])
    assert state(store, "balances").state == "catching_up"
    store.append("account-9", [opened()])  # not applied inline yet: left to the catch-up
    settle(store)
    assert projections.catch_up("balances") == 11
    assert state(store, "balances").state == "running"
    store.append("account-9", [deposit("9.00")])  # inline from now on
    assert balances(store) == folded_balances(store)


def test_a_failing_inline_handler_aborts_the_append(projections: Projections, store: EventStore) -> None:
    register_balances(projections)
    store.append("account-1", [opened()])
    bad = deposit("not a number")
    with pytest.raises(InlineProjectionFailed) as raised:
        store.append("account-1", [deposit("1.00"), bad])
    error = raised.value
    assert error.sqlstate == "PE301"
    assert "'balances'" in (error.detail or "")
    assert str(bad.id) in (error.detail or "")
    assert "22P02" in (error.detail or "")  # invalid input syntax for type numeric
    assert store.stream_version("account-1") == 1
    assert balances(store) == {"account-1": Decimal("0.00")}


def test_inline_consistency_under_concurrent_appends(projections: Projections, store: EventStore, dsn: str) -> None:
    """Writers append to a few accounts at once; a reader checks, again and again in one
    snapshot each time, that the balances equal the sums of the events."""
    register_balances(projections)
    accounts = [f"account-{n}" for n in range(4)]
    for account in accounts:
        store.append(account, [opened()])
    stop = threading.Event()
    mismatches: list[Any] = []

    def check() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT b.stream_id, b.balance, coalesce(sum(CASE e.type WHEN 'AccountBalanceDeposited'"
                    " THEN (e.data->>'amount')::numeric ELSE 0 END), 0)"
                    " FROM bank.balances b LEFT JOIN pyes.events e ON e.stream_id = b.stream_id"
                    " GROUP BY b.stream_id, b.balance").fetchall()
                mismatches.extend(row for row in rows if row[1] != row[2])

    def write(worker: int) -> None:
        for n in range(40):
            account = accounts[(worker + n) % len(accounts)]
            store.transaction(lambda conn, a=account: store.append(a, [deposit("1.25")], conn=conn))

    reader = threading.Thread(target=check)
    reader.start()
    try:
        writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    finally:
        stop.set()
        reader.join()
    assert mismatches == []
    assert balances(store) == folded_balances(store)
    assert sum(balances(store).values()) == Decimal("1.25") * 160


def test_pause_and_resume_an_inline_projection(projections: Projections, store: EventStore) -> None:
    register_balances(projections)
    store.append("account-1", [opened(), deposit("10.00")])
    projections.pause("balances")
    store.append("account-1", [deposit("5.00")])
    assert balances(store) == {"account-1": Decimal("10.00")}  # not applied while paused
    projections.resume("balances")
    assert state(store, "balances").state == "catching_up"
    settle(store)
    assert projections.catch_up("balances") == 1  # exactly the event it missed
    assert balances(store) == {"account-1": Decimal("15.00")}
    store.append("account-1", [deposit("1.00")])
    assert balances(store) == {"account-1": Decimal("16.00")}


# -- asynchronous --------------------------------------------------------------------------

def test_async_batches_move_the_checkpoint_with_the_writes(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    store.append("account-1", [opened(), deposit("10.00"), deposit("5.00"), withdrawal("1.00")])
    store.append("account-2", [opened(), deposit("7.00")])
    settle(store)
    first = projections.run_once("daily_activity", max_count=2)
    assert (first.processed, first.caught_up, first.state) == (2, False, "running")
    second = projections.run_once("daily_activity", max_count=2)
    assert (second.processed, second.caught_up) == (2, False)  # a full batch: there may be more
    third = projections.run_once("daily_activity", max_count=2)
    assert (third.processed, third.caught_up) == (0, True)
    with store.connection() as conn:
        rows = conn.execute("SELECT stream_id, deposited, withdrawn, movements FROM bank.daily_activity"
                            " ORDER BY stream_id").fetchall()
    assert rows == [("account-1", Decimal("15.00"), Decimal("1.00"), 3), ("account-2", Decimal("7.00"), 0, 1)]
    row = state(store, "daily_activity")
    assert row.events_processed == 4
    assert row.lag_events == 0
    # The checkpoint is past the last event, whatever its type.
    with store.connection() as conn:
        last = conn.execute("SELECT pyes.checkpoint_token(transaction_id, position) FROM pyes.events"
                            " ORDER BY transaction_id DESC, position DESC LIMIT 1").fetchone()
    assert last is not None and row.checkpoint == last[0]


def test_a_late_commit_is_not_skipped_and_status_names_the_holder(
        projections: Projections, store: EventStore, connect: Any) -> None:
    register_activity(projections)
    late = connect()
    late.execute("SET application_name = 'late-writer'")
    store.append("account-1", [opened(), deposit("1.00")], conn=late)  # A: takes its xid first, stays open
    late_pid = late.info.backend_pid
    store.append("account-2", [opened(), deposit("2.00")])  # B: commits first
    result = projections.run_once("daily_activity")
    assert result.processed == 0  # B is above A's transaction id: not readable yet
    row = state(store, "daily_activity")
    assert row.lag_events == 1
    # The holder is the oldest running transaction of the cluster: this test's own writer,
    # unless something older runs elsewhere on a shared server.
    with store.connection() as conn:
        oldest = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                              " ORDER BY age(backend_xid) DESC LIMIT 1").fetchone()
    assert oldest is not None
    assert row.held_by is not None
    assert f"pid {oldest[0]} " in row.held_by
    if oldest[0] == late_pid:
        assert "late-writer" in row.held_by
    late.commit()
    settle(store)
    result = projections.run_once("daily_activity")
    assert result.processed == 2
    with store.connection() as conn:
        rows = conn.execute("SELECT stream_id, deposited FROM bank.daily_activity ORDER BY stream_id").fetchall()
    assert rows == [("account-1", Decimal("1.00")), ("account-2", Decimal("2.00"))]
    assert state(store, "daily_activity").held_by is None


def test_lag_in_events_and_seconds(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    store.append("account-1", [opened(), deposit("1.00"), deposit("2.00")])
    row = state(store, "daily_activity")
    assert row.lag_events == 2  # its types only
    assert row.lag_seconds >= 0
    settle(store)
    projections.run_once("daily_activity")
    row = state(store, "daily_activity")
    assert (row.lag_events, row.lag_seconds) == (0, 0)


def test_a_handler_error_stops_the_projection_at_that_event(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    store.append("account-1", [opened(), deposit("1.00")])
    bad = deposit("oops")
    store.append("account-1", [deposit("2.00"), bad, deposit("3.00")])
    settle(store)
    checkpoint_before = state(store, "daily_activity").checkpoint
    result = projections.run_once("daily_activity")
    assert (result.processed, result.state) == (0, "failed")
    row = state(store, "daily_activity")
    assert row.state == "failed"
    assert row.failed_event_id == bad.id
    assert row.last_error_sqlstate == "22P02"
    assert row.checkpoint == checkpoint_before  # nothing of the batch took effect
    with store.connection() as conn:
        assert conn.execute("SELECT count(*) FROM bank.daily_activity").fetchone() == (0,)
    # Failed stays failed: running it again does nothing.
    assert projections.run_once("daily_activity").state == "failed"
    # Fix the handler, resume: the event that failed is retried, nothing is skipped.
    with store.connection() as conn:
        conn.execute("""CREATE OR REPLACE FUNCTION bank.apply_daily_activity(e pyes.events) RETURNS void
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO daily_activity AS d (stream_id, day, deposited, movements)
                VALUES (e.stream_id, current_date, CASE WHEN e.data->>'amount' ~ '^[0-9.]+$'
                        THEN (e.data->>'amount')::numeric ELSE 0 END, 1)
                ON CONFLICT (stream_id, day) DO UPDATE SET deposited = d.deposited + excluded.deposited,
                                                         movements = d.movements + 1;
            END $$""")
    projections.resume("daily_activity")
    assert projections.run_once("daily_activity").processed == 4
    with store.connection() as conn:
        assert conn.execute("SELECT deposited, movements FROM bank.daily_activity").fetchone() == (Decimal("6.00"), 4)
    row = state(store, "daily_activity")
    assert (row.state, row.last_error, row.failed_event_id) == ("running", None, None)


def test_paused_async_projection_does_nothing_until_resumed(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    projections.pause("daily_activity")
    store.append("account-1", [opened(), deposit("1.00")])
    settle(store)
    assert projections.run_once("daily_activity").processed == 0
    projections.resume("daily_activity")
    assert projections.run_once("daily_activity").processed == 1


def test_types_filter_and_other_categories(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    store.append("account-1", [opened(), deposit("1.00")])
    store.append("user-1", [NewEvent("UserRegistered", {"email": "a@example.org"})])
    settle(store)
    assert projections.run_once("daily_activity").processed == 1


def test_status_of_one_projection(projections: Projections) -> None:
    register_activity(projections)
    register_balances(projections)
    assert [row.name for row in projections.status()] == ["balances", "daily_activity"]
    assert [row.name for row in projections.status("balances")] == ["balances"]


def test_handlers_cannot_be_hijacked_through_the_callers_search_path(
        projections: Projections, store: EventStore, connect: Any) -> None:
    """A caller's search_path with a look-alike 'balances' table changes nothing: pyes runs the
    handler with the projection's schema first."""
    register_balances(projections)
    conn = connect(autocommit=True)
    conn.execute("CREATE SCHEMA evil; CREATE TABLE evil.balances (LIKE bank.balances INCLUDING ALL)")
    conn.execute("SET search_path = evil, public")
    conn.execute("SELECT pyes.append('account-1', %s::jsonb, 'any')",
                 ('[{"type": "AccountOpened", "data": {"owner": "Ann", "currency": "EUR"}}]',))
    assert conn.execute("SELECT count(*) FROM evil.balances").fetchone() == (0,)
    assert balances(store) == {"account-1": Decimal("0.00")}



def test_a_projection_held_by_another_session_is_busy(projections: Projections, store: EventStore, connect: Any) -> None:
    register_activity(projections)
    store.append("account-1", [deposit("1.00")])
    settle(store)
    holder = connect()
    holder.execute("SELECT * FROM pyes.projections WHERE name = 'daily_activity' FOR UPDATE")
    result = projections.run_once("daily_activity")
    assert (result.busy, result.processed) == (True, 0)
    holder.rollback()
    assert projections.run_once("daily_activity").processed == 1


@pytest.mark.parametrize("statement", [
    "SELECT pyes.lock_appends(NULL)",
    "SELECT pyes.lock_appends('-1 second')",
    "SELECT * FROM pyes.claim_projection_batch('daily_activity', 1, 10, NULL)",
    "SELECT pyes.advance_projection('daily_activity', 1, NULL, -1, false, NULL)",
    "SELECT pyes.fail_projection('daily_activity', NULL, NULL, NULL, 'x')",
    "SELECT pyes.switch_projection('daily_activity', NULL)",
])
def test_projection_functions_refuse_null_or_out_of_range_arguments(
        projections: Projections, store: EventStore, statement: str) -> None:
    register_activity(projections)
    before = state(store, "daily_activity")
    with pytest.raises(psycopg.Error) as raised, store.connection() as conn:
        conn.execute(statement)
    assert raised.value.sqlstate == "PE109"
    assert raised.value.diag.message_detail
    assert state(store, "daily_activity") == before


def test_fail_projection_names_an_unknown_projection(projections: Projections, store: EventStore) -> None:
    with pytest.raises(psycopg.Error) as raised, store.connection() as conn:
        conn.execute("SELECT pyes.fail_projection('nope', 1, NULL, NULL, 'x')")
    assert raised.value.sqlstate == "PE302"
