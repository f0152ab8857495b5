"""The bank account domain of the demo: typed events, an aggregate and its commands."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pyes import Aggregate, Command, InvalidCommand, Projections, handles
from pyes.typed import event

CENT = Decimal("0.01")


class DomainError(Exception):
    """A command that is valid on its own but not in the account's present state."""


@event("AccountOpened")
@dataclass(frozen=True)
class AccountOpened:
    owner: str
    currency: str = "EUR"


@event("AccountBalanceDeposited")
@dataclass(frozen=True)
class AccountBalanceDeposited:
    amount: Decimal


@event("AccountBalanceWithdrawn")
@dataclass(frozen=True)
class AccountBalanceWithdrawn:
    amount: Decimal


@event("AccountClosed")
@dataclass(frozen=True)
class AccountClosed:
    reason: str


class BankAccount(Aggregate):
    category = "account"

    owner: str = ""
    currency: str = "EUR"
    balance: Decimal = Decimal("0.00")
    is_open: bool = False

    # -- decisions: check the rules, then raise events --------------------------------------

    def open(self, owner: str, currency: str) -> None:
        if self.version > 0:
            raise DomainError(f"account {self.id} is already open")
        self.raise_event(AccountOpened(owner, currency))

    def deposit(self, amount: Decimal) -> None:
        self._require_open()
        self.raise_event(AccountBalanceDeposited(amount))

    def withdraw(self, amount: Decimal) -> None:
        self._require_open()
        if amount > self.balance:
            raise DomainError(f"insufficient funds: balance {self.balance}, withdrawal {amount}")
        self.raise_event(AccountBalanceWithdrawn(amount))

    def close(self, reason: str) -> None:
        self._require_open()
        self.raise_event(AccountClosed(reason))

    def _require_open(self) -> None:
        if not self.is_open:
            raise DomainError(f"account {self.id} is not open")

    # -- state changes: one handler per event -----------------------------------------------

    @handles(AccountOpened)
    def _opened(self, e: AccountOpened) -> None:
        self.owner, self.currency, self.is_open = e.owner, e.currency, True

    @handles(AccountBalanceDeposited)
    def _deposited(self, e: AccountBalanceDeposited) -> None:
        self.balance += e.amount

    @handles(AccountBalanceWithdrawn)
    def _withdrawn(self, e: AccountBalanceWithdrawn) -> None:
        self.balance -= e.amount

    @handles(AccountClosed)
    def _closed(self, e: AccountClosed) -> None:
        self.is_open = False


def _money(amount: Decimal, field: str) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidCommand(f"{field} must be a finite Decimal, not {amount!r}", field=field)
    if amount <= 0:
        raise InvalidCommand(f"{field} must be positive, not {amount}", field=field)
    if amount != amount.quantize(CENT):
        raise InvalidCommand(f"{field} has more than two decimals: {amount}", field=field)


@dataclass(frozen=True, kw_only=True)
class OpenAccount(Command):
    owner: str
    currency: str = "EUR"

    def validate(self) -> None:
        if not self.owner.strip():
            raise InvalidCommand("an account needs an owner", field="owner")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise InvalidCommand(f"currency must be an ISO code such as EUR, not {self.currency!r}", field="currency")


@dataclass(frozen=True, kw_only=True)
class DepositMoney(Command):
    amount: Decimal

    def validate(self) -> None:
        _money(self.amount, "amount")


@dataclass(frozen=True, kw_only=True)
class WithdrawMoney(Command):
    amount: Decimal

    def validate(self) -> None:
        _money(self.amount, "amount")


# -- read models (examples/bank_projections.sql, docs/projections.md) ------------------------

PROJECTIONS_SQL = Path(__file__).resolve().with_name("bank_projections.sql")
MONEY_TYPES = ["AccountBalanceDeposited", "AccountBalanceWithdrawn"]


def register_projections(projections: Projections) -> None:
    """The inline ``balances`` and the asynchronous ``daily_activity`` projections, registered
    once (a second call finds them) and caught up."""
    known = {status.name for status in projections.status()}
    if "balances" not in known:
        projections.register_file(
            PROJECTIONS_SQL, "balances", "bank.apply_balance(pyes.events)", mode="inline", schema="bank",
            tables=["balances"], stream_column="stream_id",
            event_types=["AccountOpened", *MONEY_TYPES, "AccountClosed"],
        )
    if "daily_activity" not in known:
        projections.register_file(
            PROJECTIONS_SQL, "daily_activity", "bank.apply_daily_activity(pyes.events)", mode="async",
            schema="bank", tables=["daily_activity"], stream_column="stream_id", event_types=MONEY_TYPES,
        )
    projections.catch_up("balances")  # builds it from history, then it runs inline
