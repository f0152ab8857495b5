"""Installing the schema: alembic (``pyes.migrate`` and ``pyes db``) and plain psql give the
same catalog, and the migration goes down and up again."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _psql import psql_binary, psql_environment
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict

import pyes.migrate
from pyes import EventStore, NewEvent
from pyes.cli import main
from pyes.dsn import PG_VARIABLES

REPO = Path(__file__).resolve().parent.parent
INSTALL_SQL = REPO / "sql" / "install.sql"

# Everything that makes up the pyes schema, one query per kind of object, each returning
# rows that name no OID so that two databases can be compared.
CATALOG_QUERIES: dict[str, str] = {
    "schema": """
        SELECT n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text
          FROM pg_namespace n WHERE n.nspname = 'pyes'
    """,
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, c.relreplident, c.relrowsecurity,
               c.reloptions::text, c.relacl::text, pg_get_userbyid(c.relowner)
          FROM pg_class c
         WHERE c.relnamespace = 'pyes'::regnamespace
    """,
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               a.attcollation::regcollation::text, a.attstorage, a.attacl::text
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'pyes'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "sequences": """
        SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
               s.seqcache, s.seqcycle
          FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
         WHERE c.relnamespace = 'pyes'::regnamespace
    """,
    "constraints": """
        SELECT coalesce(c.relname, format_type(k.contypid, NULL)), k.conname, k.contype,
               pg_get_constraintdef(k.oid), k.condeferrable, k.condeferred, k.convalidated
          FROM pg_constraint k LEFT JOIN pg_class c ON c.oid = k.conrelid
         WHERE k.connamespace = 'pyes'::regnamespace
    """,
    "indexes": """
        SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid),
               i.indisunique, i.indisprimary
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relnamespace = 'pyes'::regnamespace
    """,
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'pyes'::regnamespace AND NOT t.tgisinternal
    """,
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_arguments(p.oid),
               pg_get_function_result(p.oid), p.prokind, l.lanname, p.provolatile, p.proparallel,
               p.proisstrict, p.prosecdef, p.proleakproof, p.proconfig::text, md5(p.prosrc),
               p.proacl::text, pg_get_userbyid(p.proowner)
          FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace = 'pyes'::regnamespace
    """,
    "views": """
        SELECT c.relname, pg_get_viewdef(c.oid, true)
          FROM pg_class c
         WHERE c.relnamespace = 'pyes'::regnamespace AND c.relkind IN ('v', 'm')
    """,
    "types": """
        SELECT t.typname, t.typtype, t.typcategory, coalesce(r.relname, ''), format_type(t.typelem, NULL),
               format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault
          FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid
         WHERE t.typnamespace = 'pyes'::regnamespace
    """,
    "enum_labels": """
        SELECT t.typname, e.enumsortorder, e.enumlabel
          FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
         WHERE t.typnamespace = 'pyes'::regnamespace
    """,
    "comments": """
        SELECT o.type, o.identity, d.description
          FROM pg_description d, pg_identify_object(d.classoid, d.objoid, d.objsubid) o
         WHERE o.schema = 'pyes' OR (o.type = 'schema' AND o.identity = 'pyes')
    """,
    "dependencies_outside_pyes": """
        -- Objects of other schemas that pyes objects depend on (types, functions...), by name.
        SELECT DISTINCT r.type, r.identity
          FROM pg_depend d,
               pg_identify_object(d.classid, d.objid, d.objsubid) o,
               pg_identify_object(d.refclassid, d.refobjid, d.refobjsubid) r
         WHERE o.schema = 'pyes' AND r.schema IS DISTINCT FROM 'pyes' AND r.schema <> 'pg_catalog'
    """,
}


