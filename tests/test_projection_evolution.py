"""Projections and schema evolution: handlers receive upcast events (renames included), and
the schema versions a projection is built from are recorded when it is registered or reset."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest import settle

from pyes import EventStore, NewEvent, Projections

SQL = """
CREATE SCHEMA money;
CREATE TABLE money.by_currency (currency text PRIMARY KEY, total numeric NOT NULL);
CREATE FUNCTION money.apply(e pyes.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Written for the current shape only: v2 has a currency.
    IF e.schema_version <> 2 OR e.type <> 'MoneyDeposited' THEN
        RAISE EXCEPTION 'unexpected % v%', e.type, e.schema_version;
    END IF;
    INSERT INTO by_currency AS b VALUES (e.data->>'currency', (e.data->>'amount')::numeric)
    ON CONFLICT (currency) DO UPDATE SET total = b.total + excluded.total;
END $$;
CREATE FUNCTION money.v1_to_v2(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE
    AS $$ SELECT d || '{"currency": "EUR"}' $$;
"""


def totals(store: EventStore) -> dict[str, Decimal]:
    with store.connection() as conn:
        return dict(conn.execute("SELECT currency, total FROM money.by_currency ORDER BY 1").fetchall())


def built_with(store: EventStore) -> Any:
    with store.connection() as conn:
        row = conn.execute("SELECT built_with FROM pyes.projection_schema_versions WHERE name = 'money'").fetchone()
    return row[0] if row else None


@pytest.fixture
def evolved(store: EventStore) -> EventStore:
    """Deposits stored as v1 (no currency, under the old name Deposited) and as v2; an
    upcaster renames and adds the default currency."""
    with store.connection() as conn:
        conn.execute(SQL)
    store.append("wallet-1", [NewEvent("Deposited", {"amount": "10.00"})])
    store.append("wallet-1", [NewEvent("MoneyDeposited", {"amount": "5.00", "currency": "USD"}, schema_version=2)])
    with store.connection() as conn:
        # Deposited v1 becomes MoneyDeposited v2: renamed, and given the default currency.
        conn.execute("SELECT pyes.register_upcaster('Deposited', 1, 'money.v1_to_v2(jsonb)', 'MoneyDeposited')")
        conn.execute("SELECT pyes.register_event_schema('MoneyDeposited', 2, %s)",
                     ('{"type": "object", "required": ["amount", "currency"]}',))
    return store


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_handlers_receive_upcast_and_renamed_events(evolved: EventStore, mode: str) -> None:
    projections = Projections(evolved)
    projections.register("money", "money.apply(pyes.events)", event_types=["MoneyDeposited"], mode=mode,
                         schema="money", tables=["by_currency"])
    settle(evolved)
    projections.catch_up("money")
    evolved.append("wallet-2", [NewEvent("Deposited", {"amount": "1.00"})])  # an old writer, still v1
    settle(evolved)
    projections.catch_up("money")
    assert totals(evolved) == {"EUR": Decimal("11.00"), "USD": Decimal("5.00")}
    [status] = projections.status("money")
    assert (status.state, status.lag_events) == ("running", 0)


def test_a_rewind_replays_upcast_events(evolved: EventStore) -> None:
    projections = Projections(evolved)
    with evolved.connection() as conn:
        conn.execute("ALTER TABLE money.by_currency ADD COLUMN stream_id text")
        conn.execute("""CREATE TABLE money.per_wallet (stream_id text PRIMARY KEY, total numeric NOT NULL);
            CREATE FUNCTION money.apply_wallet(e pyes.events) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                IF e.schema_version <> 2 THEN RAISE EXCEPTION 'v%', e.schema_version; END IF;
                INSERT INTO per_wallet AS w VALUES (e.stream_id, (e.data->>'amount')::numeric)
                ON CONFLICT (stream_id) DO UPDATE SET total = w.total + excluded.total;
            END $$""")
    projections.register("wallets", "money.apply_wallet(pyes.events)", event_types=["MoneyDeposited"],
                         mode="inline", schema="money", tables=["per_wallet"], stream_column="stream_id")
    settle(evolved)
    projections.catch_up("wallets")
    evolved.append("wallet-1", [NewEvent("MoneyDeposited", {"amount": "100.00", "currency": "EUR"}, schema_version=2)])
    evolved.rewind("wallet-1", 2, expected_version=3, reason="r", actor="a")  # replays v1 (upcast) and v2
    with evolved.connection() as conn:
        assert conn.execute("SELECT total FROM money.per_wallet").fetchone() == (Decimal("15.00"),)


def test_the_versions_a_projection_is_built_from_are_recorded(evolved: EventStore) -> None:
    projections = Projections(evolved)
    projections.register("money", "money.apply(pyes.events)", event_types=["MoneyDeposited"],
                         schema="money", tables=["by_currency"])
    assert built_with(evolved) == {"MoneyDeposited": 2}
    settle(evolved)
    projections.catch_up("money")
    with evolved.connection() as conn:
        conn.execute("SELECT pyes.register_event_schema('MoneyDeposited', 3, '{\"type\": \"object\"}')")
        conn.execute("CREATE FUNCTION money.v2_to_v3(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT d $$")
        conn.execute("SELECT pyes.register_upcaster('MoneyDeposited', 2, 'money.v2_to_v3(jsonb)')")
        drift = conn.execute("SELECT problem, subject FROM pyes.schema_drift()").fetchall()
    assert ("projection_stale", "projection money v1") in drift
    assert built_with(evolved) == {"MoneyDeposited": 2}  # running batches change nothing
    projections.reset("money")
    assert built_with(evolved) == {"MoneyDeposited": 3}
    with evolved.connection() as conn:
        drift = conn.execute("SELECT problem, subject FROM pyes.schema_drift()").fetchall()
    assert ("projection_stale", "projection money v1") not in drift
