"""pyes snapshots list and pyes rewind, through click's runner against a real server."""

from __future__ import annotations

import json
from decimal import Decimal

from bank import BankAccount, DepositMoney, OpenAccount
from click.testing import CliRunner

from pyes import CommandHandler, EventStore, Repository
from pyes.cli import common, main


def _bank(store: EventStore) -> Repository[BankAccount]:
    accounts = Repository(store, BankAccount, snapshot_every=2)
    handler = CommandHandler(accounts)
    handler.handle("1", OpenAccount(owner="Ann"), lambda a, c: a.open(c.owner, c.currency))
    for amount in ("10.00", "20.00", "30.00"):
        handler.handle("1", DepositMoney(amount=Decimal(amount)), lambda a, c: a.deposit(c.amount))
    return accounts


def test_snapshots_list_in_every_format(store: EventStore, dsn: str) -> None:
    _bank(store)
    result = CliRunner().invoke(main, ["snapshots", "list", "--dsn", dsn, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["version"] for r in rows) == [2, 4]
    assert {r["aggregate_type"] for r in rows} == {"BankAccount"}
    lines = CliRunner().invoke(main, ["snapshots", "list", "--dsn", dsn, "--format", "jsonl", "--stream", "account-1"])
    assert [json.loads(line)["stream_id"] for line in lines.stdout.splitlines()] == ["account-1", "account-1"]
    table = CliRunner().invoke(main, ["snapshots", "list", "--dsn", dsn, "--type", "Nothing"])
    assert table.exit_code == 0 and "snapshots" in table.stdout and "account-1" not in table.stdout


def test_rewind_from_the_terminal(store: EventStore, dsn: str) -> None:
    accounts = _bank(store)
    args = ["rewind", "account-1", "2", "--reason", "keyed twice", "--actor", "ops:lena", "--dsn", dsn]
    stale = CliRunner().invoke(main, [*args, "--expected-version", "3"])
    assert stale.exit_code == common.EXIT_CONFLICT
    assert "PE001" in stale.stderr
    bad = CliRunner().invoke(main, ["rewind", "account-1", "9", "--reason", "r", "--actor", "a", "--dsn", dsn,
                                    "--expected-version", "4"])
    assert bad.exit_code == common.EXIT_INVALID_INPUT and "PE111" in bad.stderr
    done = CliRunner().invoke(main, [*args, "--expected-version", "4", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)[0]["stream_version"] == 5
    assert accounts.load("1").balance == Decimal("10.00")
    missing = CliRunner().invoke(main, ["rewind", "account-1", "2", "--dsn", dsn, "--expected-version", "5"])
    assert missing.exit_code == 2  # --reason and --actor are required