def catalog_dump(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """The pyes schema as the catalogs describe it, each kind of object sorted."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regnamespace('pyes')").fetchone() == (None,):
            return {kind: [] for kind in CATALOG_QUERIES}
        return {
            kind: sorted(conn.execute(query).fetchall(), key=lambda row: tuple(map(repr, row)))
            for kind, query in CATALOG_QUERIES.items()
        }


def assert_same_catalog(left: dict[str, list[tuple[Any, ...]]], right: dict[str, list[tuple[Any, ...]]]) -> None:
    # One kind at a time, so that a failure shows a short diff.
    for kind in CATALOG_QUERIES:
        assert left[kind] == right[kind], kind


def assert_nontrivial(dump: dict[str, list[tuple[Any, ...]]]) -> None:
    functions = {(row[0], row[1]) for row in dump["functions"]}
    appends = sorted(arguments for name, arguments in functions if name == "append")
    assert len(appends) == 2, appends
    assert appends[0].startswith("p_stream_id text, p_events jsonb, p_expected_version bigint"), appends
    assert appends[1].startswith("p_stream_id text, p_events jsonb, p_expected_version text"), appends
    assert {"read_stream", "read_all", "read_category", "stream_version"} <= {name for name, _ in functions}
    assert {("streams", "r"), ("events", "r"), ("recorded_events", "v")} <= {(r[0], r[1]) for r in dump["relations"]}
    columns = {(row[0], row[2]): row for row in dump["columns"]}
    assert columns[("events", "position")][6] == "a"  # GENERATED ALWAYS AS IDENTITY
    assert columns[("streams", "category")][7] == ""  # plain since pyes_0008, set by a trigger
    assert len(dump["indexes"]) >= 6
    assert {row[1] for row in dump["triggers"]} >= {"events_immutable_rows", "events_immutable_table", "streams_category"}
    assert any(row[0] == "recorded_events" for row in dump["views"])
    assert any(row[0] == "schema" for row in dump["comments"])
    assert any("CHECK" in row[3] for row in dump["constraints"])


def _schema_exists(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT to_regnamespace('pyes') IS NOT NULL").fetchone()
    assert row is not None
    return bool(row[0])


def _tables_outside_pyes(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pyes', 'pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchall()
    return {row[0] for row in rows}


_databases = itertools.count()


@pytest.fixture
def second_empty_dsn(pg_server: Any) -> Iterator[str]:
    """Another database without the schema, next to ``empty_dsn``."""
    name = f"pyes_test_{os.getpid()}_second_{next(_databases)}"
    janitor = pg_server.janitor(name, template="template0")
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


def psql_install(dsn: str) -> subprocess.CompletedProcess[str]:
    """``psql -v ON_ERROR_STOP=1 -f sql/install.sql``, as install.sql documents it."""
    return subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(INSTALL_SQL), "-d", dsn],
        check=False,
        capture_output=True,
        text=True,
        env=psql_environment(),
        timeout=120,
    )


# -- alembic and psql give the same schema ------------------------------------------------


def test_alembic_and_psql_install_the_same_schema(empty_dsn: str, second_empty_dsn: str) -> None:
    pyes.migrate.upgrade(empty_dsn)
    installed = psql_install(second_empty_dsn)
    assert installed.returncode == 0, installed.stderr
    assert installed.stderr == ""
    by_alembic = catalog_dump(empty_dsn)
    by_psql = catalog_dump(second_empty_dsn)
    assert_nontrivial(by_alembic)
    assert_same_catalog(by_alembic, by_psql)
    # Only alembic's version table lies outside the schema, and only in the alembic database.
    assert _tables_outside_pyes(empty_dsn) == {"public.pyes_alembic_version"}
    assert _tables_outside_pyes(second_empty_dsn) == set()


def test_psql_install_is_one_transaction(empty_dsn: str) -> None:
    assert psql_install(empty_dsn).returncode == 0
    before = catalog_dump(empty_dsn)
    assert_nontrivial(before)
    # Running it again fails on CREATE SCHEMA and, being one transaction, changes nothing.
    again = psql_install(empty_dsn)
    assert again.returncode != 0
    assert 'schema "pyes" already exists' in again.stderr
    assert_same_catalog(catalog_dump(empty_dsn), before)


def test_psql_install_matches_the_migrated_template(dsn: str, empty_dsn: str) -> None:
    # The per-test databases are clones of the template that conftest migrates with alembic.
    installed = psql_install(empty_dsn)
    assert installed.returncode == 0, installed.stderr
    assert_same_catalog(catalog_dump(dsn), catalog_dump(empty_dsn))


# -- down and up again --------------------------------------------------------------------


def test_downgrade_to_base_and_upgrade_again(empty_dsn: str) -> None:
    assert pyes.migrate.current(empty_dsn) == []
    pyes.migrate.upgrade(empty_dsn)
    assert pyes.migrate.current(empty_dsn) == [pyes.migrate.head()]
    first = catalog_dump(empty_dsn)
    assert_nontrivial(first)

    with EventStore(empty_dsn, max_size=1) as store:
        result = store.append("account-1", [NewEvent("Opened", {"owner": "ann"})])
        assert result.stream_version == 1
        assert [e.type for e in store.read_stream("account-1")] == ["Opened"]

    pyes.migrate.downgrade(empty_dsn, "base")
    assert not _schema_exists(empty_dsn)
    assert pyes.migrate.current(empty_dsn) == []
    assert all(rows == [] for rows in catalog_dump(empty_dsn).values())

    pyes.migrate.upgrade(empty_dsn)
    assert pyes.migrate.current(empty_dsn) == [pyes.migrate.head()]
    assert_same_catalog(catalog_dump(empty_dsn), first)
    with EventStore(empty_dsn, max_size=1) as store:
        # The events went with the schema; the stream starts again at version 1.
        assert store.read_stream("account-1") == []
        assert store.stream_version("account-1") == 0
        assert store.append("account-1", [NewEvent("Opened")], 0).stream_version == 1


def test_stepping_over_0008_keeps_the_streams(empty_dsn: str) -> None:
    """0008 turns pyes.streams.category into a plain column and its downgrade rebuilds the
    table: the rows, their metadata and their categories survive both ways."""
    pyes.migrate.upgrade(empty_dsn)
    with EventStore(empty_dsn, max_size=1) as store:
        store.append("account-1", [NewEvent("Opened"), NewEvent("Deposited")])
        store.append("ledger-x-9", [NewEvent("Posted")])
        store.set_stream_metadata("account-1", {"owner": "ann"})
    query = "SELECT stream_id, category, version, last_xid::text, metadata, created_at, updated_at FROM pyes.streams ORDER BY 1"
    with psycopg.connect(empty_dsn) as conn:
        before = conn.execute(query).fetchall()
    assert [(row[0], row[1], row[2]) for row in before] == [("account-1", "account", 2), ("ledger-x-9", "ledger", 1)]

    pyes.migrate.downgrade(empty_dsn, "pyes_0007")
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute(query).fetchall() == before
        generated = conn.execute("SELECT attgenerated FROM pg_attribute WHERE attrelid = 'pyes.streams'::regclass"
                                 " AND attname = 'category'").fetchone()
        assert generated == ("s",)
    with EventStore(empty_dsn, max_size=1) as store:  # appends work at 0007 too
        assert store.append("account-2", [NewEvent("Opened")]).stream_version == 1

    pyes.migrate.upgrade(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        rows = conn.execute(query).fetchall()
    assert rows[:1] + rows[2:] == before
    assert (rows[1][0], rows[1][1], rows[1][2]) == ("account-2", "account", 1)
    with EventStore(empty_dsn, max_size=1) as store:
        assert store.append("account-1", [NewEvent("Closed")], 2).stream_version == 3


def test_0009_brings_an_earlier_installs_functions_up_to_date(empty_dsn: str) -> None:
    """A database that an earlier pyes migrated to pyes_0008 has that pyes's function bodies,
    and no function it added since: pyes_0009 applies this package's."""
    pyes.migrate.upgrade(empty_dsn, "pyes_0008")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:  # as the earlier pyes left it
        conn.execute("DROP FUNCTION pyes.handler_takes_batch(regprocedure)")
        conn.execute("CREATE OR REPLACE FUNCTION pyes.capture_row() RETURNS trigger LANGUAGE plpgsql"
                     " SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN NULL; END $$")
    pyes.migrate.upgrade(empty_dsn)
    assert pyes.migrate.current(empty_dsn) == ["pyes_0009"]
    with psycopg.connect(empty_dsn) as conn:
        found = conn.execute("SELECT to_regprocedure('pyes.handler_takes_batch(regprocedure)') IS NOT NULL").fetchone()
        source = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'pyes.capture_row()'::regprocedure").fetchone()
    assert found == (True,)
    assert source is not None and "pyes.capture_write" in source[0]  # the body of sql/functions/111


def test_offline_sql_installs_the_same_schema(empty_dsn: str, second_empty_dsn: str, tmp_path: Path) -> None:
    from alembic import command

    buffer = io.StringIO()
    config = pyes.migrate.alembic_config(stdout=buffer)
    config.output_buffer = buffer
    command.upgrade(config, "heads", sql=True)
    script = tmp_path / "offline.sql"
    script.write_text(buffer.getvalue())
    assert "CREATE OR REPLACE FUNCTION pyes.append(" in buffer.getvalue()

    completed = subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), "-d", empty_dsn],
        check=False,
        capture_output=True,
        text=True,
        env=psql_environment(),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert pyes.migrate.current(empty_dsn) == [pyes.migrate.head()]
    pyes.migrate.upgrade(second_empty_dsn)
    assert_same_catalog(catalog_dump(empty_dsn), catalog_dump(second_empty_dsn))


