"""The event commands of ``pyes`` (append, read, tail, event show, trace, streams, stats),
through click's CliRunner against a real server: every output format, exit codes, errors."""

from __future__ import annotations

import json
import threading
import types
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bank import BankAccount, DepositMoney, OpenAccount
from click.testing import CliRunner, Result
from conftest import settle

from pyes import CommandContext, CommandHandler, EventStore, NewEvent, RecordedEvent, Repository
from pyes.cli import common, events, main

RECORDED_FIELDS = [
    "position", "event_id", "stream_id", "category", "version", "type", "schema_version", "data", "metadata",
    "correlation_id", "causation_id", "recorded_at", "transaction_id", "checkpoint",
]
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"

Run = Callable[..., Result]


@pytest.fixture
def run(dsn: str) -> Run:
    """Run ``pyes ARGS --dsn <the test database>``; a wide terminal, so that tables do not wrap."""
    runner = CliRunner(env={"COLUMNS": "250"})

    def _run(*args: str, input: str | None = None, dsn_: str | None = dsn, code: int | None = 0) -> Result:
        full = [*args, "--dsn", dsn_] if dsn_ is not None else list(args)
        result = runner.invoke(main, full, input=input)
        if code is not None:
            assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
        return result

    return _run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def as_jsonl(result: Result) -> list[Any]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def one_line_error(result: Result) -> str:
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[0]


# -- append --------------------------------------------------------------------------------


def test_append_prints_the_version_and_positions_in_each_format(run: Run, store: EventStore) -> None:
    table = run("append", "account-1", "Opened", '{"owner": "ann"}')
    assert "account-1" in table.stdout and "stream_version" in table.stdout

    as_object = as_json(run("append", "account-1", "Deposited", '{"amount": 5}', "--format", "json"))
    assert as_object["stream_id"] == "account-1" and as_object["stream_version"] == 2
    assert len(as_object["positions"]) == 1

    lines = as_jsonl(run("append", "account-1", "Deposited", '{"amount": 7}', "--format", "jsonl"))
    assert len(lines) == 1 and lines[0]["stream_version"] == 3
    assert lines[0]["positions"][0] > as_object["positions"][0]

    stored = store.read_stream("account-1")
    assert [(e.type, e.data) for e in stored] == [
        ("Opened", {"owner": "ann"}), ("Deposited", {"amount": 5}), ("Deposited", {"amount": 7})]
    assert [e.position for e in stored[1:]] == as_object["positions"] + lines[0]["positions"]


def test_append_reads_data_from_stdin_and_takes_every_field(run: Run, store: EventStore) -> None:
    run("append", "order-1", "Placed", input='{"total": 30}\n')
    event_id, correlation, causation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    run("append", "order-1", "Paid", "-", "--metadata", '{"user": "ann"}', "--id", str(event_id),
        "--correlation-id", str(correlation), "--causation-id", str(causation), "--expected-version", "1",
        input='{"amount": 30}')
    first, second = store.read_stream("order-1")
    assert (first.type, first.data, first.metadata) == ("Placed", {"total": 30}, {})
    assert (second.event_id, second.data, second.metadata) == (event_id, {"amount": 30}, {"user": "ann"})
    assert (second.correlation_id, second.causation_id) == (correlation, causation)


@pytest.mark.parametrize("expected", ["no_stream", "stream_exists", "5", "any"])
def test_append_expected_version_conflicts_exit_with_the_conflict_code(run: Run, store: EventStore,
                                                                      expected: str) -> None:
    run("append", "account-1", "Opened", "{}", "--expected-version", "no_stream")
    run("append", "account-1", "Deposited", "{}", "--expected-version", "1")
    if expected == "any":
        run("append", "account-1", "Deposited", "{}", "--expected-version", expected)
        assert store.stream_version("account-1") == 3
        return
    if expected == "stream_exists":
        result = run("append", "account-2", "Deposited", "{}", "--expected-version", expected,
                     code=common.EXIT_CONFLICT)
    else:
        result = run("append", "account-1", "Deposited", "{}", "--expected-version", expected,
                     code=common.EXIT_CONFLICT)
    assert one_line_error(result).startswith("pyes: WrongExpectedVersion [PE001]: ")
    assert result.stdout == ""
    assert store.stream_version("account-1") == 2


