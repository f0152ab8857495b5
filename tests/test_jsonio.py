"""pyes.jsonio reads and writes json and jsonb exactly as the standard library does, only faster."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyes import EventStore, NewEvent
from pyes.jsonio import dumps, loads

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_loads_agrees_with_the_standard_library(value: Any) -> None:
    text = json.dumps(value)
    expected = json.loads(text)
    for form in (text, text.encode(), memoryview(text.encode())):
        got = loads(form)
        assert got == expected
        assert json.dumps(got) == json.dumps(expected)  # same types too (no int turned float)


def test_huge_numbers_survive_a_round_trip_through_the_store(store: EventStore) -> None:
    data = {"big": 123456789012345678901234567890, "neg": -(2**80), "small": 7, "text": "1234567890123456789012"}
    store.append("item-1", [NewEvent("Noted", data)])
    [event] = store.read_stream("item-1")
    assert event.data == data
    assert type(event.data["big"]) is int


@pytest.mark.parametrize("binary", [False, True])
def test_a_configured_connection_reads_json_and_jsonb_as_the_standard_library(connect: Any, binary: bool) -> None:
    from pyes import jsonio

    text = json.dumps({"big": 123456789012345678901234567890, "f": 1.5, "s": "é\n", "l": [None, True, -(2**70)]})
    conn = connect()
    jsonio.configure(conn)
    row = conn.cursor(binary=binary).execute("SELECT %s::json, %s::jsonb, NULL::jsonb", (text, text)).fetchone()
    assert row == (json.loads(text), json.loads(text), None)
    assert type(row[1]["big"]) is int


# -- writing ---------------------------------------------------------------------------------

# Values json.dumps writes (or refuses) in every way that matters to PostgreSQL: NaN and
# infinities, None, integers beyond 64 bits, non-string keys, any text (surrogates and NUL
# included), nesting.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=8)
)
_keys = st.text(max_size=6) | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
written = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4)  # what orjson writes itself
    | st.dictionaries(_keys, children, max_size=4),
    max_leaves=20,
)


def _as_jsonb(conn: psycopg.Connection[Any], text: str | bytes) -> tuple[str, str | None]:
    """What PostgreSQL makes of ``text`` as jsonb: ("ok", its canonical text) or ("error", SQLSTATE)."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    try:
        with conn.transaction():
            row = conn.execute("SELECT convert_from(%s, 'UTF8')::jsonb::text", (raw,)).fetchone()
    except psycopg.Error as error:
        return ("error", error.sqlstate)
    assert row is not None
    return ("ok", row[0])


def test_dumps_gives_postgresql_what_json_dumps_gives_it(connect: Any) -> None:
    conn = connect(autocommit=True)

    @settings(max_examples=200, deadline=None)
    @given(written)
    @example(float("nan"))
    @example({"rate": [1.5, float("inf")]})
    @example({"rate": -float("inf"), "note": "x"})
    @example({"none": None})
    @example({1: "one", "big": 2**70})
    @example({6.103515625e-05: True})  # json.dumps writes the key as "6.103515625e-05"
    @example({"bad": "\ud800"})
    @example({"nul": "a\x00b"})
    def check(value: Any) -> None:
        try:
            expected = json.dumps(value)
        except (TypeError, ValueError, RecursionError) as error:
            with pytest.raises(type(error)):
                dumps(value)
            return
        assert _as_jsonb(conn, dumps(value)) == _as_jsonb(conn, expected)

    check()


def test_dumps_takes_the_fast_path_for_usual_data_and_json_dumps_for_the_rest() -> None:
    assert dumps({"amount": 10, "note": "café", "tags": ["a", "b"], "rate": 0.1}) == (
        b'{"amount":10,"note":"caf\xc3\xa9","tags":["a","b"],"rate":0.1}'
    )
    assert dumps({"rate": float("nan")}) == '{"rate": NaN}'  # PostgreSQL refuses it, as before
    assert dumps({"empty": None}) == '{"empty": null}'
    assert dumps({1: "one"}) == '{"1": "one"}'
    assert dumps({"big": 2**70}) == '{"big": 1180591620717411303424}'
    with pytest.raises(TypeError):
        dumps({"at": datetime(2026, 1, 1, tzinfo=UTC)})  # as json.dumps: no silent ISO string
    # The one widening: a UUID is written as its text (json.dumps raises TypeError).
    some_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert dumps({"id": some_id}) == b'{"id":"12345678-1234-5678-1234-567812345678"}'


class Channel(enum.Enum):
    CARD = "card"


@pytest.mark.parametrize("widened", [uuid.UUID("12345678-1234-5678-1234-567812345678"), Channel.CARD],
                         ids=["uuid", "enum"])
def test_a_value_orjson_widens_is_written_alike_by_both_paths(widened: Any) -> None:
    # A None sends the value to json.dumps: it must write the UUID or enum as orjson does,
    # not refuse the data only because an optional field of it is empty.
    alone = json.loads(dumps({"v": widened}))
    with_none = json.loads(dumps({"v": widened, "empty": None}))
    assert with_none == {**alone, "empty": None}
    assert alone == {"v": str(widened) if isinstance(widened, uuid.UUID) else widened.value}
    with pytest.raises(TypeError):
        dumps({"v": object(), "empty": None})  # anything else is refused as before


def test_the_store_writes_ids_the_same_whoever_writes_the_json(store: EventStore) -> None:
    # The store hands jsonio.dumps the ids as UUID values (it writes them in C) and any other
    # json_dumps their text: the stored events are the same.
    order_id = uuid.uuid4()
    first = NewEvent("Ordered", {"order": order_id, "coupon": None}, correlation_id=uuid.uuid4())
    second = NewEvent("Ordered", {"order": str(order_id), "coupon": None}, causation_id=uuid.uuid4())
    store.append("order-1", [first])
    with EventStore(store.pool, json_dumps=json.dumps) as plain:
        plain.append("order-1", [second])
    stored = store.read_stream("order-1")
    assert [(e.event_id, e.correlation_id, e.causation_id) for e in stored] == [
        (first.id, first.correlation_id, None), (second.id, None, second.causation_id)]
    assert stored[0].data == stored[1].data == {"order": str(order_id), "coupon": None}


def test_an_event_with_nan_is_refused_and_nothing_is_written(store: EventStore) -> None:
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        store.append("item-1", [NewEvent("Noted", {"ok": 1}), NewEvent("Noted", {"rate": float("nan")})])
    assert store.read_stream("item-1") == []
