"""Reading: a stream forward and backward, one event, the global order, categories, types,
correlation ids."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import settle

from pyes import EventStore, NewEvent


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.append("account-1", [NewEvent("Opened"), NewEvent("Deposited", {"n": 1}), NewEvent("Deposited", {"n": 2})])
    store.append("ledger-1", [NewEvent("Posted")])
    store.append("account-2", [NewEvent("Opened"), NewEvent("Withdrawn")])
    store.append("account-1", [NewEvent("Withdrawn"), NewEvent("Closed")])
    settle(store)
    return store


def test_read_stream_forward_from_and_limit(filled: EventStore) -> None:
    assert [e.version for e in filled.read_stream("account-1")] == [1, 2, 3, 4, 5]
    assert [e.version for e in filled.read_stream("account-1", from_version=3)] == [3, 4, 5]
    assert [e.version for e in filled.read_stream("account-1", from_version=2, max_count=2)] == [2, 3]
    assert filled.read_stream("account-1", from_version=6) == []
    assert filled.read_stream("account-404") == []


def test_read_stream_backward(filled: EventStore) -> None:
    assert [e.version for e in filled.read_stream("account-1", backward=True)] == [5, 4, 3, 2, 1]
    assert [e.version for e in filled.read_stream("account-1", backward=True, from_version=3)] == [3, 2, 1]
    assert [e.type for e in filled.read_stream("account-1", backward=True, max_count=1)] == ["Closed"]


def test_read_all_in_pages_returns_everything_once_in_order(filled: EventStore) -> None:
    everything = filled.read_all()
    assert [(e.stream_id, e.version) for e in everything] == [
        ("account-1", 1), ("account-1", 2), ("account-1", 3), ("ledger-1", 1),
        ("account-2", 1), ("account-2", 2), ("account-1", 4), ("account-1", 5),
    ]
    paged, checkpoint = [], None
    while page := filled.read_all(after=checkpoint, max_count=3):
        assert len(page) <= 3
        paged.extend(page)
        checkpoint = page[-1].checkpoint
    assert paged == everything
    assert filled.read_all(after=everything[-1].checkpoint) == []
    # The order is (transaction id, position), and the checkpoint says so.
    keys = [(e.transaction_id, e.position) for e in everything]
    assert keys == sorted(keys)
    assert all(e.checkpoint == f"{e.transaction_id}/{e.position}" for e in everything)


def test_read_all_by_types(filled: EventStore) -> None:
    got = filled.read_all(types=["Opened", "Closed"])
    assert [(e.stream_id, e.type) for e in got] == [("account-1", "Opened"), ("account-2", "Opened"), ("account-1", "Closed")]
    assert filled.read_all(types=["Nothing"]) == []
    first = filled.read_all(types=["Withdrawn"], max_count=1)
    rest = filled.read_all(types=["Withdrawn"], after=first[0].checkpoint)
    assert [(e.stream_id, e.type) for e in first + rest] == [("account-2", "Withdrawn"), ("account-1", "Withdrawn")]


def test_read_category(filled: EventStore) -> None:
    got = filled.read_category("account")
    assert {e.stream_id for e in got} == {"account-1", "account-2"}
    assert len(got) == 7
    assert [e.type for e in filled.read_category("ledger")] == ["Posted"]
    assert [e.stream_id for e in filled.read_category("account", types=["Withdrawn"])] == ["account-2", "account-1"]
    page = filled.read_category("account", max_count=4)
    rest = filled.read_category("account", after=page[-1].checkpoint)
    assert page + rest == got
    assert filled.read_category("acc") == []  # a category is matched whole, not as a prefix


def test_category_is_the_part_before_the_first_dash(store: EventStore) -> None:
    store.append("order-2024-17", [NewEvent("Placed")])
    store.append("orderline", [NewEvent("Placed")])
    settle(store)
    assert [e.stream_id for e in store.read_category("order")] == ["order-2024-17"]
    assert [e.stream_id for e in store.read_category("orderline")] == ["orderline"]


def test_a_stream_row_gets_its_category_once_when_the_stream_is_created(store: EventStore, connect: Any) -> None:
    # pyes.streams.category is a plain column set by the trigger streams_category (0008).
    store.append("order-2024-17", [NewEvent("Placed")])
    store.append("orderline", [NewEvent("Placed")])
    store.append("order-2024-17", [NewEvent("Shipped")], 1)
    rows = connect().execute("SELECT stream_id, category, version FROM pyes.streams ORDER BY stream_id").fetchall()
    assert rows == [("order-2024-17", "order", 2), ("orderline", "orderline", 1)]


def test_read_correlation(store: EventStore) -> None:
    request = uuid.uuid4()
    first = NewEvent("OrderPlaced", correlation_id=request)
    store.append("order-1", [first])
    store.append("stock-1", [NewEvent("StockReserved", correlation_id=request, causation_id=first.id)])
    store.append("order-2", [NewEvent("OrderPlaced", correlation_id=uuid.uuid4())])
    got = store.read_correlation(request)
    assert [(e.stream_id, e.type) for e in got] == [("order-1", "OrderPlaced"), ("stock-1", "StockReserved")]
    assert got[1].causation_id == first.id
    page = store.read_correlation(request, max_count=1)
    assert store.read_correlation(request, after=page[0].checkpoint) == got[1:]
    assert store.read_correlation(uuid.uuid4()) == []


def test_get_event_and_head_checkpoint(filled: EventStore) -> None:
    last = filled.read_stream("account-1", backward=True, max_count=1)[0]
    assert filled.get_event(last.event_id) == last
    head = filled.head_checkpoint()
    assert filled.read_all(after=head) == []
    filled.append("account-3", [NewEvent("Opened")])
    settle(filled)
    assert [e.stream_id for e in filled.read_all(after=head)] == ["account-3"]