@pytest.mark.parametrize(("args", "stdin", "kind"), [
    (["{bad"], None, "InvalidEvent"),
    ([], "not json at all", "InvalidEvent"),
    (["-"], "", "InvalidEvent"),
    (["[1, 2]"], None, "InvalidEvent"),
    (["{}", "--metadata", "{oops"], None, "InvalidEvent"),
    (["{}", "--metadata", '"text"'], None, "InvalidEvent"),
    (["{}", "--id", "not-a-uuid"], None, "InvalidEventId"),
    (["{}", "--correlation-id", "42"], None, "InvalidEventId"),
    (["{}", "--expected-version", "sometimes"], None, "InvalidExpectedVersion"),
])
def test_append_of_invalid_input_is_one_line_and_writes_nothing(run: Run, store: EventStore, args: list[str],
                                                               stdin: str | None, kind: str) -> None:
    result = run("append", "account-1", "Opened", *args, input=stdin, code=common.EXIT_INVALID_INPUT)
    assert one_line_error(result).startswith(f"pyes: {kind} [PE1")
    assert store.stream_version("account-1") == 0


def test_an_unreachable_server_is_one_line_and_the_traceback_only_with_verbose() -> None:
    runner = CliRunner()
    for args in (["read", "all"], ["append", "a-1", "T", "{}"], ["stats"], ["streams", "list"]):
        result = runner.invoke(main, [*args, "--dsn", UNREACHABLE])
        assert result.exit_code == common.EXIT_CONNECTION, (args, result.stderr)
        assert one_line_error(result).startswith("pyes: cannot reach the database: ")
        assert result.stdout == ""
    verbose = runner.invoke(main, ["--verbose", "read", "all", "--dsn", UNREACHABLE])
    assert verbose.exit_code == common.EXIT_CONNECTION
    assert "Traceback" in verbose.stderr and "pyes: cannot reach the database" in verbose.stderr


def test_every_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["--help"])
    for name in ("append", "read", "tail", "event", "trace", "streams", "stats"):
        assert f"  {name} " in result.stdout
    assert {c.name for c in events.COMMANDS} == {"append", "read", "tail", "event", "trace", "streams", "stats"}


# -- read ----------------------------------------------------------------------------------


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    store.append("account-1", [NewEvent("Opened", {"owner": "ann"}), NewEvent("Deposited", {"n": 1}),
                               NewEvent("Deposited", {"n": 2})])
    store.append("ledger-1", [NewEvent("Posted", {"amount": 3})])
    store.append("account-2", [NewEvent("Opened", {"owner": "bob"}), NewEvent("Withdrawn", {"n": 4})])
    store.append("account-1", [NewEvent("Withdrawn", {"n": 5}), NewEvent("Closed")])
    settle(store)
    return store