def test_upgrade_twice_is_a_no_op(dsn: str) -> None:
    before = catalog_dump(dsn)
    assert pyes.migrate.current(dsn) == [pyes.migrate.head()]
    pyes.migrate.upgrade(dsn)
    pyes.migrate.upgrade(dsn, "head")
    assert pyes.migrate.current(dsn) == [pyes.migrate.head()]
    assert_same_catalog(catalog_dump(dsn), before)


def test_history_lists_the_head_revision() -> None:
    history = pyes.migrate.history()
    assert history, "no migrations found"
    assert history[0][0] == pyes.migrate.head()
    assert history[-1][1] is None  # the first revision starts from base
    revisions = [revision for revision, _, _ in history]
    assert len(revisions) == len(set(revisions))


# -- the pyes db commands -------------------------------------------------------------------


def _clear_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYES_DATABASE_URL", raising=False)
    for name in PG_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_cli_with_dsn_option(empty_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_configuration(monkeypatch)
    head = pyes.migrate.head()

    result = _invoke("db", "current", "--dsn", empty_dsn)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "base (pyes is not installed)"

    result = _invoke("db", "upgrade", "--dsn", empty_dsn)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"pyes schema at {head}"
    assert pyes.migrate.current(empty_dsn) == [head]
    assert_nontrivial(catalog_dump(empty_dsn))

    result = _invoke("db", "current", "--dsn", empty_dsn)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == head

    result = _invoke("db", "history")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(pyes.migrate.history())
    assert lines[0].startswith(f"{pyes.migrate.history()[0][1] or 'base'} -> {head}  ")
    assert lines[-1].startswith("base -> ")
    assert "pyes core" in result.output

    result = _invoke("db", "downgrade", "--dsn", empty_dsn, "base")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "pyes schema at base"
    assert not _schema_exists(empty_dsn)

    result = _invoke("db", "current", "--dsn", empty_dsn)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "base (pyes is not installed)"

    result = _invoke("db", "upgrade", "--dsn", empty_dsn, head)
    assert result.exit_code == 0, result.output
    assert pyes.migrate.current(empty_dsn) == [head]


def test_cli_with_pyes_database_url(empty_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_configuration(monkeypatch)
    monkeypatch.setenv("PYES_DATABASE_URL", empty_dsn)
    head = pyes.migrate.head()

    result = _invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"pyes schema at {head}"
    assert pyes.migrate.current(empty_dsn) == [head]

    result = _invoke("db", "current")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == head

    result = _invoke("db", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "pyes schema at base"
    assert not _schema_exists(empty_dsn)


def test_cli_dsn_option_wins_over_the_environment(
    empty_dsn: str, second_empty_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_configuration(monkeypatch)
    monkeypatch.setenv("PYES_DATABASE_URL", second_empty_dsn)
    result = _invoke("db", "upgrade", "--dsn", empty_dsn)
    assert result.exit_code == 0, result.output
    assert _schema_exists(empty_dsn)
    assert not _schema_exists(second_empty_dsn)


def test_cli_with_pg_variables(empty_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_configuration(monkeypatch)
    params = conninfo_to_dict(empty_dsn)
    for key, variable in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("dbname", "PGDATABASE")):
        if params.get(key):
            monkeypatch.setenv(variable, str(params[key]))
    if params.get("password"):
        monkeypatch.setenv("PGPASSWORD", str(params["password"]))
    result = _invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert pyes.migrate.current(empty_dsn) == [pyes.migrate.head()]


# Without any configuration the commands use the embedded database: tests/test_cli_embedded.py.


def test_psql_install_then_stamp_lets_alembic_take_over(empty_dsn: str) -> None:
    completed = subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(REPO / "sql" / "install.sql"), "-d", empty_dsn],
        check=False, capture_output=True, text=True, env=psql_environment(), timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert pyes.migrate.current(empty_dsn) == []
    result = CliRunner().invoke(main, ["db", "stamp", "--dsn", empty_dsn])
    assert result.exit_code == 0, result.output
    assert pyes.migrate.current(empty_dsn) == [pyes.migrate.head()]
    pyes.migrate.upgrade(empty_dsn)  # nothing to run, and no "schema pyes already exists"
    with EventStore(empty_dsn, max_size=1) as store:
        assert store.append("account-1", [NewEvent("Opened")]).stream_version == 1


# Revisions that add no object of their own: they apply the function files again, so that a
# database an earlier pyes migrated runs this package's functions (see sql/install.sql).
REFRESH_REVISIONS = {"pyes_0009"}


def test_each_revision_steps_down_and_up(dsn: str) -> None:
    """Down one revision at a time and back up: the schema comes back identical."""
    head = catalog_dump(dsn)
    revisions = [rev for rev, _down, _msg in pyes.migrate.history()]  # newest first
    assert len(revisions) >= 2
    for newer, older in itertools.pairwise(revisions):
        before = catalog_dump(dsn)
        pyes.migrate.downgrade(dsn, older)
        assert pyes.migrate.current(dsn) == [older]
        if newer in REFRESH_REVISIONS:
            assert_same_catalog(catalog_dump(dsn), before)
        else:
            assert catalog_dump(dsn) != head
        pyes.migrate.upgrade(dsn, newer)
        pyes.migrate.downgrade(dsn, older)
    pyes.migrate.upgrade(dsn)
    assert pyes.migrate.current(dsn) == [pyes.migrate.head()]
    assert_same_catalog(catalog_dump(dsn), head)


def test_a_revision_gives_the_same_schema_going_up_or_down(empty_dsn: str, dsn: str) -> None:
    pyes.migrate.upgrade(empty_dsn, "pyes_0001")
    pyes.migrate.downgrade(dsn, "pyes_0001")
    assert_same_catalog(catalog_dump(empty_dsn), catalog_dump(dsn))
