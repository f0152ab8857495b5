"""Functions are hijack-proof (schema-qualified, pinned search_path) and declare the right
volatility; events are immutable for their owner."""

from __future__ import annotations

import datetime
from typing import Any

import psycopg
import pytest

from pyes import EventStore, ImmutableEvent, NewEvent, StreamDeleteForbidden
from pyes.errors import translate

READ_ONLY = {
    "read_stream", "read_all", "read_category", "read_correlation", "get_event", "stream_version", "get_stream",
    "head_checkpoint", "max_event_bytes", "validate_events", "replayed_append",
    "load_snapshot", "check_rewinds", "read_stream_between", "read_stream_until", "stream_version_at",
}
IMMUTABLE = {"checkpoint_token", "parse_checkpoint", "validate_stream_id",
             "validate_max_count", "validate_types", "validate_snapshot_kind"}
# Each area adds its own functions here (one line per area keeps parallel work apart).
READ_ONLY |= {"projection_status", "handler_name", "handler_takes_batch", "effective_versions", "stream_events_for", "check_projection_handler",
              "validate_projection", "projection_batch", "xmin_holder", "last_event_below",
              "inline_dispatch_source", "inline_dispatch_current",
              "upcast_for_projection", "projection_type_names"}  # projections
READ_ONLY |= {"get_subscription", "read_subscription", "check_parked_ids", "read_window", "window_bounds"}  # subscriptions
READ_ONLY |= {"capture_metadata", "capture_correlation_id", "capture_registered", "capture_row_stream", "capture_fold", "capture_row_at", "capture_rows_at", "capture_history", "capture_list"}  # capture
READ_ONLY |= {"current_schema_version", "current_schema_versions", "upcast", "upcast_event", "upcast_events", "upcast_path_problem", "schema_drift"}  # schema evolution
IMMUTABLE |= {"validate_schema_type_name", "validate_json_schema", "json_type_matches", "check_event_data", "invalid_upcaster"}  # schema evolution
IMMUTABLE |= {"invalid_projection", "invalid_projection_argument"}  # projections
IMMUTABLE |= {"validate_subscription_name", "validate_subscription_filters", "stream_partition", "validate_lease_seconds", "validate_window"}  # subscriptions
IMMUTABLE |= {"capture_key_part", "capture_stream_id", "capture_key", "capture_check_moment"}  # capture
READ_ONLY |= {"inline_projection_blocks", "check_new_events"}  # the trigger after appends


def test_every_function_pins_its_search_path(connect: Any) -> None:
    conn = connect()
    rows = conn.execute(
        """SELECT p.proname, p.proconfig, p.provolatile, p.prosecdef FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pyes'"""
    ).fetchall()
    assert len(rows) >= 20
    for name, config, volatility, security_definer in rows:
        assert config == ["search_path=pg_catalog, pg_temp"], name
        assert not security_definer, name
        if name in READ_ONLY:
            assert volatility == "s", f"{name} should be STABLE"
        elif name in IMMUTABLE:
            assert volatility == "i", f"{name} should be IMMUTABLE"
        else:
            assert volatility == "v", f"{name} should be VOLATILE"


def test_a_hostile_search_path_changes_nothing(connect: Any, store: EventStore) -> None:
    """Objects that shadow built-ins in a schema placed first on the caller's search_path
    must not be picked up by pyes's functions."""
    conn = connect(autocommit=True)
    conn.execute("CREATE SCHEMA evil")
    conn.execute("CREATE TABLE evil.events (LIKE pyes.events)")
    conn.execute("CREATE TABLE evil.streams (LIKE pyes.streams)")
    conn.execute("CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '1970-01-01'::timestamptz $$")
    conn.execute("CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$")
    conn.execute("CREATE FUNCTION evil.split_part(text, text, integer) RETURNS text LANGUAGE sql AS $$ SELECT 'hijacked' $$")
    conn.execute("CREATE FUNCTION evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'object' $$")
    conn.execute("SET search_path = evil, pg_catalog, public")

    conn.execute("SELECT * FROM pyes.append('account-1', '[{\"type\": \"Opened\"}, {\"type\": \"Deposited\"}]')")
    with pytest.raises(psycopg.Error) as caught:  # a hijacked jsonb_typeof would let this through
        conn.execute("SELECT * FROM pyes.append('account-1', '[{\"type\": \"Bad\", \"data\": [1]}]')")
    assert caught.value.sqlstate == "PE103"
    rows = conn.execute("SELECT event_id, category, recorded_at FROM pyes.read_stream('account-1')").fetchall()
    assert len(rows) == 2
    for event_id, category, recorded_at in rows:
        assert str(event_id) != "00000000-0000-0000-0000-000000000000"
        assert category == "account"
        assert recorded_at > datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    assert conn.execute("SELECT count(*) FROM evil.events").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM evil.streams").fetchone() == (0,)


@pytest.mark.parametrize("statement", [
    "UPDATE pyes.events SET data = '{\"amount\": 1000000}'",
    "UPDATE pyes.events SET type = 'Deposited' WHERE version = 1",
    "DELETE FROM pyes.events",
    "DELETE FROM pyes.events WHERE version = 2",
    "TRUNCATE pyes.events",
    "TRUNCATE pyes.events CASCADE",
])
def test_events_are_immutable_for_the_owner(store: EventStore, connect: Any, statement: str) -> None:
    store.append("account-1", [NewEvent("Opened"), NewEvent("Withdrawn", {"amount": 5})])
    conn = connect(autocommit=True)
    owner = conn.execute("SELECT tableowner = current_user FROM pg_tables WHERE schemaname = 'pyes' AND tablename = 'events'").fetchone()
    assert owner == (True,), "this test must run as the table's owner"
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement)
    mapped = translate(caught.value)
    assert isinstance(mapped, ImmutableEvent)
    assert mapped.sqlstate == "PE201" and mapped.detail
    assert [(e.type, e.data) for e in store.read_stream("account-1")] == [("Opened", {}), ("Withdrawn", {"amount": 5})]


def test_events_are_immutable_for_a_role_granted_everything(store: EventStore, connect: Any) -> None:
    store.append("account-1", [NewEvent("Opened")])
    conn = connect(autocommit=True)
    role = f"pyes_app_{conn.info.backend_pid}"
    conn.execute(f"CREATE ROLE {role}")
    try:
        conn.execute(f"GRANT USAGE ON SCHEMA pyes TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA pyes TO {role}")
        conn.execute(f"SET ROLE {role}")
        for statement in ("UPDATE pyes.events SET type = 'X'", "DELETE FROM pyes.events", "TRUNCATE pyes.events"):
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(statement)
            assert caught.value.sqlstate == "PE201", statement
        conn.execute("RESET ROLE")
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
    assert len(store.read_stream("account-1")) == 1


@pytest.mark.parametrize("statement", ["DELETE FROM pyes.streams", "TRUNCATE pyes.streams"])
def test_streams_cannot_be_deleted(store: EventStore, connect: Any, statement: str) -> None:
    store.append("account-1", [NewEvent("Opened")])
    conn = connect(autocommit=True)
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement)
    assert isinstance(translate(caught.value), StreamDeleteForbidden)
    assert store.stream_version("account-1") == 1
