"""Appending: the expected-version matrix, idempotent retries, atomic batches, shared
transactions."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pyes import (
    DuplicateEvent,
    EventStore,
    ExpectedVersion,
    NewEvent,
    WrongExpectedVersion,
)


def _count(store: EventStore) -> tuple[int, int]:
    with store.connection() as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM pyes.events), (SELECT count(*) FROM pyes.streams)").fetchone()
    assert row is not None
    return row[0], row[1]


def test_append_and_read_back(store: EventStore) -> None:
    result = store.append("account-1", [NewEvent("Opened", {"owner": "ann"}), NewEvent("Deposited", {"amount": 10})])
    assert result.stream_version == 2
    assert len(result.positions) == 2 and result.positions[0] < result.positions[1]
    events = store.read_stream("account-1")
    assert [(e.type, e.version, e.position) for e in events] == [
        ("Opened", 1, result.positions[0]),
        ("Deposited", 2, result.positions[1]),
    ]
    assert events[1].data == {"amount": 10}
    assert events[0].category == "account"
    assert events[0].recorded_at.tzinfo is not None
    assert isinstance(events[0].event_id, uuid.UUID)
    assert store.stream_version("account-1") == 2
    assert store.stream_version("account-404") == 0


# Expected-version matrix: (state of the stream before, expectation, succeeds?).
# The stream is "absent" or has 2 events.
MATRIX: list[tuple[str, Any, bool]] = [
    ("absent", ExpectedVersion.ANY, True),
    ("absent", ExpectedVersion.NO_STREAM, True),
    ("absent", ExpectedVersion.STREAM_EXISTS, False),
    ("absent", 0, True),
    ("absent", 1, False),
    ("absent", "0", True),
    ("two", ExpectedVersion.ANY, True),
    ("two", ExpectedVersion.NO_STREAM, False),
    ("two", ExpectedVersion.STREAM_EXISTS, True),
    ("two", 0, False),
    ("two", 1, False),
    ("two", 2, True),
    ("two", 3, False),  # strict: a version higher than the real one fails too
    ("two", 100, False),
    ("two", "2", True),
]


@pytest.mark.parametrize(("state", "expected", "ok"), MATRIX)
def test_expected_version_matrix(store: EventStore, state: str, expected: Any, ok: bool) -> None:
    before = 0
    if state == "two":
        store.append("order-7", [NewEvent("Created"), NewEvent("Paid")])
        before = 2
    if ok:
        result = store.append("order-7", [NewEvent("Shipped")], expected)
        assert result.stream_version == before + 1
        assert store.stream_version("order-7") == before + 1
    else:
        with pytest.raises(WrongExpectedVersion) as caught:
            store.append("order-7", [NewEvent("Shipped")], expected)
        assert caught.value.sqlstate == "PE001"
        assert caught.value.stream_id == "order-7"
        assert caught.value.actual == before
        assert caught.value.detail is not None and "order-7" in caught.value.detail
        assert store.stream_version("order-7") == before
        assert len(store.read_stream("order-7")) == before


def test_idempotent_retry_returns_original_result(store: EventStore) -> None:
    batch = [NewEvent("Opened"), NewEvent("Deposited", {"amount": 5})]
    first = store.append("account-9", batch, ExpectedVersion.NO_STREAM)
    store.append("account-9", [NewEvent("Withdrawn", {"amount": 1})], 2)
    # The same append sent again (say after a lost reply) writes nothing.
    again = store.append("account-9", batch, ExpectedVersion.NO_STREAM)
    assert again == first
    with_any = store.append("account-9", batch)
    assert with_any == first
    assert store.stream_version("account-9") == 3
    assert _count(store) == (3, 1)


def test_retry_with_wrong_expected_version_is_not_idempotent(store: EventStore) -> None:
    batch = [NewEvent("Opened")]
    store.append("account-9", batch, ExpectedVersion.NO_STREAM)
    with pytest.raises(DuplicateEvent):
        store.append("account-9", batch, 5)


def test_id_stored_in_another_stream_is_refused(store: EventStore) -> None:
    event = NewEvent("Opened")
    store.append("account-1", [event])
    with pytest.raises(DuplicateEvent) as caught:
        store.append("account-2", [event])
    assert caught.value.sqlstate == "PE002"
    assert str(event.id) in (caught.value.detail or "")
    assert store.stream_version("account-2") == 0


def test_id_stored_later_in_batch_is_refused_and_nothing_written(store: EventStore) -> None:
    stored = NewEvent("Opened")
    store.append("account-1", [stored])
    with pytest.raises(DuplicateEvent):
        store.append("account-2", [NewEvent("Opened"), NewEvent("Deposited"), stored])
    assert _count(store) == (1, 1)


def test_same_id_twice_in_one_batch_is_refused(store: EventStore) -> None:
    event = NewEvent("Opened")
    with pytest.raises(DuplicateEvent):
        store.append("account-1", [event, event])
    assert _count(store) == (0, 0)


def test_partial_retry_is_refused(store: EventStore) -> None:
    a, b = NewEvent("A"), NewEvent("B")
    store.append("s-1", [a, b])
    with pytest.raises(DuplicateEvent):
        store.append("s-1", [a])  # same first id, but not the same batch
    with pytest.raises(DuplicateEvent):
        store.append("s-1", [a, NewEvent("B")])


def test_event_fields_are_stored(store: EventStore) -> None:
    correlation, causation = uuid.uuid4(), uuid.uuid4()
    event = NewEvent("Deposited", {"amount": "10.50"}, {"actor": "ann"}, schema_version=3,
                     correlation_id=correlation, causation_id=causation)
    store.append("account-1", [event])
    got = store.get_event(event.id)
    assert got is not None
    assert (got.event_id, got.type, got.data, got.metadata, got.schema_version) == (
        event.id, "Deposited", {"amount": "10.50"}, {"actor": "ann"}, 3)
    assert (got.correlation_id, got.causation_id) == (correlation, causation)
    assert store.get_event(uuid.uuid4()) is None


def test_appends_to_several_streams_share_the_caller_transaction(store: EventStore, connect: Any) -> None:
    conn = connect(autocommit=True)  # transactions below are explicit
    conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, total int)")

    # Rolled back together.
    with conn.transaction():
        store.append("order-1", [NewEvent("Placed")], conn=conn)
        store.append("stock-1", [NewEvent("Reserved")], conn=conn)
        conn.execute("INSERT INTO public.orders VALUES (1, 10)")
        raise psycopg.Rollback()
    assert _count(store) == (0, 0)
    assert conn.execute("SELECT count(*) FROM public.orders").fetchone() == (0,)

    # Committed together.
    with conn.transaction():
        store.append("order-1", [NewEvent("Placed")], conn=conn)
        store.append("stock-1", [NewEvent("Reserved")], conn=conn)
        conn.execute("INSERT INTO public.orders VALUES (1, 10)")
    assert _count(store) == (2, 2)

    # One failing append undoes the whole transaction, the caller's rows included.
    with pytest.raises(WrongExpectedVersion), conn.transaction():
        store.append("order-2", [NewEvent("Placed")], conn=conn)
        conn.execute("INSERT INTO public.orders VALUES (2, 20)")
        store.append("order-1", [NewEvent("Paid")], ExpectedVersion.NO_STREAM, conn=conn)
    assert _count(store) == (2, 2)
    assert conn.execute("SELECT count(*) FROM public.orders").fetchone() == (1,)


def test_stream_metadata(store: EventStore) -> None:
    store.append("account-1", [NewEvent("Opened")])
    store.set_stream_metadata("account-1", {"owner": "billing"})
    with store.connection() as conn:
        row = conn.execute("SELECT metadata, version, category FROM pyes.get_stream('account-1')").fetchone()
    assert row == ({"owner": "billing"}, 1, "account")
    from pyes import InvalidEvent, StreamNotFound
    with pytest.raises(StreamNotFound):
        store.set_stream_metadata("account-404", {})
    with pytest.raises(InvalidEvent):
        store.set_stream_metadata("account-1", [1])  # type: ignore[arg-type]
    assert store.stream_version("account-1") == 1


def test_positions_follow_batch_order(store: EventStore) -> None:
    events = [NewEvent(f"E{i}") for i in range(50)]
    result = store.append("s-1", events)
    assert list(result.positions) == sorted(result.positions)
    stored = store.read_stream("s-1", max_count=100)
    assert [e.type for e in stored] == [f"E{i}" for i in range(50)]
    assert [e.version for e in stored] == list(range(1, 51))
    assert tuple(e.position for e in stored) == result.positions


@pytest.mark.parametrize("with_id", ["all", "some", "none"])
def test_every_event_gets_its_own_id_or_a_new_one_in_batch_order(connect: Any, with_id: str) -> None:
    """The batch path takes ids from the list it parsed only when every event has one; a
    batch with some or no ids must still store each given id on its own event."""
    ids = [uuid.uuid4() for _ in range(5)]
    given = {"all": [True] * 5, "some": [False, True, False, True, True], "none": [False] * 5}[with_id]
    events = [{"type": f"E{i}", **({"id": str(ids[i])} if has else {})} for i, has in enumerate(given)]
    conn = connect()
    for stream in ("s-1", "s-2"):  # a new stream, then an existing one (the compare-and-set path)
        if stream == "s-2":
            conn.execute("SELECT pyes.append('s-2', '[{\"type\": \"First\"}]')")
            events = [{**e, "id": str(uuid.uuid4())} if "id" in e else e for e in events]
        conn.execute("SELECT pyes.append(%s, %s)", (stream, Jsonb(events)))
        rows = conn.execute(
            "SELECT type, event_id FROM pyes.events WHERE stream_id = %s AND type LIKE 'E%%' ORDER BY version",
            (stream,)).fetchall()
        assert [r[0] for r in rows] == [e["type"] for e in events]
        for event, (_, stored) in zip(events, rows, strict=True):
            if "id" in event:
                assert stored == uuid.UUID(event["id"])
        assert len({r[1] for r in rows}) == 5


def test_non_pyes_errors_pass_through(store: EventStore, connect: Any) -> None:
    conn = connect()
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM pyes.nope")


def test_a_new_store_looks_ids_up_through_the_index(connect: Any) -> None:
    """pyes.events of a fresh database has no statistics. The cached plans of pyes.append must
    still probe the ids through the unique index once the table has grown: a plan that scans
    the table, chosen while it was tiny, would be kept until autovacuum analyses it and would
    make every append slower as the table grows. Counted, not timed: pg_stat_user_tables."""
    conn = connect(autocommit=True)

    def appends_then_seq_scans(start: int) -> int:
        for n in range(start, start + 40):
            for stream in (f"acct-{n}", f"acct-{n % 5}"):  # new streams and existing ones
                batch = [{"id": str(uuid.uuid4()), "type": "Noted"} for _ in range(1 + n % 3)]
                conn.execute("SELECT pyes.append(%s, %s)", (stream, Jsonb(batch)))
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'pyes.events'::regclass").fetchone()
        assert row is not None
        return int(row[0])

    warm = appends_then_seq_scans(0)  # the first calls may scan the still tiny table
    assert appends_then_seq_scans(40) == warm
    assert appends_then_seq_scans(80) == warm


def test_a_store_on_the_callers_pool_commits_its_own_calls(dsn: str, connect: Any) -> None:
    """A caller's pool need not be in autocommit: a call the store owns still commits."""
    from psycopg_pool import ConnectionPool

    with ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:
        store = EventStore(pool)
        store.append("acct-1", [NewEvent("Opened", {})])
        with pool.connection() as c:
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    other = connect(autocommit=True)
    assert other.execute("SELECT pyes.stream_version('acct-1')").fetchone() == (1,)
