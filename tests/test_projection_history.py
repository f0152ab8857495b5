"""Projections over history: rebuilds, blue/green versions, rewinds and temporal builds."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import settle
from test_projections import (
    BALANCE_TYPES,
    balances,
    deposit,
    opened,
    register_activity,
    register_balances,
    state,
    withdrawal,
)

from pyes import (
    EventStore,
    NewEvent,
    ProjectionBusy,
    ProjectionIsCurrent,
    ProjectionNotCaughtUp,
    Projections,
    TemporalProjectionError,
)


def activity(store: EventStore, schema: str = "bank") -> list[tuple[Any, ...]]:
    with store.connection() as conn:
        return conn.execute(f"SELECT stream_id, deposited, withdrawn, movements FROM {schema}.daily_activity"
                            " ORDER BY stream_id").fetchall()


def history(store: EventStore, accounts: int = 6, rounds: int = 5) -> None:
    for n in range(accounts):
        store.append(f"account-{n}", [opened(f"owner {n}")])
    for r in range(rounds):
        for n in range(accounts):
            store.append(f"account-{n}", [deposit(f"{n + r + 1}.00"), withdrawal("0.50")])


# -- rebuild -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["inline", "async"])
def test_rebuild_equals_the_incremental_result(projections: Projections, store: EventStore, mode: str) -> None:
    register_balances(projections, mode=mode)
    history(store)
    settle(store)
    projections.catch_up("balances")
    incremental = balances(store)
    assert len(incremental) == 6
    projections.reset("balances")
    assert balances(store) == {}
    assert state(store, "balances").checkpoint == "0/0"
    assert projections.catch_up("balances", max_count=7) == 6 + 6 * 5 * 2
    assert balances(store) == incremental
    assert state(store, "balances").state == "running"


def test_reset_of_an_inline_projection_misses_no_concurrent_append(
        projections: Projections, store: EventStore) -> None:
    """Appends keep coming while the projection is reset and rebuilt: none is lost or doubled."""
    register_balances(projections)
    store.append("account-1", [opened()])
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        while not stop.is_set():
            store.transaction(lambda conn: store.append("account-1", [deposit("1.00")], conn=conn))
            written.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 5:
            time.sleep(0.01)
        projections.reset("balances")
        while len(written) < 10:
            time.sleep(0.01)
        settle(store)
        projections.catch_up("balances")
        while len(written) < 15:
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join()
    assert balances(store) == {"account-1": Decimal(len(written))}


# -- blue/green versions -----------------------------------------------------------------

V2_SQL = """
CREATE TABLE bank.balances_v2 (stream_id text PRIMARY KEY, owner text, balance numeric(20, 2) NOT NULL DEFAULT 0,
                               movements integer NOT NULL DEFAULT 0);
