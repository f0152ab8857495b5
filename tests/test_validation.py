"""Bad input gets its own SQLSTATE, a DETAIL a person can act on, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pyes import (
    EventStore,
    EventTooLarge,
    InvalidArgument,
    InvalidBatch,
    InvalidCheckpoint,
    InvalidEvent,
    InvalidEventId,
    InvalidEventType,
    InvalidExpectedVersion,
    InvalidInput,
    InvalidStreamId,
    NewEvent,
    PyesError,
)
from pyes.errors import translate

OK_EVENT = {"type": "Deposited", "data": {"amount": 1}}


def raw_append(conn: psycopg.Connection[Any], stream_id: Any, events: Any, expected: Any = "any") -> None:
    """Call pyes.append as any SQL client would, with the JSON exactly as given."""
    payload = events if isinstance(events, str) or events is None else json.dumps(events)
    try:
        with conn.transaction():
            conn.execute("SELECT * FROM pyes.append(%s, %s::jsonb, %s::text)", (stream_id, payload, expected))
    except psycopg.Error as error:
        raise translate(error) from error


def counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute("SELECT (SELECT count(*) FROM pyes.events), (SELECT count(*) FROM pyes.streams)").fetchone()
    assert row is not None
    return row[0], row[1]


BAD_APPENDS: list[tuple[str, Any, Any, Any, type[PyesError], str]] = [
    # (case, stream id, events, expected version, exception, sqlstate)
    ("empty stream id", "", [OK_EVENT], "any", InvalidStreamId, "PE101"),
    ("null stream id", None, [OK_EVENT], "any", InvalidStreamId, "PE101"),
    ("stream id of 256 characters", "a" * 256, [OK_EVENT], "any", InvalidStreamId, "PE101"),
    ("stream id with a newline", "account-1\n", [OK_EVENT], "any", InvalidStreamId, "PE101"),
    ("stream id with a tab", "account\t1", [OK_EVENT], "any", InvalidStreamId, "PE101"),
    ("stream id with NUL-like control", "account-\x01", [OK_EVENT], "any", InvalidStreamId, "PE101"),
    ("events not an array", "account-1", OK_EVENT, "any", InvalidBatch, "PE107"),
    ("events null", "account-1", None, "any", InvalidBatch, "PE107"),
    ("empty batch", "account-1", [], "any", InvalidBatch, "PE107"),
    ("event not an object", "account-1", [OK_EVENT, 42], "any", InvalidEvent, "PE103"),
    ("event with unknown key", "account-1", [{"type": "A", "dat": {}}], "any", InvalidEvent, "PE103"),
    ("missing type", "account-1", [{"data": {}}], "any", InvalidEventType, "PE102"),
    ("empty type", "account-1", [{"type": ""}], "any", InvalidEventType, "PE102"),
    ("type not a string", "account-1", [{"type": 7}], "any", InvalidEventType, "PE102"),
    ("type starting with a digit", "account-1", [{"type": "1Deposited"}], "any", InvalidEventType, "PE102"),
    ("type with a space", "account-1", [{"type": "Money Deposited"}], "any", InvalidEventType, "PE102"),
    ("type of 256 characters", "account-1", [{"type": "T" * 256}], "any", InvalidEventType, "PE102"),
    ("data an array", "account-1", [{"type": "A", "data": [1, 2]}], "any", InvalidEvent, "PE103"),
    ("data a string", "account-1", [{"type": "A", "data": "x"}], "any", InvalidEvent, "PE103"),
    ("data null", "account-1", [{"type": "A", "data": None}], "any", InvalidEvent, "PE103"),
    ("metadata a number", "account-1", [{"type": "A", "metadata": 3}], "any", InvalidEvent, "PE103"),
    ("schema_version zero", "account-1", [{"type": "A", "schema_version": 0}], "any", InvalidEvent, "PE103"),
    ("schema_version text", "account-1", [{"type": "A", "schema_version": "2"}], "any", InvalidEvent, "PE103"),
    ("schema_version fraction", "account-1", [{"type": "A", "schema_version": 1.5}], "any", InvalidEvent, "PE103"),
    ("id not a uuid", "account-1", [{"type": "A", "id": "42"}], "any", InvalidEventId, "PE106"),
    ("id a number", "account-1", [{"type": "A", "id": 42}], "any", InvalidEventId, "PE106"),
    ("correlation id not a uuid", "account-1", [{"type": "A", "correlation_id": "req-1"}], "any",
     InvalidEventId, "PE106"),
    ("causation id not a uuid", "account-1", [{"type": "A", "causation_id": "x"}], "any", InvalidEventId, "PE106"),
    ("unknown mode", "account-1", [OK_EVENT], "sometimes", InvalidExpectedVersion, "PE105"),
    ("negative version", "account-1", [OK_EVENT], "-1", InvalidExpectedVersion, "PE105"),
    ("null expected version", "account-1", [OK_EVENT], None, InvalidExpectedVersion, "PE105"),
    ("uppercase mode", "account-1", [OK_EVENT], "ANY", InvalidExpectedVersion, "PE105"),
]


@pytest.mark.parametrize(
    ("stream_id", "events", "expected", "exc", "sqlstate"),
    [case[1:] for case in BAD_APPENDS],
    ids=[case[0] for case in BAD_APPENDS],
)
def test_bad_append_is_refused_and_writes_nothing(
    connect: Any, stream_id: Any, events: Any, expected: Any, exc: type[PyesError], sqlstate: str
) -> None:
    conn = connect(autocommit=True)
    raw_append(conn, "account-1", [OK_EVENT])  # the stream exists, so nothing new is hidden
    before = counts(conn)
    with pytest.raises(exc) as caught:
        raw_append(conn, stream_id, events, expected)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.sqlstate == sqlstate
    assert caught.value.detail, "every error carries a DETAIL"
    assert caught.value.hint, "every error carries a HINT"
    assert counts(conn) == before


def test_bad_event_in_a_batch_names_its_place(connect: Any) -> None:
    conn = connect(autocommit=True)
    with pytest.raises(InvalidEvent) as caught:
        raw_append(conn, "account-1", [OK_EVENT, OK_EVENT, {"type": "A", "data": [1]}])
    assert "Event 3" in (caught.value.detail or "")
    assert counts(conn) == (0, 0)


def test_event_size_limit_default_and_setting(connect: Any) -> None:
    conn = connect(autocommit=True)
    big = {"type": "Uploaded", "data": {"blob": "x" * (1024 * 1024)}}
    with pytest.raises(EventTooLarge) as caught:
        raw_append(conn, "file-1", [big])
    assert caught.value.sqlstate == "PE104"
    assert "1048576" in (caught.value.detail or "")
    just_under = {"type": "Uploaded", "data": {"blob": "x" * (1024 * 1024 - 100)}}
    raw_append(conn, "file-1", [just_under])
    assert counts(conn) == (1, 1)

    conn.execute("SET pyes.max_event_bytes = '2000'")
    with pytest.raises(EventTooLarge):
        raw_append(conn, "file-2", [OK_EVENT, {"type": "A", "data": {"s": "y" * 3000}}])
    raw_append(conn, "file-2", [{"type": "A", "data": {"s": "y" * 1000}}])
    assert counts(conn) == (2, 2)

    conn.execute("SET pyes.max_event_bytes = 'lots'")
    with pytest.raises(InvalidArgument):
        raw_append(conn, "file-3", [OK_EVENT])


def test_python_store_maps_the_same_errors(store: EventStore) -> None:
    with pytest.raises(InvalidStreamId):
        store.append("", [NewEvent("A")])
    with pytest.raises(InvalidEventType):
        store.append("s-1", [NewEvent("not a type")])
    with pytest.raises(InvalidBatch):
        store.append("s-1", [])
    with pytest.raises(InvalidExpectedVersion):
        store.append("s-1", [NewEvent("A")], "latest")
    with pytest.raises(InvalidExpectedVersion):
        store.append("s-1", [NewEvent("A")], -1)
    assert store.stream_version("s-1") == 0


BAD_READS: list[tuple[str, str, tuple[Any, ...], type[PyesError]]] = [
    ("read_stream empty id", "SELECT * FROM pyes.read_stream(%s)", ("",), InvalidStreamId),
    ("read_stream zero count", "SELECT * FROM pyes.read_stream(%s, NULL, %s)", ("s-1", 0), InvalidArgument),
    ("read_stream huge count", "SELECT * FROM pyes.read_stream(%s, NULL, %s)", ("s-1", 100001), InvalidArgument),
    ("read_stream direction", "SELECT * FROM pyes.read_stream(%s, NULL, 10, %s)", ("s-1", "sideways"), InvalidArgument),
    ("read_all checkpoint", "SELECT * FROM pyes.read_all(%s)", ("yesterday",), InvalidCheckpoint),
    ("read_all negative checkpoint", "SELECT * FROM pyes.read_all(%s)", ("-1/3",), InvalidCheckpoint),
    ("read_all empty types", "SELECT * FROM pyes.read_all(NULL, 10, %s)", ([],), InvalidArgument),
    ("read_category with dash", "SELECT * FROM pyes.read_category(%s)", ("account-1",), InvalidArgument),
    ("read_category empty", "SELECT * FROM pyes.read_category(%s)", ("",), InvalidArgument),
    ("read_category checkpoint", "SELECT * FROM pyes.read_category(%s, %s)", ("account", "1:2"), InvalidCheckpoint),
    ("read_correlation null", "SELECT * FROM pyes.read_correlation(%s)", (None,), InvalidArgument),
]


@pytest.mark.parametrize(("query", "params", "exc"), [c[1:] for c in BAD_READS], ids=[c[0] for c in BAD_READS])
def test_bad_read_arguments(connect: Any, query: str, params: tuple[Any, ...], exc: type[PyesError]) -> None:
    conn = connect(autocommit=True)
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(query, params)
    mapped = translate(caught.value)
    assert isinstance(mapped, exc)
    assert mapped.detail


def test_store_read_errors(store: EventStore) -> None:
    with pytest.raises(InvalidCheckpoint):
        store.read_all(after="not-a-checkpoint")
    with pytest.raises(InvalidArgument):
        store.read_category("account-1")
    with pytest.raises(InvalidArgument):
        store.read_stream("s-1", max_count=0)
