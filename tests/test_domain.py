"""Aggregates, commands, snapshots, time travel and rewinds, on the demo's bank domain."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from bank import (
    AccountBalanceDeposited,
    BankAccount,
    DepositMoney,
    DomainError,
    OpenAccount,
    WithdrawMoney,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyes import (
    CommandContext,
    CommandHandler,
    EventStore,
    InvalidCommand,
    InvalidRewind,
    InvalidSnapshotVersion,
    Repository,
    WrongExpectedVersion,
)


@pytest.fixture
def accounts(store: EventStore) -> Repository[BankAccount]:
    return Repository(store, BankAccount)


@pytest.fixture
def handler(accounts: Repository[BankAccount]) -> CommandHandler[BankAccount]:
    return CommandHandler(accounts)


def open_with(handler: CommandHandler[BankAccount], account_id: str, *amounts: str) -> None:
    handler.handle(account_id, OpenAccount(owner="Ann"), lambda a, c: a.open(c.owner, c.currency))
    for amount in amounts:
        handler.handle(account_id, DepositMoney(amount=Decimal(amount)), lambda a, c: a.deposit(c.amount))


def test_commands_decide_and_events_rebuild_the_state(handler: CommandHandler[BankAccount],
                                                       accounts: Repository[BankAccount]) -> None:
    open_with(handler, "1", "100.00", "20.50")
    handler.handle("1", WithdrawMoney(amount=Decimal("30.25")), lambda a, c: a.withdraw(c.amount))
    account = accounts.load("1")
    assert (account.owner, account.balance, account.version, account.is_open) == ("Ann", Decimal("90.25"), 4, True)
    assert isinstance(account.balance, Decimal)


def test_invalid_command_writes_nothing(handler: CommandHandler[BankAccount], store: EventStore) -> None:
    open_with(handler, "1", "10.00")
    for bad in ("-5.00", "0", "1.001"):
        with pytest.raises(InvalidCommand) as caught:
            handler.handle("1", DepositMoney(amount=Decimal(bad)), lambda a, c: a.deposit(c.amount))
        assert caught.value.field == "amount"
    with pytest.raises(InvalidCommand):
        handler.handle("2", OpenAccount(owner="  "), lambda a, c: a.open(c.owner, c.currency))
    assert store.stream_version("account-1") == 2
    assert store.stream_version("account-2") == 0


def test_a_domain_rule_refuses_and_writes_nothing(handler: CommandHandler[BankAccount], store: EventStore) -> None:
    open_with(handler, "1", "10.00")
    with pytest.raises(DomainError):
        handler.handle("1", WithdrawMoney(amount=Decimal("10.01")), lambda a, c: a.withdraw(c.amount))
    assert store.stream_version("account-1") == 2


def test_conflict_between_two_handlers_is_resolved_by_retry(handler: CommandHandler[BankAccount],
                                                           accounts: Repository[BankAccount]) -> None:
    open_with(handler, "1", "100.00")
    other = CommandHandler(accounts)
    interleaved: list[int] = []

    def withdraw_while_someone_else_deposits(account: BankAccount, command: WithdrawMoney) -> None:
        if not interleaved:  # first attempt: another handler appends after we loaded
            interleaved.append(account.version)
            other.handle("1", DepositMoney(amount=Decimal("5.00")), lambda a, c: a.deposit(c.amount))
        account.withdraw(command.amount)

    handled = handler.handle("1", WithdrawMoney(amount=Decimal("50.00")), withdraw_while_someone_else_deposits)
    assert handled.attempts == 2
    assert interleaved == [2]
    assert accounts.load("1").balance == Decimal("55.00")


def test_retries_are_bounded(accounts: Repository[BankAccount]) -> None:
    handler = CommandHandler(accounts, max_attempts=2)
    open_with(handler, "1", "100.00")
    other = CommandHandler(accounts)
    attempts: list[int] = []

    def always_overtaken(account: BankAccount, command: DepositMoney) -> None:
        attempts.append(account.version)
        other.handle("1", DepositMoney(amount=Decimal("1.00")), lambda a, c: a.deposit(c.amount))
        account.deposit(command.amount)

    with pytest.raises(WrongExpectedVersion):
        handler.handle("1", DepositMoney(amount=Decimal("5.00")), always_overtaken)
    assert attempts == [2, 3]
    with pytest.raises(ValueError):
        CommandHandler(accounts, max_attempts=0)


def test_audit_metadata_answers_who_and_why(handler: CommandHandler[BankAccount], store: EventStore) -> None:
    request = uuid.uuid4()
    command = DepositMoney(amount=Decimal("7.00"))
    open_with(handler, "1")
    handler.handle("1", command, lambda a, c: a.deposit(c.amount),
                   context=CommandContext(actor="clerk:ann", correlation_id=request))
    (stored,) = store.read_correlation(request)
    assert stored.type == "AccountBalanceDeposited"
    assert stored.causation_id == command.command_id
    assert stored.metadata["command_id"] == str(command.command_id)
    assert stored.metadata["command_type"] == "DepositMoney"
    assert stored.metadata["actor"] == "clerk:ann"


def test_snapshot_policy_and_use(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, snapshot_every=3)
    handler = CommandHandler(accounts)
    open_with(handler, "1", *["1.00"] * 7)  # versions 1..8: snapshots at 3 and 6
    with store.connection() as conn:
        versions = [r[0] for r in conn.execute(
            "SELECT version FROM pyes.snapshots WHERE stream_id = 'account-1' ORDER BY version")]
    assert versions == [3, 6]
    # A snapshot is really used: tamper with the latest one and the loaded state shows it.
    store.save_snapshot("account-1", "BankAccount", 1, 6, {"owner": "Ann", "currency": "EUR",
                                                           "balance": "1000.00", "is_open": True})
    assert accounts.load("1").balance == Decimal("1002.00")
    assert accounts.load("1", use_snapshots=False).balance == Decimal("7.00")


def test_snapshot_of_another_schema_version_is_ignored(store: EventStore) -> None:
    class BankAccountV2(BankAccount):
        aggregate_type = "BankAccount"
        snapshot_schema_version = 2

    handler = CommandHandler(Repository(store, BankAccount))
    open_with(handler, "1", "5.00")
    store.save_snapshot("account-1", "BankAccount", 1, 2, {"balance": "999.00", "owner": "X", "is_open": True})
    assert Repository(store, BankAccount).load("1").balance == Decimal("999.00")
    assert Repository(store, BankAccountV2).load("1").balance == Decimal("5.00")


def test_snapshot_saved_in_the_same_transaction_as_the_append(store: EventStore) -> None:
    accounts = Repository(store, BankAccount)
    account = accounts.load("1")
    account.open("Ann", "EUR")
    account.deposit(Decimal("3.00"))
    with pytest.raises(RuntimeError), store.connection() as conn:
        accounts.save(account, snapshot=True, conn=conn)
        raise RuntimeError("roll back")
    assert store.stream_version("account-1") == 0
    assert store.load_snapshot("account-1", "BankAccount", 1) is None
    account = accounts.load("1")
    account.open("Ann", "EUR")
    accounts.save(account, snapshot=True)
    assert store.load_snapshot("account-1", "BankAccount", 1) == (1, account.snapshot_state())
    with pytest.raises(InvalidSnapshotVersion):
        store.save_snapshot("account-1", "BankAccount", 1, 5, {})


operations = st.lists(st.tuples(st.sampled_from(["deposit", "withdraw"]),
                                st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2)),
                      min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, every=st.integers(1, 6), data=st.data())
def test_snapshot_plus_tail_equals_full_replay(store: EventStore, ops: list[tuple[str, Decimal]], every: int,
                                               data: Any) -> None:
    account_id = uuid.uuid4().hex
    accounts = Repository(store, BankAccount, snapshot_every=every)
    account = accounts.load(account_id)
    account.open("Ann", "EUR")
    accounts.save(account)
    for op, amount in ops:
        account = accounts.load(account_id)
        if op == "withdraw" and amount > account.balance:
            continue
        getattr(account, op)(amount)
        accounts.save(account)
    for version in {None, data.draw(st.integers(1, accounts.load(account_id).version))}:
        fast = accounts.load(account_id, version=version)
        full = accounts.load(account_id, version=version, use_snapshots=False)
        assert (fast.version, fast.snapshot_state()) == (full.version, full.snapshot_state())


def test_time_travel_at_exact_timestamps_and_between(handler: CommandHandler[BankAccount], store: EventStore,
                                                     accounts: Repository[BankAccount]) -> None:
    open_with(handler, "1", "10.00", "20.00", "30.00")
    events = store.read_stream("account-1")
    balances = [Decimal("0.00"), Decimal("10.00"), Decimal("30.00"), Decimal("60.00")]
    tick = dt.timedelta(microseconds=1)
    for event, balance in zip(events, balances):
        assert accounts.load("1", at=event.recorded_at).balance == balance
        assert accounts.load("1", at=event.recorded_at).version == event.version
        assert accounts.load("1", at=event.recorded_at + tick).balance == balance  # between events
        assert accounts.load("1", version=event.version).balance == balance
    before = accounts.load("1", at=events[0].recorded_at - tick)
    assert (before.version, before.is_open) == (0, False)
    # The SQL functions that non-Python clients use for the same questions.
    assert [e.version for e in store.read_stream_between("account-1", until=events[1].recorded_at)] == [1, 2]
    assert [e.version for e in store.read_stream_between("account-1", since=events[1].recorded_at,
                                                         until=events[2].recorded_at)] == [2, 3]
    with store.connection() as conn:
        until = conn.execute("SELECT version FROM pyes.read_stream_until('account-1', %s)",
                             (events[2].recorded_at,)).fetchall()
    assert [r[0] for r in until] == [1, 2, 3]


def test_rewind_then_new_events(handler: CommandHandler[BankAccount], accounts: Repository[BankAccount],
                                store: EventStore) -> None:
    open_with(handler, "1", "100.00")
    handler.handle("1", WithdrawMoney(amount=Decimal("80.00")), lambda a, c: a.withdraw(c.amount))  # the mistake
    assert accounts.load("1").balance == Decimal("20.00")
    with pytest.raises(WrongExpectedVersion):
        accounts.rewind("1", 2, expected_version=2, reason="duplicate withdrawal", actor="ops:bob")
    with pytest.raises(InvalidRewind):
        accounts.rewind("1", 3, expected_version=3, reason="nothing to undo", actor="ops:bob")
    accounts.rewind("1", 2, expected_version=3, reason="duplicate withdrawal", actor="ops:bob")
    account = accounts.load("1")
    assert (account.balance, account.version) == (Decimal("100.00"), 4)
    handler.handle("1", DepositMoney(amount=Decimal("1.00")), lambda a, c: a.deposit(c.amount))
    assert accounts.load("1").balance == Decimal("101.00")
    history = store.read_stream("account-1")
    assert [e.type for e in history] == ["AccountOpened", "AccountBalanceDeposited", "AccountBalanceWithdrawn",
                                         "$rewind", "AccountBalanceDeposited"]
    assert history[3].metadata == {"reason": "duplicate withdrawal", "actor": "ops:bob"}
    assert accounts.load("1", version=3).balance == Decimal("20.00")  # the past stays readable


def test_rewind_to_a_version_after_an_earlier_rewind(handler: CommandHandler[BankAccount],
                                                     accounts: Repository[BankAccount]) -> None:
    open_with(handler, "1", "10.00", "20.00")  # v3: 30
    accounts.rewind("1", 2, expected_version=3, reason="r1", actor="a")  # v4: 10
    handler.handle("1", DepositMoney(amount=Decimal("5.00")), lambda a, c: a.deposit(c.amount))  # v5: 15
    handler.handle("1", DepositMoney(amount=Decimal("7.00")), lambda a, c: a.deposit(c.amount))  # v6: 22
    accounts.rewind("1", 5, expected_version=6, reason="r2", actor="a")  # v7: 15
    assert accounts.load("1").balance == Decimal("15.00")
    snapshotting = Repository(accounts.store, BankAccount, snapshot_every=2)
    account = snapshotting.load("1")
    account.deposit(Decimal("1.00"))
    snapshotting.save(account)  # v8, snapshot at 8
    assert snapshotting.load("1").balance == accounts.load("1", use_snapshots=False).balance == Decimal("16.00")


def test_unknown_event_types_do_not_break_loading(handler: CommandHandler[BankAccount], store: EventStore,
                                                  accounts: Repository[BankAccount]) -> None:
    from pyes import NewEvent

    open_with(handler, "1", "10.00")
    store.append("account-1", [NewEvent("SomethingFromTheFuture", {"x": 1})])
    account = accounts.load("1")
    assert (account.balance, account.version) == (Decimal("10.00"), 3)
    assert isinstance(AccountBalanceDeposited(Decimal(1)).amount, Decimal)


def test_loading_reads_a_long_stream_page_by_page(handler: CommandHandler[BankAccount],
                                                  accounts: Repository[BankAccount],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pyes.aggregate

    open_with(handler, "1", "1.00", "2.00", "3.00", "4.00", "5.00", "6.00")
    monkeypatch.setattr(pyes.aggregate, "_PAGE", 3)  # 7 events: pages of 3, 3 and 1
    account = accounts.load("1", use_snapshots=False)
    assert (account.balance, account.version) == (Decimal("21.00"), 7)
    assert accounts.load("1", version=6, use_snapshots=False).balance == Decimal("15.00")
    monkeypatch.setattr(pyes.aggregate, "_PAGE", 7)  # a full last page, then an empty one
    assert accounts.load("1", use_snapshots=False).balance == Decimal("21.00")


@pytest.mark.parametrize("aggregate_id", ["x" * 250, "a\nb"])
def test_loading_refuses_an_id_no_stream_can_have(accounts: Repository[BankAccount], aggregate_id: str) -> None:
    """As pyes.read_stream would: PE101, not an empty aggregate that could never be saved."""
    from pyes import InvalidStreamId

    with pytest.raises(InvalidStreamId):
        accounts.load(aggregate_id, use_snapshots=False)


@pytest.mark.parametrize("data", [{"to_version": 5}, {"to_version": 4}, {"to_version": -1}, {"to_version": "1"},
                                  {"to_version": 1.5}, {}, {"to_version": 1, "extra": 2}])
def test_a_hand_made_rewind_must_point_into_the_past(handler: CommandHandler[BankAccount], store: EventStore,
                                                     data: dict[str, Any]) -> None:
    from pyes import NewEvent

    open_with(handler, "1", "1.00", "2.00")  # at version 3: a $rewind would be version 4
    with pytest.raises(InvalidRewind):
        store.append("account-1", [NewEvent("$rewind", data)])
    store.append("account-1", [NewEvent("$rewind", {"to_version": 3})])  # the one allowed above
    assert store.stream_version("account-1") == 4


@pytest.mark.timeout(30)
def test_recorded_at_never_goes_down_in_a_stream(handler: CommandHandler[BankAccount], store: EventStore,
                                                 connect: Any) -> None:
    """A writer that waited for the stream's row records its time after the one before it."""
    import threading
    import time

    from test_concurrency import wait_until_blocked

    from pyes import NewEvent

    open_with(handler, "1")
    holder = connect()
    store.append("account-1", [NewEvent("First")], conn=holder)  # holds the stream's row
    waiter = connect(autocommit=True)
    thread = threading.Thread(target=lambda: store.append("account-1", [NewEvent("Waited")], conn=waiter))
    thread.start()
    wait_until_blocked(connect(autocommit=True), waiter.info.backend_pid)
    time.sleep(0.01)  # let the clock move on, so that a time read before the wait would show
    store.append("account-1", [NewEvent("Second")], conn=holder)  # later, in the same transaction
    holder.commit()
    thread.join(10)
    events = store.read_stream("account-1")
    assert [e.type for e in events] == ["AccountOpened", "First", "Second", "Waited"]
    times = [e.recorded_at for e in events]
    assert times == sorted(times)
