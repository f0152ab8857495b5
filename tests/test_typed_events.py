"""Typed events and lossless JSON: pyes.serialization and pyes.typed. Pure Python, except one
round trip through PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from types import GenericAlias
from typing import Any, Literal, NewType, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyes.typed
from pyes import EventStore, NewEvent
from pyes.records import RecordedEvent
from pyes.serialization import SerializationError, decode, dumps, encode
from pyes.typed import EventRegistry, GenericEvent, UnknownEventClass

# -- test types (module level, so that string annotations resolve) --------------------------


class Currency(str, Enum):
    EUR = "EUR"
    USD = "USD"


class Priority(IntEnum):
    LOW = 1
    HIGH = 2


class Shape(Enum):
    POINT = (0, 0)


AccountId = NewType("AccountId", uuid.UUID)


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: Currency = Currency.EUR


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    price: Money


@dataclass(frozen=True)
class Order:
    id: AccountId
    placed_at: datetime
    lines: list[Line]
    tags: frozenset[str] = frozenset()
    note: Optional[str] = None  # noqa: UP045 (the typing spelling must work too)
    due: date | None = None
    priority: Priority = Priority.LOW
    totals: dict[str, Money] = field(default_factory=dict)
    pair: tuple[int, str] = (0, "")
    history: tuple[Decimal, ...] = ()
    kind: Literal["retail", "wholesale"] = "retail"
    extra: Any = None


@dataclass(frozen=True)
class Everything:
    d: Decimal
    dt: datetime
    day: date
    t: time
    u: uuid.UUID
    s: str
    i: int
    b: bool
    n: None
    f: float
    cur: Currency
    pri: Priority
    shape: Shape


@dataclass(frozen=True)
class Deposited:
    account: uuid.UUID
    amount: Decimal
    at: datetime


@dataclass(frozen=True)
class DepositedV2:
    account: uuid.UUID
    amount: Money
    at: datetime


@dataclass(frozen=True)
class Withdrawn:
    amount: Decimal


@dataclass(frozen=True)
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


PLUS2 = timezone(timedelta(hours=2))
ORDER = Order(
    id=AccountId(uuid.UUID("0b7e4a52-2f1c-4c5e-9d0a-4e4a3a1f6b10")),
    placed_at=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=PLUS2),
    lines=[Line("a", 2, Money(Decimal("10.10"))), Line("b", 1, Money(Decimal("-1E+3"), Currency.USD))],
    tags=frozenset({"x", "y"}),
    note="hello ✓",
    due=date(2026, 4, 1),
    priority=Priority.HIGH,
    totals={"EUR": Money(Decimal("0.10"))},
    pair=(7, "seven"),
    history=(Decimal("1.000"), Decimal("3.14159265358979323846264338327950288419716939937510582097494459")),
    kind="wholesale",
    extra={"free": [1, "form"]},
)


def roundtrip(value: Any, hint: Any) -> Any:
    """decode(encode(value)) through JSON text, as the store does it."""
    return decode(json.loads(dumps(value)), hint)


# -- encode / decode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint", "encoded"),
    [
        (Decimal("0.10"), Decimal, "0.10"),
        (Decimal("-1E+3"), Decimal, "-1E+3"),
        (Decimal("10.10"), Decimal, "10.10"),
        (Decimal("-0"), Decimal, "-0"),
        (Decimal("1" * 80 + "." + "9" * 80), Decimal, "1" * 80 + "." + "9" * 80),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime, "2026-01-02T03:04:05+00:00"),
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=PLUS2), datetime, "2026-01-02T03:04:05.000006+02:00"),
        (datetime(1, 1, 1, tzinfo=timezone(-timedelta(hours=5, minutes=30, seconds=7))), datetime,
         "0001-01-01T00:00:00-05:30:07"),
        (date(2026, 2, 28), date, "2026-02-28"),
        (time(23, 59, 59, 999999), time, "23:59:59.999999"),
        (time(8, 0, tzinfo=PLUS2), time, "08:00:00+02:00"),
        (uuid.UUID(int=1), uuid.UUID, "00000000-0000-0000-0000-000000000001"),
        ("", str, ""),
        ("ünï\x00\n", str, "ünï\x00\n"),
        (10**30, int, 10**30),
        (-1, int, -1),
        (True, bool, True),
        (False, bool, False),
        (None, None, None),
        (None, type(None), None),
        (0.1, float, 0.1),
        (-0.0, float, -0.0),
        (1e308, float, 1e308),
        (Currency.USD, Currency, "USD"),
        (Priority.HIGH, Priority, 2),
        (Shape.POINT, Shape, [0, 0]),
        ([1, 2], list[int], [1, 2]),
        ((1, "a"), tuple[int, str], [1, "a"]),
        ((), tuple[int, ...], []),
        ({3, 1, 2}, set[int], [1, 2, 3]),
        (frozenset({Decimal("1.5")}), frozenset[Decimal], ["1.5"]),
        ({"a": [Money(Decimal(1))]}, dict[str, list[Money]], {"a": [{"amount": "1", "currency": "EUR"}]}),
        ({Currency.EUR: 1}, dict[Currency, int], {"EUR": 1}),
        (None, Optional[Money], None),  # noqa: UP045
        (Money(Decimal("2.50")), Money | None, {"amount": "2.50", "currency": "EUR"}),
        (5, int | str, 5),
        ("5", int | str, "5"),
        ("wholesale", Literal["retail", "wholesale"], "wholesale"),
        ({"any": [1.5, None]}, Any, {"any": [1.5, None]}),
        ([1, "x"], list, [1, "x"]),
        (AccountId(uuid.UUID(int=7)), AccountId, "00000000-0000-0000-0000-000000000007"),
    ],
)
def test_round_trip(value: Any, hint: Any, encoded: Any) -> None:
    assert encode(value) == encoded
    back = roundtrip(value, hint)
    assert back == value
    assert type(back) is type(value)
    assert encode(back) == encoded  # the same JSON again: nothing lost


def test_decimal_stays_exact() -> None:
    for text in ["0.10", "-1E+3", "10.10", "1.000", "0E-10", "123456789012345678901234567890.123456789012345678901"]:
        back = roundtrip(Decimal(text), Decimal)
        assert str(back) == text  # not merely equal: the same digits and exponent


def test_aware_datetimes_keep_their_offset() -> None:
    for tz in [UTC, PLUS2, timezone(timedelta(hours=-9, minutes=-30))]:
        value = datetime(2026, 7, 1, 9, 15, tzinfo=tz)
        back = roundtrip(value, datetime)
        assert back == value and back.utcoffset() == tz.utcoffset(None)
    assert decode("2026-07-01T09:15:00Z", datetime) == datetime(2026, 7, 1, 9, 15, tzinfo=UTC)


def test_nested_dataclasses() -> None:
    back = roundtrip(ORDER, Order)
    assert back == ORDER
    assert type(back.id) is uuid.UUID and type(back.lines[1].price.currency) is Currency
    assert back.history[1] == ORDER.history[1] and type(back.pair) is tuple
    encoded = encode(ORDER)
    assert encoded["lines"][0] == {"sku": "a", "quantity": 2, "price": {"amount": "10.10", "currency": "EUR"}}
    assert encoded["tags"] == ["x", "y"]


def test_every_scalar_in_one_dataclass() -> None:
    value = Everything(
        Decimal("0.10"), datetime(2026, 1, 1, tzinfo=PLUS2), date(2026, 1, 1), time(1, 2, 3), uuid.uuid4(),
        "s", 1, True, None, 2.5, Currency.USD, Priority.LOW, Shape.POINT,
    )
    assert roundtrip(value, Everything) == value


def test_defaults_for_missing_fields_and_unknown_keys_ignored() -> None:
    data = {
        "id": str(uuid.UUID(int=1)),
        "placed_at": "2026-01-01T00:00:00+00:00",
        "lines": [],
        "added_in_a_later_version": {"whatever": 1},
    }
    order = decode(data, Order)
    assert order == Order(AccountId(uuid.UUID(int=1)), datetime(2026, 1, 1, tzinfo=UTC), [])
    assert order.totals == {} and order.note is None and order.kind == "retail"


def test_optional_present_and_none() -> None:
    assert decode({"amount": "1"}, Optional[Money]) == Money(Decimal(1))  # noqa: UP045
    assert decode(None, Optional[Money]) is None  # noqa: UP045
    assert decode(None, Money | None) is None
    assert roundtrip(dataclasses.replace(ORDER, note=None, due=None), Order).note is None


def test_union_tries_members_in_order() -> None:
    assert decode(True, int | bool) is True  # int refuses a bool
    assert decode("1.5", str | Decimal) == "1.5"
    assert decode("1.5", Decimal | str) == Decimal("1.5")
    assert decode(3, float | int) == 3.0


def test_float_field_accepts_int() -> None:
    assert decode(3, float) == 3.0 and type(decode(3, float)) is float


def test_decimal_accepts_int() -> None:
    assert decode(12, Decimal) == Decimal(12)


def test_json_text() -> None:
    text = dumps({"price": Decimal("10.10"), "at": datetime(2026, 1, 1, tzinfo=PLUS2), "name": "Zoë"})
    assert text == '{"price":"10.10","at":"2026-01-01T00:00:00+02:00","name":"Zoë"}'
    assert dumps({"s": {"b", "a", "c"}}) == '{"s":["a","b","c"]}'  # sets in a stable order


# -- errors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    items: list[Any]


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        (Holder([1, 2, datetime(2026, 1, 1)]), "data.items[2]", "naive"),
        (Holder([float("nan")]), "data.items[0]", "nan"),
        (Holder([float("inf")]), "data.items[0]", "inf"),
        (Holder([{"ok": 1, 2: "two"}]), "data.items[0]", "key 2"),
        (Holder([{"k": object()}]), "data.items[0]['k']", "object"),
        (Holder([b"bytes"]), "data.items[0]", "bytes"),
        (Holder([Money(Decimal(1)), {"x": {1j}}]), "data.items[1]['x'][0]", "complex"),
        (Holder([datetime(2026, 1, 1, tzinfo=timezone(timedelta(microseconds=5)))]), "data.items[0]", "fraction"),
    ],
)
def test_encode_errors_name_the_path(value: Any, path: str, words: str) -> None:
    with pytest.raises(SerializationError) as caught:
        encode(value, path="data")
    message = str(caught.value)
    assert message.startswith(path + ": "), message
    assert words in message


def test_encode_default_path_and_type_name() -> None:
    with pytest.raises(SerializationError, match=r"^value\[0\]: cannot encode a value of type object$"):
        encode([object()])
    with pytest.raises(SerializationError, match=r"^value: cannot encode a value of type type$"):
        dumps(Money)  # a class is not a value
    with pytest.raises(SerializationError, match=r"^value\['when'\]: the datetime 2026-01-01T00:00:00 is naive"):
        dumps({"when": datetime(2026, 1, 1)})


@pytest.mark.parametrize(
    ("data", "hint", "path", "words"),
    [
        ({"amount": 10.1}, Money, "value.amount", "float would not be exact"),
        ({"amount": "ten"}, Money, "value.amount", "decimal"),
        ({"amount": True}, Money, "value.amount", "bool"),
        ({"currency": "EUR"}, Money, "value.amount", "missing"),
        ({"amount": "1", "currency": "GBP"}, Money, "value.currency", "GBP"),
        ([[1], [2]], set[list[int]], "value", "hashable"),
        ([[1]], frozenset[list[int]], "value", "hashable"),
        ({"a": 1}, list[int], "value", "an array"),
        ([1, "x"], list[int], "value[1]", "an integer"),
        ([1], tuple[int, str], "value", "2 items"),
        ({"k": "v"}, dict[str, int], "value['k']", "an integer"),
        ("2026-01-01T00:00:00", datetime, "value", "UTC offset"),
        ("yesterday", datetime, "value", "ISO 8601"),
        ("2026-01-01T00:00:00+00:00", date, "value", "ISO 8601 date"),
        ("25:00", time, "value", "ISO 8601 time"),
        ("not-a-uuid", uuid.UUID, "value", "UUID"),
        (True, int, "value", "an integer"),
        (1, bool, "value", "true or false"),
        (1, str, "value", "a string"),
        ("1", float, "value", "a number"),
        (10**400, float, "value", "too large"),
        (1, None, "value", "null"),
        (True, Priority, "value", "Priority"),
        (3, Priority, "value", "Priority"),
        ("other", Literal["retail", "wholesale"], "value", "one of"),
        (1.5, int | str, "value", "fits no member"),
        ("x", int | None, "value", "fits no member"),
        ([1], Money, "value", "an object"),
        ({"n": -1}, Positive, "value", "n must be positive"),
        ({"lines": [{"sku": "a", "quantity": 1, "price": {"amount": 1.5}}]}, Order, "value.id", "missing"),
        ({"id": str(uuid.UUID(int=1)), "placed_at": "2026-01-01T00:00:00Z",
          "lines": [{"sku": "a", "quantity": 1, "price": {"amount": 1.5}}]}, Order, "value.lines[0].price.amount",
         "float"),
        (1, complex, "value", "cannot decode"),
    ],
)
def test_decode_errors_name_the_path(data: Any, hint: Any, path: str, words: str) -> None:
    with pytest.raises(SerializationError) as caught:
        decode(data, hint)
    message = str(caught.value)
    assert message.startswith(path + ": "), message
    assert words in message, message


def test_serialization_error_is_a_value_error() -> None:
    assert issubclass(SerializationError, ValueError)


# -- the registry ----------------------------------------------------------------------------


def recorded(new: NewEvent, version: int = 1) -> RecordedEvent:
    """What the store would give back for ``new``, after a trip through JSON text."""
    return RecordedEvent(
        position=1, event_id=new.id, stream_id="s-1", category="s", version=version, type=new.type,
        schema_version=new.schema_version, data=json.loads(json.dumps(new.data)),
        metadata=json.loads(json.dumps(new.metadata)), correlation_id=new.correlation_id,
        causation_id=new.causation_id, recorded_at=datetime.now(UTC), transaction_id=1, checkpoint="1/1",
    )


def test_register_and_round_trip() -> None:
    reg = EventRegistry()
    assert reg.register(Deposited) is Deposited
    assert reg.type_of(Deposited) == ("Deposited", 1)
    value = Deposited(uuid.uuid4(), Decimal("10.10"), datetime(2026, 1, 1, 12, tzinfo=PLUS2))
    assert reg.type_of(value) == ("Deposited", 1)
    event_id, correlation, causation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    new = reg.to_new_event(value, metadata={"user": uuid.UUID(int=3), "n": Decimal("1.0")}, id=event_id,
                           correlation_id=correlation, causation_id=causation)
    assert new.type == "Deposited" and new.schema_version == 1 and new.id == event_id
    assert new.correlation_id == correlation and new.causation_id == causation
    assert new.data == {"account": str(value.account), "amount": "10.10", "at": "2026-01-01T12:00:00+02:00"}
    assert new.metadata == {"user": str(uuid.UUID(int=3)), "n": "1.0"}
    json.dumps(new.to_json())  # plain json.dumps can write it
    assert reg.decode(recorded(new)) == value
    plain = reg.to_new_event(value)
    assert plain.metadata == {} and plain.id != new.id and plain.correlation_id is None


def test_register_twice_is_idempotent() -> None:
    reg = EventRegistry()
    reg.register(Deposited)
    reg.register(Deposited)
    reg.register(Withdrawn, name="Out", version=3)
    reg.register(Withdrawn, name="Out", version=3)
    assert reg.classes() == {("Deposited", 1): Deposited, ("Out", 3): Withdrawn}


def test_conflicts_are_refused() -> None:
    reg = EventRegistry()
    reg.register(Deposited)
    with pytest.raises(ValueError, match="already bound to Deposited"):
        reg.register(DepositedV2, name="Deposited")
    with pytest.raises(ValueError, match="already registered as 'Deposited' version 1"):
        reg.register(Deposited, version=2)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Deposited, name="Other")
    assert reg.classes() == {("Deposited", 1): Deposited}


@pytest.mark.parametrize(
    "name", ["", "1abc", "a b", "a\nb", "abc\n", "Ünicode", "x" * 256, "a,b", "a\x00", "-x"]
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid event type name"):
        EventRegistry().register(Deposited, name=name)


@pytest.mark.parametrize("name", ["Deposited", "account.opened", "$rewind", "a:b/c-d", "_x", "T" * 255])
def test_valid_names(name: str) -> None:
    reg = EventRegistry()
    reg.register(Deposited, name=name)
    assert reg.type_of(Deposited) == (name, 1)


@pytest.mark.parametrize("version", [0, -1, True, 1_000_000_000, "2", 1.0])
def test_invalid_versions_are_refused(version: Any) -> None:
    with pytest.raises(ValueError, match="invalid schema version"):
        EventRegistry().register(Deposited, version=version)


def test_only_dataclasses() -> None:
    class Plain:
        pass

    reg = EventRegistry()
    with pytest.raises(TypeError, match="not a dataclass"):
        reg.register(Plain)
    with pytest.raises(TypeError, match="not a dataclass"):
        reg.register(Withdrawn(Decimal(1)))  # type: ignore[type-var]
    with pytest.raises(TypeError, match="instance"):
        reg.register(Withdrawn)
        reg.to_new_event(Withdrawn)


def test_versions_map_to_different_classes() -> None:
    reg = EventRegistry()
    reg.register(Deposited, name="Deposited", version=1)
    reg.register(DepositedV2, name="Deposited", version=2)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    v1 = Deposited(uuid.UUID(int=1), Decimal(5), at)
    v2 = DepositedV2(uuid.UUID(int=1), Money(Decimal(5), Currency.USD), at)
    assert reg.type_of(v1) == ("Deposited", 1) and reg.type_of(v2) == ("Deposited", 2)
    assert reg.decode(recorded(reg.to_new_event(v1))) == v1
    assert reg.decode(recorded(reg.to_new_event(v2))) == v2


def test_unknown_events_decode_to_generic() -> None:
    reg = EventRegistry()
    reg.register(Deposited)
    data = {"anything": [1, "2"]}
    assert reg.decode(recorded(NewEvent("Mystery", data))) == GenericEvent("Mystery", 1, data)
    # A registered name at a version without a class is unknown too.
    assert reg.decode(recorded(NewEvent("Deposited", data, schema_version=9))) == GenericEvent("Deposited", 9, data)


def test_registered_event_with_bad_data_raises() -> None:
    reg = EventRegistry()
    reg.register(Withdrawn)
    with pytest.raises(SerializationError, match=r"^data\.amount: .*float"):
        reg.decode(recorded(NewEvent("Withdrawn", {"amount": 1.5})))


def test_unknown_class() -> None:
    reg = EventRegistry()
    with pytest.raises(UnknownEventClass, match="Withdrawn is not a registered event class"):
        reg.type_of(Withdrawn)
    with pytest.raises(LookupError):
        reg.to_new_event(Withdrawn(Decimal(1)))
    assert Withdrawn not in reg
    reg.register(Withdrawn)
    assert Withdrawn in reg and Withdrawn(Decimal(1)) in reg and Deposited not in reg


def test_classes_is_a_copy() -> None:
    reg = EventRegistry()
    reg.register(Withdrawn)
    reg.classes().clear()
    assert reg.classes() == {("Withdrawn", 1): Withdrawn}


def test_decorators() -> None:
    reg = EventRegistry()

    @reg.event()
    @dataclass(frozen=True)
    class Opened:
        owner: str

    @reg.event("AccountBalanceDeposited", version=2)
    @dataclass(frozen=True)
    class BalanceDeposited:
        amount: int

    @reg.event(version=3)
    @dataclass(frozen=True)
    class Closed:
        reason: str

    @reg.event
    @dataclass(frozen=True)
    class Bare:
        x: int

    assert reg.classes() == {
        ("Opened", 1): Opened,
        ("AccountBalanceDeposited", 2): BalanceDeposited,
        ("Closed", 3): Closed,
        ("Bare", 1): Bare,
    }
    assert reg.decode(recorded(reg.to_new_event(BalanceDeposited(7)))) == BalanceDeposited(7)
    with pytest.raises(TypeError, match="put @event above @dataclass"):

        @dataclass(frozen=True)
        @reg.event()
        class Wrong:
            x: int


def test_module_level_registry_and_decorator() -> None:
    name = f"TypedModuleTest{uuid.uuid4().hex}"

    @pyes.typed.event(name)
    @dataclass(frozen=True)
    class Sample:
        n: int

    assert pyes.typed.event.__self__ is pyes.typed.registry  # type: ignore[attr-defined]
    assert Sample in pyes.typed.registry
    assert pyes.typed.registry.type_of(Sample) == (name, 1)


# -- property ------------------------------------------------------------------------------

# Fixed offsets (whole seconds, as every real zone has): decode gives back a datetime.timezone,
# which equals the original. IANA zones are tested below, by instant and offset.
offsets = st.builds(timezone, st.integers(-86399, 86399).map(lambda s: timedelta(seconds=s)))

SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (Decimal, st.decimals(allow_nan=False, allow_infinity=False)),
    (datetime, st.datetimes(timezones=offsets)),
    (date, st.dates()),
    (time, st.times(timezones=st.none() | offsets)),
    (uuid.UUID, st.uuids()),
    (str, st.text()),
    (int, st.integers()),
    (bool, st.booleans()),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (Currency, st.sampled_from(Currency)),
    (Priority, st.sampled_from(Priority)),
    (Literal["a", 1, True], st.sampled_from(["a", 1, True])),
]
HASHABLE = [s for s in SCALARS if s[0] is not float]  # -0.0 and 0.0 are one set member

Typed = tuple[Any, st.SearchStrategy[Any]]  # a type hint and values of that type
_names = iter(range(10**9))


def make_dataclass(members: list[Typed]) -> Typed:
    cls = dataclasses.make_dataclass(
        f"Generated{next(_names)}", [(f"f{i}", hint) for i, (hint, _) in enumerate(members)], frozen=True
    )
    return cls, st.builds(cls, *[values for _, values in members])


def containers(children: st.SearchStrategy[Typed]) -> st.SearchStrategy[Typed]:
    def small(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
        return st.lists(values, max_size=3)

    return st.one_of(
        children.map(lambda c: (GenericAlias(list, c[0]), small(c[1]))),
        children.map(lambda c: (GenericAlias(tuple, (c[0], ...)), small(c[1]).map(tuple))),
        st.tuples(children, children).map(
            lambda cs: (GenericAlias(tuple, (cs[0][0], cs[1][0])), st.tuples(cs[0][1], cs[1][1]))
        ),
        children.map(lambda c: (GenericAlias(dict, (str, c[0])), st.dictionaries(st.text(max_size=4), c[1], max_size=3))),
        children.map(lambda c: (c[0] | None, st.none() | c[1])),
        st.sampled_from(HASHABLE).map(lambda c: (GenericAlias(set, c[0]), st.sets(c[1], max_size=3))),
        st.sampled_from(HASHABLE).map(lambda c: (GenericAlias(frozenset, c[0]), st.frozensets(c[1], max_size=3))),
        st.lists(children, min_size=1, max_size=4).map(make_dataclass),
    )


typed = st.recursive(st.sampled_from(SCALARS), containers, max_leaves=12)
events = st.lists(typed, min_size=1, max_size=5).map(make_dataclass)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_round_trip(data: st.DataObject) -> None:
    hint, values = data.draw(events)
    value = data.draw(values)
    text = json.dumps(encode(value))
    assert json.loads(text) == encode(value)
    back = decode(json.loads(text), hint)
    assert back == value
    assert json.dumps(encode(back)) == text  # the same JSON again: same digits, offsets, signs


@given(st.datetimes(timezones=st.timezones()))
def test_property_iana_zones_keep_instant_and_offset(value: datetime) -> None:
    # Decoding gives a fixed offset, not the zone's name; a time in a fold is therefore never
    # == to it (PEP 495), but the instant and the offset are kept.
    back = decode(json.loads(dumps(value)), datetime)
    assert back.utcoffset() == value.utcoffset()
    assert back.isoformat() == value.isoformat()
    assert back.astimezone(UTC) == value.astimezone(UTC)


@given(st.decimals(allow_nan=False))
def test_property_decimal_text(value: Decimal) -> None:
    back = decode(json.loads(dumps(value)), Decimal)
    assert str(back) == str(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_property_float(value: float) -> None:
    back = decode(json.loads(dumps(value)), float)
    assert back == value and math.copysign(1, back) == math.copysign(1, value)


# -- through PostgreSQL ----------------------------------------------------------------------


def test_round_trip_through_postgres(store: EventStore) -> None:
    reg = EventRegistry()
    reg.register(Deposited)
    reg.register(Order, name="shop.OrderPlaced", version=2)
    deposit = Deposited(uuid.uuid4(), Decimal("10.10"), datetime(2026, 5, 1, 8, 30, tzinfo=PLUS2))
    store.append("account-1", [reg.to_new_event(deposit), reg.to_new_event(ORDER, metadata={"by": "ann"})])
    # Unregistered on the way back: a GenericEvent, no crash.
    store.append("account-1", [NewEvent("Mystery", {"x": 1})])
    # dumps as the store's json_dumps: a NewEvent may carry Decimal and datetime values itself.
    with EventStore(store.pool, json_dumps=dumps) as raw:
        raw.append("account-1", [NewEvent("Withdrawn", {"amount": Decimal("0.10")}, {"at": deposit.at})])
    reg.register(Withdrawn)

    events = store.read_stream("account-1")
    decoded = [reg.decode(e) for e in events]
    assert decoded == [deposit, ORDER, GenericEvent("Mystery", 1, {"x": 1}), Withdrawn(Decimal("0.10"))]
    back = decoded[0]
    assert str(back.amount) == "10.10"
    assert back.at == deposit.at and back.at.utcoffset() == timedelta(hours=2)
    assert events[1].type == "shop.OrderPlaced" and events[1].schema_version == 2
    assert events[1].metadata == {"by": "ann"}
    assert events[3].metadata == {"at": "2026-05-01T08:30:00+02:00"}


@dataclass(frozen=True)
class Scalars:
    s: str
    i: int
    f: float
    b: bool
    n: int | None = None


def test_scalar_fields_of_the_exact_type_are_taken_as_they_are_and_the_rest_still_checked() -> None:
    # The decoder takes a str, int, float or bool field as is when the JSON value has exactly
    # that type; anything else still goes through the field's checks.
    value = decode({"s": "x", "i": 1, "f": 2.5, "b": True, "n": 3}, Scalars, path="data")
    assert value == Scalars("x", 1, 2.5, True, 3)
    widened = decode({"s": "x", "i": 1, "f": 2, "b": False}, Scalars, path="data")
    assert widened.f == 2.0 and type(widened.f) is float and widened.n is None
    for data, where, expected in [
        ({"s": 5, "i": 1, "f": 1.0, "b": True}, "data.s", "a string"),
        ({"s": "x", "i": True, "f": 1.0, "b": True}, "data.i", "an integer"),
        ({"s": "x", "i": 1.0, "f": 1.0, "b": True}, "data.i", "an integer"),
        ({"s": "x", "i": 1, "f": "1", "b": True}, "data.f", "a number"),
        ({"s": "x", "i": 1, "f": 1.0, "b": 1}, "data.b", "true or false"),
        ({"s": "x", "i": 1, "f": 1.0, "b": True, "n": "3"}, "data.n", "no member|fits no member"),
    ]:
        with pytest.raises(SerializationError, match=rf"^{re.escape(where)}: (expected )?.*({expected})"):
            decode(data, Scalars, path="data")
    with pytest.raises(SerializationError, match=r"^data\.b: the required field of Scalars is missing$"):
        decode({"s": "x", "i": 1, "f": 1.0}, Scalars, path="data")
