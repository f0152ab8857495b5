from pyes import EventStore, NewEvent


def test_append_and_read_back(store: EventStore) -> None:
    result = store.append("account-1", [NewEvent("Opened", {"owner": "ann"}), NewEvent("Deposited", {"amount": 10})])
    assert result.stream_version == 2
    assert len(result.positions) == 2
    events = store.read_stream("account-1")
    assert [e.type for e in events] == ["Opened", "Deposited"]
    assert events[1].data == {"amount": 10}
