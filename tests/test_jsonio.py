"""pyes.jsonio decodes json and jsonb exactly as the standard library does, only faster."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyes import EventStore, NewEvent
from pyes.jsonio import loads

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