def test_read_stream_in_every_format(run: Run, filled: EventStore) -> None:
    stored = filled.read_stream("account-1")
    rows = as_json(run("read", "stream", "account-1", "--format", "json"))
    assert [row["version"] for row in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == RECORDED_FIELDS
    first = rows[0]
    assert first["event_id"] == str(stored[0].event_id) and first["checkpoint"] == stored[0].checkpoint
    assert datetime.fromisoformat(first["recorded_at"]) == stored[0].recorded_at
    assert (first["data"], first["metadata"], first["correlation_id"]) == ({"owner": "ann"}, {}, None)

    assert as_jsonl(run("read", "stream", "account-1", "--format", "jsonl")) == rows

    table = run("read", "stream", "account-1").stdout
    for column in events.EVENT_COLUMNS:
        assert column in table
    assert '{"owner":"ann"}' in table and "Withdrawn" in table and "account-2" not in table


def test_read_stream_from_limit_backward_and_types(run: Run, filled: EventStore) -> None:
    def versions(*args: str) -> list[int]:
        return [row["version"] for row in as_json(run("read", "stream", "account-1", "--format", "json", *args))]

    assert versions("--from", "3") == [3, 4, 5]
    assert versions("--from", "2", "--limit", "2") == [2, 3]
    assert versions("--backward") == [5, 4, 3, 2, 1]
    assert versions("--backward", "--from", "3", "--limit", "2") == [3, 2]
    assert versions("--type", "Deposited") == [2, 3]
    assert versions("--type", "Deposited", "--type", "Closed", "--backward") == [5, 3, 2]
    assert versions("--type", "Nothing") == []
    assert as_json(run("read", "stream", "account-404", "--format", "json")) == []


def test_read_stream_pages_until_the_limit_of_matching_events(run: Run, store: EventStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store.append("s-1", [NewEvent("A" if n % 3 == 0 else "B", {"n": n}) for n in range(1, 13)])
    monkeypatch.setattr(events, "PAGE", 2)
    rows = as_json(run("read", "stream", "s-1", "--type", "A", "--limit", "3", "--format", "json"))
    assert [row["data"]["n"] for row in rows] == [3, 6, 9]
    rows = as_json(run("read", "stream", "s-1", "--type", "A", "--backward", "--format", "json"))
    assert [row["data"]["n"] for row in rows] == [12, 9, 6, 3]
    assert len(as_json(run("read", "stream", "s-1", "--limit", "5", "--format", "json"))) == 5


def test_read_stream_between_moments(run: Run, store: EventStore) -> None:
    for n in range(1, 4):
        store.append("clock-1", [NewEvent("Ticked", {"n": n})])
    first, second, third = store.read_stream("clock-1")

    def versions(*args: str) -> list[int]:
        return [row["version"] for row in as_json(run("read", "stream", "clock-1", "--format", "json", *args))]

    assert versions("--since", second.recorded_at.isoformat()) == [2, 3]
    assert versions("--until", second.recorded_at.isoformat()) == [1, 2]
    utc = second.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert versions("--since", utc, "--until", utc) == [2]
    assert versions("--since", first.recorded_at.isoformat(), "--from", "2", "--limit", "1") == [2]
    assert versions("--since", (third.recorded_at + timedelta(seconds=1)).isoformat()) == []
    assert versions("--type", "Other", "--since", first.recorded_at.isoformat()) == []

    bad = run("read", "stream", "clock-1", "--since", "yesterday", code=common.EXIT_USAGE)
    assert "ISO 8601" in bad.stderr
    run("read", "stream", "clock-1", "--backward", "--until", utc, code=common.EXIT_USAGE)


def test_read_all_pages_by_checkpoint(run: Run, filled: EventStore) -> None:
    everything = filled.read_all()
    rows = as_json(run("read", "all", "--format", "json"))
    assert [(row["stream_id"], row["version"]) for row in rows] == [(e.stream_id, e.version) for e in everything]
    assert [row["checkpoint"] for row in rows] == [e.checkpoint for e in everything]
    assert list(rows[0]) == RECORDED_FIELDS

    first_page = run("read", "all", "--limit", "3")
    assert first_page.stderr.splitlines()[-1] == (
        f"last checkpoint: {everything[2].checkpoint} (continue with --after {everything[2].checkpoint})")
    rest = as_jsonl(run("read", "all", "--after", everything[2].checkpoint, "--format", "jsonl"))
    assert [row["position"] for row in rest] == [e.position for e in everything[3:]]
    last = run("read", "all", "--after", everything[-1].checkpoint)
    assert "no events after" in last.stderr

    typed = as_json(run("read", "all", "--type", "Opened", "--type", "Posted", "--format", "json"))
    assert [(row["stream_id"], row["type"]) for row in typed] == [
        ("account-1", "Opened"), ("ledger-1", "Posted"), ("account-2", "Opened")]

    bad = run("read", "all", "--after", "not-a-checkpoint", code=common.EXIT_INVALID_INPUT)
    assert one_line_error(bad).startswith("pyes: InvalidCheckpoint [PE108]")


def test_read_all_in_pages_smaller_than_the_limit(run: Run, filled: EventStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "PAGE", 2)
    rows = as_json(run("read", "all", "--limit", "5", "--format", "json"))
    assert [row["position"] for row in rows] == [e.position for e in filled.read_all(max_count=5)]
    assert len(as_json(run("read", "all", "--format", "json"))) == 8


def test_read_category(run: Run, filled: EventStore) -> None:
    rows = as_json(run("read", "category", "account", "--format", "json"))
    assert [(row["stream_id"], row["version"]) for row in rows] == [
        ("account-1", 1), ("account-1", 2), ("account-1", 3), ("account-2", 1), ("account-2", 2),
        ("account-1", 4), ("account-1", 5)]
    after = as_jsonl(run("read", "category", "account", "--after", rows[3]["checkpoint"], "--type", "Withdrawn",
                         "--format", "jsonl"))
    assert [(row["stream_id"], row["type"]) for row in after] == [("account-2", "Withdrawn"), ("account-1", "Withdrawn")]
    table = run("read", "category", "account", "--limit", "2")
    assert "ledger-1" not in table.stdout and "account-1" in table.stdout
    assert f"--after {rows[1]['checkpoint']}" in table.stderr
    bad = run("read", "category", "account-1", code=common.EXIT_INVALID_INPUT)
    assert one_line_error(bad).startswith("pyes: InvalidArgument [PE109]")


# -- tail ----------------------------------------------------------------------------------


def append_until(store: EventStore, stop: threading.Event, stream: str, type_: str, every: float = 0.2,
                 once: bool = False) -> threading.Thread:
    """A thread that appends to ``stream`` (once, or again every ``every`` seconds) until
    ``stop`` is set: the tail is sure to be running for at least one of them."""

    def work() -> None:
        while not stop.wait(every):
            store.append(stream, [NewEvent(type_, {"at": datetime.now(UTC).isoformat()})])
            if once:
                return

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(60)
def test_tail_from_start_prints_stored_then_new_events(run: Run, store: EventStore) -> None:
    store.append("account-1", [NewEvent("Opened", {"owner": "ann"}), NewEvent("Deposited", {"n": 1})])
    stop = threading.Event()
    thread = append_until(store, stop, "account-1", "Live", every=0.5, once=True)
    try:
        result = run("tail", "--from-start", "--count", "3", "--interval", "0.05", "--format", "jsonl")
    finally:
        stop.set()
        thread.join()
    rows = as_jsonl(result)
    assert [(row["type"], row["version"]) for row in rows] == [("Opened", 1), ("Deposited", 2), ("Live", 3)]
    assert list(rows[0]) == RECORDED_FIELDS


@pytest.mark.timeout(60)
def test_tail_without_from_start_prints_only_new_events(run: Run, store: EventStore) -> None:
    store.append("account-1", [NewEvent("Opened", {"owner": "ann"})])
    stop = threading.Event()
    thread = append_until(store, stop, "account-2", "Live")
    try:
        result = run("tail", "--count", "1", "--interval", "0.05")
    finally:
        stop.set()
        thread.join()
    (line,) = result.stdout.splitlines()
    position, stream, version, type_, recorded_at, data = line.split("\t")
    assert (stream, type_) == ("account-2", "Live")
    assert int(position) > 1 and int(version) >= 1 and json.loads(data)["at"]
    datetime.fromisoformat(recorded_at)


@pytest.mark.timeout(60)
def test_tail_filters_by_category_and_type(run: Run, store: EventStore) -> None:
    store.append("account-1", [NewEvent("Opened"), NewEvent("Deposited")])
    store.append("order-1", [NewEvent("Placed"), NewEvent("Paid")])
    store.append("order-2", [NewEvent("Placed")])
    result = run("tail", "--from-start", "--category", "order", "--type", "Placed", "--count", "2",
                 "--interval", "0.05", "--format", "json")
    assert [(row["stream_id"], row["type"]) for row in as_jsonl(result)] == [("order-1", "Placed"),
                                                                            ("order-2", "Placed")]


@pytest.mark.timeout(60)
def test_tail_stops_cleanly_on_ctrl_c(run: Run, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append("account-1", [NewEvent("Opened")])
    settle(store)

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(events, "time", types.SimpleNamespace(sleep=interrupt))
    result = run("tail", "--from-start")
    assert len(result.stdout.splitlines()) == 1 and "Opened" in result.stdout
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr


# -- event show ----------------------------------------------------------------------------


def test_event_show(run: Run, store: EventStore) -> None:
    correlation = uuid.uuid4()
    store.append("account-1", [NewEvent("Opened", {"owner": "ann"}, {"user": "root"}, correlation_id=correlation)])
    (stored,) = store.read_stream("account-1")

    shown = as_json(run("event", "show", str(stored.event_id), "--format", "json"))
    assert list(shown) == RECORDED_FIELDS
    assert shown == as_json(run("read", "stream", "account-1", "--format", "json"))[0]
    assert shown["correlation_id"] == str(correlation) and shown["metadata"] == {"user": "root"}
    assert as_jsonl(run("event", "show", str(stored.event_id), "--format", "jsonl")) == [shown]

    table = run("event", "show", str(stored.event_id)).stdout
    for name in RECORDED_FIELDS:
        assert name in table
    assert str(stored.event_id) in table and stored.checkpoint in table and '{"owner":"ann"}' in table

    unknown = uuid.uuid4()
    missing = run("event", "show", str(unknown), code=common.EXIT_FAILURE)
    assert one_line_error(missing) == f"pyes: no event with id {unknown}"
    bad = run("event", "show", "1234", code=common.EXIT_INVALID_INPUT)
    assert one_line_error(bad).startswith("pyes: InvalidEventId [PE106]: ID is not a uuid")


# -- trace ---------------------------------------------------------------------------------


def test_trace_draws_what_caused_what(run: Run, store: EventStore) -> None:
    correlation = uuid.uuid4()
    handler = CommandHandler(Repository(store, BankAccount))
    context = CommandContext(actor="ann", correlation_id=correlation)
    opening = OpenAccount(owner="Ann")
    handler.handle("1", opening, lambda a, c: a.open(c.owner, c.currency), context=context)
    deposit = DepositMoney(amount=Decimal("10.00"))
    handler.handle("1", deposit, lambda a, c: a.deposit(c.amount), context=context)
    opened, deposited = store.read_stream("account-1")
    # A process manager reacts to the opening, and something reacts to its event.
    welcome_id = uuid.uuid4()
    store.append("mail-1", [NewEvent("WelcomeSent", id=welcome_id, correlation_id=correlation,
                                     causation_id=opened.event_id)])
    store.append("audit-1", [NewEvent("Logged", correlation_id=correlation, causation_id=welcome_id),
                             NewEvent("Started", correlation_id=correlation)])
    store.append("audit-2", [NewEvent("Unrelated", causation_id=welcome_id)])

    roots = as_json(run("trace", str(correlation), "--format", "json"))
    assert [root.get("message_id") for root in roots] == [str(opening.command_id), str(deposit.command_id), None]
    first, second, started = roots
    assert first["event"] is None and second["event"] is None
    assert [child["event"]["event_id"] for child in first["children"]] == [str(opened.event_id)]
    (welcome,) = first["children"][0]["children"]
    assert welcome["event"]["event_id"] == str(welcome_id)
    assert [(c["event"]["type"], c["children"]) for c in welcome["children"]] == [("Logged", [])]
    assert [c["event"]["event_id"] for c in second["children"]] == [str(deposited.event_id)]
    assert (started["event"]["type"], started["children"]) == ("Started", [])
    assert list(started["event"]) == RECORDED_FIELDS

    assert as_jsonl(run("trace", str(correlation), "--format", "jsonl")) == roots

    tree = run("trace", str(correlation)).stdout
    assert f"command/message {opening.command_id} (OpenAccount ann)" in tree
    assert f"command/message {deposit.command_id} (DepositMoney ann)" in tree
    for type_ in ("AccountOpened", "AccountBalanceDeposited", "WelcomeSent", "Logged", "Started"):
        assert type_ in tree
    assert "Unrelated" not in tree
    lines = tree.splitlines()
    indent = {name: next(len(line) - len(line.lstrip("│├└─ ")) for line in lines if name in line)
              for name in ("OpenAccount", "AccountOpened", "WelcomeSent", "Logged", "Started")}
    assert indent["OpenAccount"] == indent["Started"] < indent["AccountOpened"] < indent["WelcomeSent"] \
        < indent["Logged"]

    unknown = uuid.uuid4()
    missing = run("trace", str(unknown), code=common.EXIT_FAILURE)
    assert one_line_error(missing) == f"pyes: no event with correlation id {unknown}"
    run("trace", "nope", code=common.EXIT_INVALID_INPUT)


def test_trace_pages_through_a_long_correlation(run: Run, store: EventStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    correlation = uuid.uuid4()
    previous: uuid.UUID | None = None
    for n in range(5):
        event_id = uuid.uuid4()
        store.append("chain-1", [NewEvent("Step", {"n": n}, id=event_id, correlation_id=correlation,
                                          causation_id=previous)])
        previous = event_id
    monkeypatch.setattr(events, "PAGE", 2)
    (root,) = as_json(run("trace", str(correlation), "--format", "json"))
    depth, node = 0, root
    while node["children"]:
        (node,) = node["children"]
        depth += 1
    assert depth == 4 and node["event"]["data"] == {"n": 4}


def recorded(event_id: uuid.UUID, causation_id: uuid.UUID | None, position: int) -> RecordedEvent:
    return RecordedEvent(position, event_id, "s-1", "s", position, "T", 1, {}, {}, None, causation_id,
                         datetime.now(UTC), 1, f"1/{position}")


def test_causation_cycles_still_show_every_event_once() -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    # a and b cause each other, c is caused by b, d by itself.
    forest = events.causation_tree([recorded(a, b, 1), recorded(b, a, 2), recorded(c, b, 3), recorded(d, d, 4)])

    def ids(node: events.Node) -> list[Any]:
        assert node.event is not None
        return [node.event.event_id, [ids(child) for child in node.children]]

    assert [ids(root) for root in forest] == [[a, [[b, [[c, []]]]]], [d, []]]


# -- streams -------------------------------------------------------------------------------


def test_streams_list(run: Run, filled: EventStore) -> None:
    rows = as_json(run("streams", "list", "--format", "json"))
    assert [(row["stream_id"], row["category"], row["version"]) for row in rows] == [
        ("account-1", "account", 5), ("account-2", "account", 2), ("ledger-1", "ledger", 1)]
    assert list(rows[0]) == ["stream_id", "category", "version", "created_at", "updated_at"]
    assert datetime.fromisoformat(rows[0]["created_at"]) <= datetime.fromisoformat(rows[0]["updated_at"])

    def ids(*args: str) -> list[str]:
        return [row["stream_id"] for row in as_jsonl(run("streams", "list", "--format", "jsonl", *args))]

    assert ids("--prefix", "account-") == ["account-1", "account-2"]
    assert ids("--prefix", "acc", "--limit", "1") == ["account-1"]
    assert ids("--category", "ledger") == ["ledger-1"]
    assert ids("--prefix", "%") == []
    table = run("streams", "list", "--category", "account").stdout
    assert "account-2" in table and "ledger-1" not in table and "updated_at" in table


def test_streams_show(run: Run, filled: EventStore) -> None:
    filled.set_stream_metadata("account-1", {"owner": "billing"})
    shown = as_json(run("streams", "show", "account-1", "--events", "2", "--format", "json"))
    assert {k: shown["stream"][k] for k in ("stream_id", "category", "version", "metadata")} == {
        "stream_id": "account-1", "category": "account", "version": 5, "metadata": {"owner": "billing"}}
    assert [(e["version"], e["type"]) for e in shown["events"]] == [(4, "Withdrawn"), (5, "Closed")]
    assert list(shown["events"][0]) == RECORDED_FIELDS
    assert as_jsonl(run("streams", "show", "account-1", "--events", "2", "--format", "jsonl")) == [shown]

    table = run("streams", "show", "account-1", "--events", "3").stdout
    assert '{"owner":"billing"}' in table and "last 3 events" in table and "Opened" not in table
    assert '{"n":2}' in table and '{"n":1}' not in table
    assert "Opened" in run("streams", "show", "account-1").stdout  # 5 by default

    missing = run("streams", "show", "account-404", code=common.EXIT_FAILURE)
    assert one_line_error(missing) == "pyes: no stream 'account-404' (it has no events)"


# -- stats ---------------------------------------------------------------------------------


def test_stats(run: Run, filled: EventStore) -> None:
    report = as_json(run("stats", "--days", "3", "--top", "2", "--format", "json"))
    assert list(report) == ["per_type", "per_category", "per_day", "busiest_streams"]
    assert report["per_type"] == [  # most events first, then by name
        {"type": "Deposited", "events": 2}, {"type": "Opened", "events": 2}, {"type": "Withdrawn", "events": 2},
        {"type": "Closed", "events": 1}, {"type": "Posted", "events": 1}]
    assert report["per_category"] == [{"category": "account", "streams": 2, "events": 7},
                                      {"category": "ledger", "streams": 1, "events": 1}]
    today = datetime.now(UTC).date()
    assert [row["day"] for row in report["per_day"]] == [str(today - timedelta(days=n)) for n in (2, 1, 0)]
    assert sum(row["events"] for row in report["per_day"]) == 8
    assert [(row["stream_id"], row["events"]) for row in report["busiest_streams"]] == [("account-1", 5),
                                                                                      ("account-2", 2)]

    (line,) = as_jsonl(run("stats", "--days", "3", "--top", "2", "--format", "jsonl"))
    assert line == report

    table = run("stats").stdout
    for title in ("events per type", "events per category", "events per day", "busiest streams (top 10)"):
        assert title in table
    assert str(today) in table and str(today - timedelta(days=13)) in table
    assert str(today - timedelta(days=14)) not in table


def test_stats_of_an_empty_store(run: Run) -> None:
    report = as_json(run("stats", "--days", "1", "--format", "json"))
    assert report == {"per_type": [], "per_category": [], "per_day": [{"day": str(datetime.now(UTC).date()),
                                                                      "events": 0}], "busiest_streams": []}


def test_event_data_is_printed_as_is_never_as_markup(store: EventStore, dsn: str) -> None:
    store.append("note-1", [NewEvent("Noted", {"s": "[/bold] [red]x"})])
    result = CliRunner().invoke(main, ["read", "stream", "note-1", "--dsn", dsn])
    assert result.exit_code == 0, result.output
    assert "[/bold]" in result.stdout and "[red]x" in result.stdout  # the cell may fold at the space
