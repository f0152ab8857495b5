"""Batch handlers: a projection handler taking (pyes.events[]) gets the events of a batch (or
of an appending statement) in order, in one call, and can write its table set-based. Every
path that calls a handler (asynchronous batches, inline appends, rewinds, failures,
temporal builds) must give it the same events, in the same order, as a per-event handler."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import settle
from test_projections import balances, deposit, folded_balances, opened, state, withdrawal

from pyes import EventStore, InlineProjectionFailed, InvalidProjection, Projections

# The bank demo's balance, written set-based: one INSERT ... ON CONFLICT per call for all the
# accounts of the batch. "calls" records each call's event count, to show how it was called.
BATCH_SQL = """
CREATE SCHEMA batchbank;
CREATE TABLE batchbank.balances (stream_id text PRIMARY KEY, balance numeric(20, 2) NOT NULL, events integer NOT NULL);
-- (stream_id: a projection keyed by stream has the column in each table; left NULL here.)
CREATE TABLE batchbank.calls (n serial PRIMARY KEY, stream_id text, events integer NOT NULL, types text[] NOT NULL);
CREATE FUNCTION batchbank.apply_balances(events pyes.events[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO calls (events, types) SELECT cardinality(events), ARRAY(SELECT e.type FROM unnest(events) e);
    INSERT INTO balances AS b (stream_id, balance, events)
    SELECT e.stream_id,
           sum(CASE e.type WHEN 'AccountBalanceDeposited' THEN (e.data ->> 'amount')::numeric
                           WHEN 'AccountBalanceWithdrawn' THEN -(e.data ->> 'amount')::numeric ELSE 0 END),
           count(*)
      FROM unnest(events) AS e
     GROUP BY e.stream_id
    ON CONFLICT (stream_id) DO UPDATE SET balance = b.balance + excluded.balance, events = b.events + excluded.events;
END;
$$;
"""
TYPES = ["AccountOpened", "AccountBalanceDeposited", "AccountBalanceWithdrawn"]


@pytest.fixture
def batch_store(store: EventStore) -> EventStore:
    with store.connection() as conn:
        conn.execute(BATCH_SQL)
    return store


def register(projections: Projections, mode: str) -> None:
    projections.register("batch_balances", "batchbank.apply_balances(pyes.events[])", event_types=TYPES, mode=mode,
                         schema="batchbank", tables=["balances", "calls"], stream_column="stream_id")


def calls(store: EventStore) -> list[tuple[int, list[str]]]:
    with store.connection() as conn:
        return [(n, types) for n, types in conn.execute("SELECT events, types FROM batchbank.calls ORDER BY n")]


def batch_balances(store: EventStore) -> dict[str, Decimal]:
    return balances(store, "batchbank.balances")


def test_an_async_batch_handler_gets_each_batch_in_one_call(projections: Projections, batch_store: EventStore) -> None:
    for n in range(5):
        batch_store.append(f"account-{n}", [opened(), deposit(f"{n + 1}0.00"), withdrawal("1.50")])
    batch_store.append("account-0", [deposit("0.25")])
    register(projections, "async")
    settle(batch_store)
    assert projections.catch_up("batch_balances", max_count=4) == 16
    assert batch_balances(batch_store) == folded_balances(batch_store) == {
        f"account-{n}": Decimal(f"{n + 1}0.00") - Decimal("1.50") + (Decimal("0.25") if n == 0 else 0) for n in range(5)}
    got = calls(batch_store)
    assert [n for n, _types in got] == [4, 4, 4, 4]  # 16 events of its types, in 4 calls, not 16
    assert [t for _n, types in got for t in types] == ["AccountOpened", "AccountBalanceDeposited", "AccountBalanceWithdrawn"] * 5 + [
        "AccountBalanceDeposited"]  # in the global order
    assert state(batch_store, "batch_balances").events_processed == 16


def test_an_inline_batch_handler_gets_each_appending_statement_in_one_call(
        projections: Projections, batch_store: EventStore) -> None:
    batch_store.append("account-1", [opened(), deposit("5.00")])
    register(projections, "inline")
    projections.catch_up("batch_balances")
    assert state(batch_store, "batch_balances").state == "running"
    with batch_store.connection() as conn:
        batch_store.append("account-1", [deposit("100.00"), withdrawal("30.50"), deposit("0.50")], conn=conn)
        row = conn.execute("SELECT balance, events FROM batchbank.balances WHERE stream_id = 'account-1'").fetchone()
        assert row == (Decimal("75.00"), 5)  # current inside the appending transaction
    assert calls(batch_store)[-1] == (3, ["AccountBalanceDeposited", "AccountBalanceWithdrawn", "AccountBalanceDeposited"])
    assert batch_balances(batch_store) == folded_balances(batch_store)


def test_a_failing_batch_names_the_event_and_writes_nothing(projections: Projections, batch_store: EventStore) -> None:
    batch_store.append("account-1", [opened(), deposit("1.00")])
    bad = deposit("oops")
    batch_store.append("account-1", [deposit("2.00"), bad, deposit("3.00")])
    register(projections, "async")
    settle(batch_store)
    result = projections.run_once("batch_balances")
    assert (result.processed, result.state) == (0, "failed")
    row = state(batch_store, "batch_balances")
    assert (row.failed_event_id, row.last_error_sqlstate) == (bad.id, "22P02")
    assert calls(batch_store) == [] and batch_balances(batch_store) == {}  # the whole batch rolled back


def test_an_inline_batch_failure_aborts_the_append_and_names_the_event(
        projections: Projections, batch_store: EventStore) -> None:
    register(projections, "inline")
    projections.catch_up("batch_balances")
    batch_store.append("account-1", [opened()])
    bad = deposit("not a number")
    with pytest.raises(InlineProjectionFailed) as raised:
        batch_store.append("account-1", [deposit("1.00"), bad, deposit("2.00")])
    detail = raised.value.detail or ""
    assert raised.value.sqlstate == "PE301" and str(bad.id) in detail and "22P02" in detail
    assert batch_store.stream_version("account-1") == 1
    assert batch_balances(batch_store) == {"account-1": Decimal("0.00")}


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_a_stream_keyed_batch_projection_recomputes_the_stream_on_rewind(
        projections: Projections, batch_store: EventStore, mode: str) -> None:
    register(projections, mode)
    if mode == "inline":
        projections.catch_up("batch_balances")
    batch_store.append("account-1", [opened(), deposit("100.00"), withdrawal("30.00")])
    batch_store.append("account-2", [opened(), deposit("5.00")])
    batch_store.append("account-1", [withdrawal("50.00")])  # v4: the mistake
    batch_store.rewind("account-1", 3, expected_version=4, reason="typo", actor="ops")
    settle(batch_store)
    projections.catch_up("batch_balances")
    assert batch_balances(batch_store) == {"account-1": Decimal("70.00"), "account-2": Decimal("5.00")}
    with batch_store.connection() as conn:
        assert conn.execute("SELECT events FROM batchbank.balances WHERE stream_id = 'account-1'").fetchone() == (3,)
    assert not state(batch_store, "batch_balances").needs_rebuild


def test_a_temporal_build_with_a_batch_handler(projections: Projections, batch_store: EventStore) -> None:
    batch_store.append("account-1", [opened(), deposit("10.00")])
    with batch_store.connection() as conn:
        middle = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    batch_store.append("account-1", [deposit("5.00")])
    register(projections, "async")
    settle(batch_store)
    projections.catch_up("batch_balances")
    projections.as_of("batch_balances", middle, "batchbank_then")
    with batch_store.connection() as conn:
        assert conn.execute("SELECT balance FROM batchbank_then.balances").fetchall() == [(Decimal("10.00"),)]
    assert batch_balances(batch_store) == {"account-1": Decimal("15.00")}


@pytest.mark.parametrize("signature", ["batchbank.wrong(pyes.events[], integer)", "batchbank.wrong(text[])"])
def test_a_handler_of_another_shape_is_refused(projections: Projections, batch_store: EventStore, signature: str) -> None:
    with batch_store.connection() as conn:
        conn.execute("CREATE FUNCTION batchbank.wrong(pyes.events[], integer) RETURNS void LANGUAGE sql AS ''")
        conn.execute("CREATE FUNCTION batchbank.wrong(text[]) RETURNS void LANGUAGE sql AS ''")
    with pytest.raises(InvalidProjection) as refused:
        projections.register("wrong", signature, schema="batchbank", tables=["balances"])
    assert "or (pyes.events[]) for a batch handler" in (refused.value.detail or "")
    assert projections.status() == []

