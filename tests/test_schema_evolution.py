"""Schema evolution: event schemas checked on append, SQL and Python upcasters (chains,
renames), the read functions returning the current shape, and the drift check."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import settle

from pyes import (
    Aggregate,
    EventStore,
    InvalidEvent,
    InvalidEventSchema,
    InvalidUpcaster,
    MissingEventField,
    NewEvent,
    SchemaConflict,
    SchemaNotFound,
    UpcasterFailed,
    UpcasterMissing,
    WrongFieldType,
    handles,
)
from pyes.check import check
from pyes.cli import main
from pyes.errors import translate
from pyes.evolution import json_schema, register_schemas
from pyes.typed import EventRegistry, GenericEvent, MissingUpcaster

DEPOSITED_V2 = {
    "type": "object",
    "required": ["amount", "currency"],
    "properties": {"amount": {"type": ["integer", "string"]}, "currency": {"type": "string"}},
}
ADD_CURRENCY = """
    CREATE SCHEMA IF NOT EXISTS evo;
    CREATE FUNCTION evo.deposited_v1_to_v2(data jsonb) RETURNS jsonb
        LANGUAGE sql IMMUTABLE AS $$ SELECT data || '{"currency": "EUR"}' $$;
    CREATE FUNCTION evo.deposited_v2_to_v3(data jsonb) RETURNS jsonb
        LANGUAGE sql IMMUTABLE AS $$ SELECT (data - 'amount') || jsonb_build_object('amount_cents', ((data ->> 'amount')::numeric * 100)::bigint) $$;
    CREATE FUNCTION evo.broken(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT '[1]'::jsonb $$;
    CREATE FUNCTION evo.not_an_upcaster(data text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT '{}'::jsonb $$;
"""


def sql(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    try:
        return conn.execute(query, params).fetchall()
    except psycopg.Error as error:
        raise translate(error) from error


@pytest.fixture
def conn(connect: Any) -> psycopg.Connection[Any]:
    c: psycopg.Connection[Any] = connect(autocommit=True)
    c.execute(ADD_CURRENCY)
    return c


def deposit(store: EventStore, stream: str, data: dict[str, Any], version: int = 1, type: str = "Deposited") -> None:
    store.append(stream, [NewEvent(type, data, schema_version=version)])


# -- the append check ----------------------------------------------------------------------


def test_appends_are_checked_against_the_registered_schema(store: EventStore, conn: Any) -> None:
    deposit(store, "account-1", {"anything": True}, version=2)  # no schema yet: nothing is checked
    assert sql(conn, "SELECT pyes.register_event_schema('Deposited', 2, %s)", json.dumps(DEPOSITED_V2)) == [(True,)]
    with pytest.raises(MissingEventField) as missing:
        deposit(store, "account-1", {"amount": "10.00"}, version=2)
    assert missing.value.sqlstate == "PE601"
    assert "'currency'" in str(missing.value) and "Deposited version 2" in (missing.value.detail or "")
    with pytest.raises(WrongFieldType) as wrong:
        deposit(store, "account-1", {"amount": "1", "currency": 978}, version=2)
    assert "'currency' is number 978, expected string" in (wrong.value.detail or "")
    with pytest.raises(WrongFieldType, match="expected integer or string"):
        deposit(store, "account-1", {"amount": 1.5, "currency": "EUR"}, version=2)  # 1.5 is no integer
    with pytest.raises(WrongFieldType):
        deposit(store, "account-1", {"amount": 1.0, "currency": "EUR"}, version=2)  # neither is 1.0
    with pytest.raises(WrongFieldType, match="is null"):
        deposit(store, "account-1", {"amount": None, "currency": "EUR"}, version=2)
    with pytest.raises(InvalidEvent):  # data that is not an object: pyes.append's own check
        sql(conn, "SELECT pyes.append('account-1', '[{\"type\": \"Deposited\", \"schema_version\": 2, \"data\": [1]}]')")
    # A bad event anywhere in a batch: nothing of the batch is written.
    with pytest.raises(MissingEventField):
        store.append("account-1", [NewEvent("Deposited", {"amount": 1, "currency": "EUR"}, schema_version=2),
                                   NewEvent("Deposited", {"amount": 2}, schema_version=2)])
    assert store.stream_version("account-1") == 1
    deposit(store, "account-1", {"amount": 100, "currency": "EUR", "note": "extra fields are fine"}, version=2)
    deposit(store, "account-1", {"whatever": 1}, version=1)  # version 1 has no schema
    assert store.stream_version("account-1") == 3


def test_schema_registration_rules(conn: Any) -> None:
    for bad in ('[]', '{"type": "array"}', '{"required": "amount"}', '{"properties": {"a": {"type": "money"}}}',
                '{"properties": {"a": {"type": []}}}', '{"properties": {"a": 1}}'):
        with pytest.raises(InvalidEventSchema):
            sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, %s::jsonb)", bad)
    with pytest.raises(InvalidEventSchema, match="version 0"):
        sql(conn, "SELECT pyes.register_event_schema('Deposited', 0, '{}')")
    with pytest.raises(InvalidEventSchema):
        sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, '{}', 'yaml')")
    assert sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, '{\"required\": [\"amount\"]}')") == [(True,)]
    assert sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, '{\"required\": [\"amount\"]}')") == [(False,)]
    with pytest.raises(SchemaConflict) as conflict:
        sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, '{}')")
    assert "version 2" in (conflict.value.hint or "")
    assert sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, '{}', p_replace => true)") == [(True,)]
    sql(conn, "SELECT pyes.unregister_event_schema('Deposited', 1)")
    with pytest.raises(SchemaNotFound):
        sql(conn, "SELECT pyes.unregister_event_schema('Deposited', 1)")


# -- current versions and SQL upcasters ------------------------------------------------------


def test_current_schema_version(conn: Any) -> None:
    assert sql(conn, "SELECT pyes.current_schema_version('Deposited'), pyes.current_schema_versions()") == [(None, {})]
    sql(conn, "SELECT pyes.register_event_schema('Deposited', 1, '{}')")
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')")
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 2, 'evo.deposited_v2_to_v3(jsonb)')")  # no schema v3: still current
    sql(conn, "SELECT pyes.register_upcaster('Old', 4, NULL, 'New')")
    assert sql(conn, "SELECT pyes.current_schema_version('Deposited'), pyes.current_schema_version('New'),"
                     " pyes.current_schema_version('Old')") == [(3, 5, None)]
    assert sql(conn, "SELECT pyes.current_schema_versions(ARRAY['Deposited', 'New', 'Unknown'])") == [({"Deposited": 3, "New": 5},)]
    sql(conn, "SELECT pyes.register_event_schema('Deposited', 7, '{}')")
    assert sql(conn, "SELECT pyes.current_schema_version('Deposited')") == [(7,)]


def test_read_functions_return_the_upcast_shape(store: EventStore, conn: Any) -> None:
    deposit(store, "account-1", {"amount": "10.50"})
    deposit(store, "account-1", {"amount": "2", "currency": "USD"}, version=2)
    deposit(store, "account-1", {"amount_cents": 5, "currency": "CHF"}, version=3)
    store.append("account-1", [NewEvent("Noted", {"text": "hi"})])
    settle(store)
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')")
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 2, 'evo.deposited_v2_to_v3(jsonb)')")
    expected = [
        ("Deposited", 3, {"amount_cents": 1050, "currency": "EUR"}),  # two steps
        ("Deposited", 3, {"amount_cents": 200, "currency": "USD"}),
        ("Deposited", 3, {"amount_cents": 5, "currency": "CHF"}),  # already current
        ("Noted", 1, {"text": "hi"}),
    ]
    for query in ("SELECT type, schema_version, data FROM pyes.read_stream('account-1')",
                  "SELECT type, schema_version, data FROM pyes.read_all()",
                  "SELECT type, schema_version, data FROM pyes.read_category('account')",
                  "SELECT type, schema_version, data FROM pyes.read_stream_between('account-1')",
                  "SELECT type, schema_version, data FROM pyes.recorded_events ORDER BY position"):
        assert sql(conn, query) == expected, query
    first = store.read_stream("account-1")[0]
    assert (first.type, first.schema_version, first.data) == expected[0]
    assert sql(conn, "SELECT data FROM pyes.get_event(%s)", first.event_id) == [(expected[0][2],)]
    # Stored as written: the events table is unchanged.
    assert sql(conn, "SELECT schema_version, data FROM pyes.events ORDER BY position LIMIT 1") == [(1, {"amount": "10.50"})]
    # For projection handlers: a pyes.events row in its current shape, one or an array.
    assert sql(conn, "SELECT (pyes.upcast_event(e)).data FROM pyes.events e ORDER BY position LIMIT 1") == [(expected[0][2],)]
    assert sql(conn, "SELECT (u).schema_version FROM unnest(pyes.upcast_events(ARRAY(SELECT e FROM pyes.events e ORDER BY position))) u") \
        == [(3,), (3,), (3,), (1,)]
    assert sql(conn, "SELECT data FROM pyes.upcast('Deposited', 2, '{\"amount\": 1}')") == [({"amount_cents": 100},)]


def test_rename_is_an_upcast(store: EventStore, conn: Any) -> None:
    store.append("account-1", [NewEvent("MoneyIn", {"amount": "1"}), NewEvent("Deposited", {"amount": "2"}, schema_version=2)])
    settle(store)
    sql(conn, "SELECT pyes.register_upcaster('MoneyIn', 1, NULL, 'Deposited')")  # a pure rename: v1 -> Deposited v2
    rows = sql(conn, "SELECT type, schema_version, data FROM pyes.read_all()")
    assert rows == [("Deposited", 2, {"amount": "1"}), ("Deposited", 2, {"amount": "2"})]
    # A type filter matches the new name (the stored name is gone from what readers see).
    assert len(sql(conn, "SELECT 1 FROM pyes.read_all(NULL, 10, ARRAY['Deposited'])")) == 2
    assert sql(conn, "SELECT 1 FROM pyes.read_all(NULL, 10, ARRAY['MoneyIn'])") == []
    # A rename and a transformation in one step, and then a step within the new type.
    sql(conn, "SELECT pyes.register_upcaster('MoneyIn', 1, 'evo.deposited_v1_to_v2(jsonb)', 'Deposited', p_replace => true)")
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 2, 'evo.deposited_v2_to_v3(jsonb)')")
    assert sql(conn, "SELECT type, schema_version, data FROM pyes.read_all()") == [
        ("Deposited", 3, {"amount_cents": 100, "currency": "EUR"}), ("Deposited", 3, {"amount_cents": 200})]


def test_a_missing_step_is_an_error_never_silent(store: EventStore, conn: Any) -> None:
    deposit(store, "account-1", {"amount": "1"})
    sql(conn, "SELECT pyes.register_event_schema('Deposited', 2, '{}')")
    with pytest.raises(UpcasterMissing) as missing:
        sql(conn, "SELECT * FROM pyes.read_stream('account-1')")
    assert missing.value.sqlstate == "PE605"
    assert "'Deposited' from version 1 to 2" in str(missing.value)
    assert "current version 2" in (missing.value.detail or "")
    with pytest.raises(UpcasterMissing):
        store.read_stream("account-1")
    # A chain with a hole in the middle names the hole and where the event started.
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')")
    sql(conn, "SELECT pyes.register_event_schema('Deposited', 4, '{}')")
    with pytest.raises(UpcasterMissing) as hole:
        sql(conn, "SELECT * FROM pyes.read_all()")
    assert "from version 2 to 3" in str(hole.value) and "stored as 'Deposited' version 1" in (hole.value.detail or "")


def test_upcaster_registration_rules(store: EventStore, conn: Any) -> None:
    with pytest.raises(InvalidUpcaster, match="not a plain function"):
        sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.not_an_upcaster(text)')")
    with pytest.raises(InvalidUpcaster, match="change nothing"):
        sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, NULL)")
    with pytest.raises(InvalidUpcaster, match="to itself"):
        sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, NULL, 'Deposited')")
    with pytest.raises(InvalidUpcaster, match="version"):
        sql(conn, "SELECT pyes.register_upcaster('Deposited', 0, 'evo.deposited_v1_to_v2(jsonb)')")
    with pytest.raises(InvalidUpcaster, match="names no SQL function"):
        sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)', NULL, 'python')")
    assert sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')") == [(True,)]
    assert sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')") == [(False,)]
    with pytest.raises(SchemaConflict):
        sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.broken(jsonb)')")
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.broken(jsonb)', p_replace => true)")
    deposit(store, "account-1", {"amount": "1"})
    with pytest.raises(UpcasterFailed, match="returned array"):
        sql(conn, "SELECT * FROM pyes.read_stream('account-1')")
    sql(conn, "SELECT pyes.unregister_upcaster('Deposited', 1)")
    with pytest.raises(SchemaNotFound):
        sql(conn, "SELECT pyes.unregister_upcaster('Deposited', 1)")
    assert sql(conn, "SELECT count(*) FROM pyes.event_type_versions") == [(0,)]


# -- Python: schemas from classes, Python upcasters ------------------------------------------


def make_registry() -> tuple[EventRegistry, type[Any], type[Any]]:
    reg = EventRegistry()

    @reg.event("Deposited", version=1)
    @dataclass(frozen=True)
    class DepositedV1:
        amount: Decimal

    @reg.event("Deposited", version=3)
    @dataclass(frozen=True)
    class Deposited:
        amount: Decimal
        currency: str = "EUR"
        note: str | None = None

    return reg, DepositedV1, Deposited


def test_json_schema_of_a_class() -> None:
    _reg, _v1, deposited = make_registry()
    assert json_schema(deposited) == {
        "type": "object", "required": ["amount"],
        "properties": {"amount": {"type": ["integer", "string"]}, "currency": {"type": "string"},
                       "note": {"type": ["null", "string"]}},
    }


def test_python_upcasters_run_after_the_sql_ones(store: EventStore, conn: Any) -> None:
    reg, _v1, deposited = make_registry()

    @reg.upcaster("Deposited", from_version=2)
    def add_note(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "note": f"was {data['currency']}"}

    deposit(store, "account-1", {"amount": "10"})
    sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')")
    register_schemas(conn, reg)  # schemas v1 and v3, and the Python step from v2
    # SQL readers stop at the Python step: version 2, the SQL step applied.
    assert sql(conn, "SELECT schema_version, data FROM pyes.read_stream('account-1')") == [(2, {"amount": "10", "currency": "EUR"})]
    # The registry finishes the chain and gives the current class.
    assert reg.decode(store.read_stream("account-1")[0]) == deposited(Decimal(10), "EUR", "was EUR")
    assert reg.current_version("Deposited") == 3
    # A check of appends by the class's schema.
    with pytest.raises(WrongFieldType):
        deposit(store, "account-1", {"amount": "1", "note": 5}, version=3)


def test_python_chain_rename_and_missing_step() -> None:
    reg, v1, deposited = make_registry()
    # Without an upcaster, an old version with a class of its own decodes to that class.
    assert reg.decode_data("Deposited", 1, {"amount": "1"}) == v1(Decimal(1))
    with pytest.raises(MissingUpcaster, match="version 2"):
        reg.decode_data("Deposited", 2, {"amount": "1"})
    reg.register_upcaster("MoneyIn", 1, lambda d: {"amount": d["value"]}, to_type="Deposited")
    reg.register_upcaster("Deposited", 2, lambda d: {**d, "currency": "USD"})
    assert reg.decode_data("MoneyIn", 1, {"value": "3"}) == deposited(Decimal(3), "USD")
    assert reg.upcast("MoneyIn", 1, {"value": "3"}) == ("Deposited", 3, {"amount": "3", "currency": "USD"})
    assert isinstance(reg.decode_data("Other", 1, {}), GenericEvent)
    with pytest.raises(ValueError, match="already has"):
        reg.register_upcaster("Deposited", 2, lambda d: d)


# -- the drift check -------------------------------------------------------------------------


class Account(Aggregate):
    balance: Decimal = Decimal(0)


def test_check_reports_each_kind_of_drift(store: EventStore, conn: Any, projections: Any) -> None:
    reg, v1, deposited = make_registry()
    report = check(conn, registry=EventRegistry())
    assert report.ok, report.text()

    deposit(store, "account-1", {"amount": "1"})
    deposit(store, "account-1", {"amount": "1", "currency": "EUR"}, version=2)
    report = check(conn, registry=reg, register=True)
    assert report.registered == ["Deposited v1 schema", "Deposited v3 schema"]
    kinds = {(p.kind, p.subject) for p in report.problems}
    # v1 and v2 have no way to the code's current version 3.
    assert kinds == {("no_upcast_path", "Deposited v1"), ("no_upcast_path", "Deposited v2")}, report.text()
    assert "no upcaster from Deposited v1 to v2 (the current version is 3)" in report.text()

    sql(conn, "SELECT pyes.register_upcaster('Deposited', 1, 'evo.deposited_v1_to_v2(jsonb)')")

    @reg.upcaster("Deposited", from_version=2)
    def to_v3(data: dict[str, Any]) -> dict[str, Any]:
        return data

    report = check(conn, registry=reg)
    assert [(p.kind, p.subject) for p in report.problems] == [("upcaster_not_registered", "Deposited v2")]
    report = check(conn, registry=reg, register=True)
    assert report.ok, report.text()

    # A handler of Deposited that only knows v1.
    class Ledger(Aggregate):
        @handles(v1)
        def _old(self, e: Any) -> None: ...

    report = check(conn, registry=reg, handlers=[Ledger])
    assert [(p.kind, p.subject) for p in report.problems] == [("no_handler_for_current", "Ledger")]
    assert "handles Deposited (v1) but not its current version 3" in report.text()

    class Ledger2(Aggregate):
        @handles(deposited)
        def _new(self, e: Any) -> None: ...

    assert check(conn, registry=reg, handlers=[Ledger2]).ok

    # A changed class under the same version.
    reg2, _v1b, _d = make_registry()

    @reg2.event("Withdrawn", version=1)
    @dataclass(frozen=True)
    class Withdrawn:
        amount: Decimal

    register_schemas(conn, reg2)
    reg3 = EventRegistry()

    @reg3.event("Withdrawn", version=1)
    @dataclass(frozen=True)
    class WithdrawnChanged:
        amount: Decimal
        fee: Decimal

    assert [p.kind for p in check(conn, registry=reg3).problems if p.subject == "Withdrawn v1"] == ["schema_differs"]
    with pytest.raises(SchemaConflict):
        register_schemas(conn, reg3)


def test_check_reports_stale_projections_and_renamed_filters(store: EventStore, conn: Any, projections: Any) -> None:
    from bank import register_projections

    register_projections(projections)
    sql(conn, "SELECT pyes.record_projection_schema_versions('balances', 1)")
    assert check(conn, registry=EventRegistry()).ok
    sql(conn, "SELECT pyes.register_event_schema('AccountBalanceDeposited', 2, '{}')")
    sql(conn, "SELECT pyes.register_upcaster('AccountBalanceDeposited', 1, 'evo.deposited_v1_to_v2(jsonb)')")
    problems = {(p.kind, p.subject): p.detail for p in check(conn, registry=EventRegistry()).problems}
    assert set(problems) == {("projection_stale", "projection balances v1"), ("projection_stale", "projection daily_activity v1")}
    assert "built from AccountBalanceDeposited v1 (now v2)" in problems[("projection_stale", "projection balances v1")]
    sql(conn, "SELECT pyes.record_projection_schema_versions('balances', 1)")
    sql(conn, "SELECT pyes.record_projection_schema_versions('daily_activity', 1)")
    assert check(conn, registry=EventRegistry()).ok
    sql(conn, "SELECT pyes.register_upcaster('AccountClosed', 1, NULL, 'AccountShut')")
    problems = {(p.kind, p.subject): p.detail for p in check(conn, registry=EventRegistry()).problems}
    assert list(problems) == [("renamed_type", "projection balances v1")]
    assert "renamed to AccountShut" in problems[("renamed_type", "projection balances v1")]


def test_pyes_check_command_exit_codes(store: EventStore, dsn: str, conn: Any) -> None:
    runner = CliRunner()
    # --register: whatever typed events this test session imported are registered first.
    result = runner.invoke(main, ["check", "--dsn", dsn, "--register"])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output
    deposit(store, "account-1", {"amount": "1"})
    sql(conn, "SELECT pyes.register_event_schema('Deposited', 2, '{}')")
    result = runner.invoke(main, ["check", "--dsn", dsn])
    assert result.exit_code == 1, result.output
    assert "no_upcast_path" in result.output and "Deposited v1" in result.output
    result = runner.invoke(main, ["check", "--dsn", dsn, "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["problems"][0]["kind"] == "no_upcast_path"
    result = runner.invoke(main, ["check", "--dsn", dsn, "--module", f"no_such_module_{uuid.uuid4().hex}"])
    assert result.exit_code != 0
