"""pyes projections ...: through click's runner against a real server."""

from __future__ import annotations

import json
from decimal import Decimal

from bank import MONEY_TYPES, PROJECTIONS_SQL
from click.testing import CliRunner
from conftest import settle
from test_projections import deposit, opened, withdrawal

from pyes import EventStore
from pyes.cli import common, main


def register_from_file(dsn: str) -> None:
    result = CliRunner().invoke(main, [
        "projections", "register", str(PROJECTIONS_SQL), "--dsn", dsn, "--name", "balances",
        "--handler", "bank.apply_balance(pyes.events)", "--mode", "inline", "--schema", "bank",
        "--tables", "balances", "--stream-column", "stream_id",
        "--types", "AccountOpened," + ",".join(MONEY_TYPES), "--types", "AccountClosed"])
    assert result.exit_code == 0, result.output
    assert "registered projection 'balances' version 1 (inline, catching_up)" in result.stdout


def status(dsn: str) -> dict[str, dict[str, object]]:
    result = CliRunner().invoke(main, ["projections", "status", "--dsn", dsn, "--format", "json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_register_run_and_status(store: EventStore, dsn: str) -> None:
    store.append("account-1", [opened(), deposit("10.00"), withdrawal("2.50")])
    register_from_file(dsn)
    settle(store)
    run = CliRunner().invoke(main, ["projections", "run", "--once", "--dsn", dsn])
    assert run.exit_code == 0, run.output
    assert "3 events applied" in run.stdout
    row = status(dsn)["balances"]
    assert (row["state"], row["mode"], row["lag_events"], row["is_current"]) == ("running", "inline", 0, True)
    table = CliRunner().invoke(main, ["projections", "status", "--dsn", dsn])
    assert table.exit_code == 0 and "balances" in table.stdout
    with store.connection() as conn:
        assert conn.execute("SELECT balance FROM bank.balances").fetchone() == (Decimal("7.50"),)


def test_rebuild_shows_progress_and_gives_the_same_rows(store: EventStore, dsn: str) -> None:
    register_from_file(dsn)
    assert CliRunner().invoke(main, ["projections", "run", "--once", "--dsn", dsn]).exit_code == 0
    for n in range(5):
        store.append(f"account-{n}", [opened(), deposit(f"{n}.00")])
    settle(store)
    result = CliRunner().invoke(main, ["projections", "rebuild", "balances", "--dsn", dsn, "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert "rebuilding balances" in result.stdout and "10/10" in result.stdout
    assert "rebuilt 'balances': 10 events applied" in result.stdout
    with store.connection() as conn:
        assert conn.execute("SELECT sum(balance) FROM bank.balances").fetchone() == (Decimal("10.00"),)


def test_pause_resume_switch_drop_and_as_of(store: EventStore, dsn: str) -> None:
    register_from_file(dsn)
    assert CliRunner().invoke(main, ["projections", "run", "--once", "--dsn", dsn]).exit_code == 0
    store.append("account-1", [opened(), deposit("5.00")])
    paused = CliRunner().invoke(main, ["projections", "pause", "balances", "--dsn", dsn])
    assert paused.exit_code == 0 and "paused 'balances'" in paused.stdout
    assert status(dsn)["balances"]["state"] == "paused"
    resumed = CliRunner().invoke(main, ["projections", "resume", "balances", "--dsn", dsn])
    assert resumed.exit_code == 0 and "resumed 'balances'" in resumed.stdout
    # Switching to a version that does not exist, or one not caught up, is refused.
    missing = CliRunner().invoke(main, ["projections", "switch", "balances", "2", "--dsn", dsn])
    assert missing.exit_code == common.EXIT_PYES_ERROR and "PE302" in missing.stderr
    as_of = CliRunner().invoke(main, ["projections", "as-of", "balances", "--at", "2000-01-01", "--into", "y2k",
                                      "--dsn", dsn, "--format", "json"])
    assert as_of.exit_code == 0, as_of.output
    assert json.loads(as_of.stdout)[0]["events"] == 0
    again = CliRunner().invoke(main, ["projections", "as-of", "balances", "--at", "2000-01-01", "--into", "y2k",
                                      "--dsn", dsn])
    assert again.exit_code == common.EXIT_PYES_ERROR and "PE308" in again.stderr
    dropped = CliRunner().invoke(main, ["projections", "drop", "balances", "--dsn", dsn, "--drop-tables"])
    assert dropped.exit_code == 0 and "dropped 1 version(s)" in dropped.stdout
    assert status(dsn) == {}


def test_bad_registration_is_invalid_input(dsn: str) -> None:
    result = CliRunner().invoke(main, ["projections", "register", "--dsn", dsn, "--name", "x",
                                       "--handler", "pg_catalog.lower(text)"])
    assert result.exit_code == common.EXIT_INVALID_INPUT
    assert "PE304" in result.stderr
    usage = CliRunner().invoke(main, ["projections", "register", str(PROJECTIONS_SQL), "--dsn", dsn, "--name", "x"])
    assert usage.exit_code == 2