CREATE FUNCTION bank.apply_balance_v2(e pyes.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances_v2 AS b (stream_id, owner, balance, movements)
    VALUES (e.stream_id, e.data ->> 'owner',
            CASE e.type WHEN 'AccountBalanceDeposited' THEN (e.data ->> 'amount')::numeric
                        WHEN 'AccountBalanceWithdrawn' THEN -(e.data ->> 'amount')::numeric ELSE 0 END,
            CASE WHEN e.type LIKE 'AccountBalance%' THEN 1 ELSE 0 END)
    ON CONFLICT (stream_id) DO UPDATE SET balance = b.balance + excluded.balance,
                                          movements = b.movements + excluded.movements,
                                          owner = coalesce(b.owner, excluded.owner);
END $$;
"""


@pytest.mark.parametrize("shape", ["same columns, prepared statements", "other columns, unprepared"])
def test_blue_green_switch_with_no_failing_query(
        projections: Projections, store: EventStore, dsn: str, shape: str) -> None:
    """Readers query the stable view all along while v2 is built and switched to, and
    writers keep appending: no query fails. A view whose columns change cannot keep a prepared
    statement valid (PostgreSQL refuses a cached plan whose result type changed), so
    prepared readers are tested with a v2 of the same columns."""
    same = shape.startswith("same")
    register_balances(projections, views=["public.account_balances"])
    history(store)
    with store.connection() as conn:
        if same:
            conn.execute("CREATE SCHEMA bank_v2; CREATE TABLE bank_v2.balances (LIKE bank.balances INCLUDING ALL)")
        else:
            conn.execute(V2_SQL)
    v2_options: dict[str, Any] = (
        {"handler": "bank.apply_balance(pyes.events)", "schema": "bank_v2", "tables": ["balances"]} if same
        else {"handler": "bank.apply_balance_v2(pyes.events)", "schema": "bank", "tables": ["balances_v2"]})
    handler = v2_options.pop("handler")
    projections.register("balances", handler, event_types=BALANCE_TYPES, mode="inline", version=2,
                         stream_column="stream_id", views=["public.account_balances"], **v2_options)
    v2 = state(store, "balances", 2)
    assert (v2.is_current, v2.state) == (False, "catching_up")
    with pytest.raises(ProjectionNotCaughtUp) as raised:
        projections.switch("balances", 2)
    assert raised.value.sqlstate == "PE306"

    stop = threading.Event()
    errors: list[BaseException] = []
    seen_columns: set[int] = set()

    def read() -> None:
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=0 if same else None) as conn:
            while not stop.is_set():
                try:
                    cur = conn.execute("SELECT * FROM public.account_balances")
                    cur.fetchall()
                    seen_columns.add(len(cur.description or ()))
                except psycopg.Error as error:
                    errors.append(error)

    def write() -> None:
        n = 0
        while not stop.is_set():
            store.transaction(lambda conn, n=n: store.append(f"account-{n % 6}", [deposit("1.00")], conn=conn))
            n += 1

    threads = [threading.Thread(target=read), threading.Thread(target=read), threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    try:
        settle(store)
        projections.catch_up("balances", 2)  # built beside v1, then inline
        assert state(store, "balances", 2).state == "running"
        assert state(store, "balances", 1).is_current
        projections.switch("balances", 2)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert seen_columns == ({6} if same else {6, 4})  # v1's columns, then v2's
    assert state(store, "balances", 2).is_current
    assert not state(store, "balances", 1).is_current
    with store.connection() as conn:
        view = dict(conn.execute("SELECT stream_id, balance FROM public.account_balances").fetchall())
        v1 = dict(conn.execute("SELECT stream_id, balance FROM bank.balances").fetchall())
        table = "bank_v2.balances" if same else "bank.balances_v2"
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (6,)
    assert view == v1  # both versions kept up with every append

    with pytest.raises(ProjectionIsCurrent) as current:
        projections.unregister("balances", 2)
    assert current.value.sqlstate == "PE307"
    projections.unregister("balances", 1, drop_tables=True)
    with store.connection() as conn:
        assert conn.execute("SELECT to_regclass('bank.balances')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM public.account_balances").fetchone() == (6,)
    assert [row.version for row in projections.status("balances")] == [2]


def test_a_new_async_version_is_built_beside_the_current_one(projections: Projections, store: EventStore) -> None:
    register_activity(projections)
    history(store, accounts=2, rounds=2)
    settle(store)
    projections.catch_up("daily_activity")
    with store.connection() as conn:
        conn.execute("CREATE SCHEMA bank_v2; CREATE TABLE bank_v2.daily_activity (LIKE bank.daily_activity INCLUDING ALL)")
    # Same handler, other schema: unqualified names in the handler resolve to the new tables.
    projections.register("daily_activity", "bank.apply_daily_activity(pyes.events)",
                         event_types=["AccountBalanceDeposited", "AccountBalanceWithdrawn"], schema="bank_v2",
                         tables=["daily_activity"], version=2, stream_column="stream_id")
    assert activity(store, "bank_v2") == []
    projections.catch_up("daily_activity", 2)
    assert activity(store, "bank_v2") == activity(store, "bank")
    projections.switch("daily_activity", 2)
    assert [row.version for row in projections.status("daily_activity") if row.is_current] == [2]


# -- rewinds -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["inline", "async"])
def test_a_stream_keyed_projection_recomputes_the_stream_on_rewind(
        projections: Projections, store: EventStore, mode: str) -> None:
    register_balances(projections, mode=mode)
    store.append("account-1", [opened(), deposit("100.00"), withdrawal("30.00")])  # v1..v3
    store.append("account-2", [opened(), deposit("5.00")])
    store.append("account-1", [withdrawal("50.00")])  # v4: the mistake
    store.rewind("account-1", 3, expected_version=4, reason="typo", actor="ops")  # v5
    store.append("account-1", [deposit("1.00")])  # v6
    store.rewind("account-1", 2, expected_version=6, reason="undo more", actor="ops")  # v7: back to 100
    store.rewind("account-1", 6, expected_version=7, reason="no, as at v6", actor="ops")  # v8: 71
    settle(store)
    projections.catch_up("balances")
    assert balances(store) == {"account-1": Decimal("71.00"), "account-2": Decimal("5.00")}
    assert not state(store, "balances").needs_rebuild


REVERSIBLE_SQL = """
CREATE TABLE bank.totals (id int PRIMARY KEY, total numeric NOT NULL, rewinds int NOT NULL DEFAULT 0);
INSERT INTO bank.totals VALUES (1, 0);
CREATE FUNCTION bank.apply_total(e pyes.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE totals SET total = total + CASE e.type WHEN 'AccountBalanceDeposited' THEN (e.data->>'amount')::numeric
                                                  ELSE -(e.data->>'amount')::numeric END;
END $$;
CREATE FUNCTION bank.rewind_total(r pyes.events, cancelled pyes.events[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e pyes.events;
BEGIN
    FOREACH e IN ARRAY cancelled LOOP
        UPDATE totals SET total = total - CASE e.type WHEN 'AccountBalanceDeposited' THEN (e.data->>'amount')::numeric
                                                      ELSE -(e.data->>'amount')::numeric END;
    END LOOP;
    UPDATE totals SET rewinds = rewinds + 1;
END $$;
"""


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_a_rewind_handler_receives_the_cancelled_events(projections: Projections, store: EventStore, mode: str) -> None:
    with store.connection() as conn:
        conn.execute(REVERSIBLE_SQL)
    projections.register("total", "bank.apply_total(pyes.events)", event_types=["AccountBalanceDeposited",
                         "AccountBalanceWithdrawn"], mode=mode, schema="bank", tables=[],
                         rewind_handler="bank.rewind_total(pyes.events,pyes.events[])")
    projections.catch_up("total")
    store.append("account-1", [deposit("10.00"), deposit("20.00"), withdrawal("4.00")])
    store.append("account-2", [deposit("1.00")])
    store.rewind("account-1", 1, expected_version=3, reason="r", actor="a")  # cancels +20, -4
    store.append("account-1", [deposit("2.00")])
    store.rewind("account-1", 3, expected_version=5, reason="back to v3", actor="a")  # brings +20, -4 back; cancels +2
    settle(store)
    projections.catch_up("total")
    with store.connection() as conn:
        assert conn.execute("SELECT total, rewinds FROM bank.totals").fetchone() == (Decimal("27.00"), 2)
    assert not state(store, "total").needs_rebuild


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_a_projection_without_rewind_handling_is_marked_for_rebuild(
        projections: Projections, store: EventStore, mode: str) -> None:
    register_balances(projections, mode=mode, stream_column=None)
    store.append("account-1", [opened(), deposit("10.00"), deposit("99.00")])
    result = store.rewind("account-1", 2, expected_version=3, reason="r", actor="a")
    settle(store)
    projections.catch_up("balances")
    row = state(store, "balances")
    assert row.needs_rebuild
    assert row.needs_rebuild_reason is not None and "account-1" in row.needs_rebuild_reason
    assert str(result.positions[0]) in row.needs_rebuild_reason
    # Register it keyed by stream this time, rebuild: right, and no longer marked.
    projections.unregister("balances")
    projections.register("balances", "bank.apply_balance(pyes.events)", event_types=BALANCE_TYPES, mode=mode,
                         schema="bank", tables=["balances"], stream_column="stream_id")
    settle(store)
    projections.reset("balances")
    projections.catch_up("balances")
    assert balances(store) == {"account-1": Decimal("10.00")}
    assert not state(store, "balances").needs_rebuild


# -- temporal -------------------------------------------------------------------------------

def server_now(store: EventStore) -> Any:
    with store.connection() as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def test_temporal_projection_against_a_hand_computed_answer(projections: Projections, store: EventStore) -> None:
    register_balances(projections)
    store.append("account-1", [opened("Ann"), deposit("100.00")])
    store.append("account-2", [opened("Bob"), deposit("10.00")])
    tuesday = server_now(store)
    time.sleep(0.01)
    store.append("account-1", [withdrawal("60.00")])
    store.append("account-2", [NewEvent("AccountClosed", {"reason": "moved away"})])
    store.append("account-3", [opened("Cid"), deposit("3.00")])
    store.rewind("account-2", 2, expected_version=3, reason="closed by mistake", actor="ops")

    assert projections.as_of("balances", tuesday, "balances_tuesday") == 4
    with store.connection() as conn:
        then = conn.execute("SELECT owner, balance, is_open FROM balances_tuesday.balances ORDER BY owner").fetchall()
        now = conn.execute("SELECT owner, balance, is_open FROM bank.balances ORDER BY owner").fetchall()
    assert then == [("Ann", Decimal("100.00"), True), ("Bob", Decimal("10.00"), True)]
    assert now == [("Ann", Decimal("40.00"), True), ("Bob", Decimal("10.00"), True), ("Cid", Decimal("3.00"), True)]

    with pytest.raises(TemporalProjectionError) as exists:
        projections.as_of("balances", tuesday, "balances_tuesday")
    assert exists.value.sqlstate == "PE308"


def test_temporal_projection_refuses_handlers_that_pin_their_path(projections: Projections, store: EventStore) -> None:
    register_balances(projections)
    with store.connection() as conn:
        conn.execute("ALTER FUNCTION bank.apply_balance(pyes.events) SET search_path = bank")
    with pytest.raises(TemporalProjectionError) as raised:
        projections.as_of("balances", server_now(store), "elsewhere")
    assert "search_path" in (raised.value.detail or "")
    with store.connection() as conn:
        assert conn.execute("SELECT to_regnamespace('elsewhere')").fetchone() == (None,)


@pytest.mark.timeout(60)
def test_a_reset_gives_up_when_a_reader_keeps_the_table(projections: Projections, store: EventStore,
                                                        connect: Any) -> None:
    register_balances(projections)
    store.append("account-1", [opened(), deposit("3.00")])
    reader = connect()
    reader.execute("SELECT * FROM bank.balances")  # a transaction left open on the table
    with pytest.raises(ProjectionBusy) as raised:
        projections.reset("balances")
    assert raised.value.sqlstate == "PE305"
    assert "bank.balances" in (raised.value.detail or "")
    reader.rollback()
    store.append("account-1", [deposit("1.00")])  # appends were held back only while it tried
    assert balances(store) == {"account-1": Decimal("4.00")}
    assert state(store, "balances").state == "running"
