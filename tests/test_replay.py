"""Replay: a handler over a past window (timestamps or checkpoints, types, categories), in
the global order, without touching any live checkpoint; from Python and `pyes replay`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import settle

from pyes import EventStore, NewEvent, RecordedEvent
from pyes.cli import main
from pyes.errors import InvalidCheckpoint, InvalidReplayWindow, InvalidSubscriptionArgument
from pyes.replay import Window, parse_bound, replay, window_size
from pyes.subscriptions import Subscriptions, SubscriptionWorker

REPLAYED: list[RecordedEvent] = []


def cli_handler(event: RecordedEvent) -> None:
    """Used by `pyes replay` in the tests below."""
    REPLAYED.append(event)


def failing_handler(event: RecordedEvent) -> None:
    if event.type == "UserFlagged":
        raise RuntimeError(f"fraud check failed for {event.stream_id}")


@pytest.fixture
def history(store: EventStore) -> list[RecordedEvent]:
    """Three bursts of events, 50 ms apart, so that moments fall between them."""
    store.append("user-1", [NewEvent("UserSignedUp"), NewEvent("UserFlagged")])
    store.append("order-1", [NewEvent("OrderPlaced")])
    time.sleep(0.05)
    store.append("user-2", [NewEvent("UserSignedUp")])
    store.append("order-2", [NewEvent("OrderPlaced")])
    time.sleep(0.05)
    store.append("user-3", [NewEvent("UserSignedUp"), NewEvent("UserFlagged")])
    settle(store)
    return store.read_all()


def ids(events: list[RecordedEvent]) -> list[Any]:
    return [e.event_id for e in events]


def run(store: EventStore, **window: Any) -> tuple[list[RecordedEvent], Any]:
    seen: list[RecordedEvent] = []
    summary = replay(store, seen.append, **window)
    return seen, summary


def test_everything_in_the_global_order(store: EventStore, history: list[RecordedEvent]) -> None:
    seen, summary = run(store)
    assert seen == history
    assert (summary.events, summary.handled, summary.failed) == (7, 7, 0)
    assert summary.first_checkpoint == history[0].checkpoint and summary.last_checkpoint == history[-1].checkpoint
    assert summary.by_type == {"UserSignedUp": 3, "UserFlagged": 2, "OrderPlaced": 2}


def test_timestamp_window_includes_its_start_and_excludes_its_end(store: EventStore, history: list[RecordedEvent]) -> None:
    second_burst = [e for e in history if e.stream_id in ("user-2", "order-2")]
    start, end = second_burst[0].recorded_at, history[-2].recorded_at  # end: user-3's first event
    seen, _ = run(store, since=start, until=end)
    assert ids(seen) == ids(second_burst)
    seen, _ = run(store, since=start)
    assert ids(seen) == ids(history[3:])
    seen, _ = run(store, until=start)
    assert ids(seen) == ids(history[:3])
    seen, _ = run(store, since=history[-1].recorded_at + timedelta(seconds=1))
    assert seen == []
    seen, summary = run(store, since=start, until=start)
    assert seen == [] and summary.events == 0


def test_checkpoint_window_excludes_its_start_and_includes_its_end(store: EventStore, history: list[RecordedEvent]) -> None:
    seen, _ = run(store, after=history[1].checkpoint, upto=history[4].checkpoint)
    assert ids(seen) == ids(history[2:5])
    seen, _ = run(store, after=history[1].checkpoint)
    assert ids(seen) == ids(history[2:])
    seen, _ = run(store, upto=history[0].checkpoint)
    assert ids(seen) == ids(history[:1])
    seen, _ = run(store, after=history[3].checkpoint, upto=history[3].checkpoint)
    assert seen == []


def test_types_and_categories(store: EventStore, history: list[RecordedEvent]) -> None:
    seen, _ = run(store, types=["UserSignedUp"])
    assert [e.stream_id for e in seen] == ["user-1", "user-2", "user-3"]
    seen, _ = run(store, categories=["order"])
    assert [e.stream_id for e in seen] == ["order-1", "order-2"]
    seen, _ = run(store, categories=["user", "order"], types=["OrderPlaced", "UserFlagged"], since=history[2].recorded_at)
    assert [(e.stream_id, e.type) for e in seen] == [("order-1", "OrderPlaced"), ("order-2", "OrderPlaced"),
                                                     ("user-3", "UserFlagged")]
    assert window_size(store, Window(categories=["user"]))[0] == 5


def test_small_pages_give_the_same_events(store: EventStore, history: list[RecordedEvent]) -> None:
    seen: list[RecordedEvent] = []
    replay(store, seen.append, page_size=2)
    assert seen == history


def test_handler_errors_are_counted_or_stop_the_replay(store: EventStore, history: list[RecordedEvent]) -> None:
    summary = replay(store, failing_handler)
    assert (summary.handled, summary.failed) == (5, 2)
    assert [e.stream_id for e, _ in summary.errors] == ["user-1", "user-3"]
    assert "fraud check failed for user-1" in summary.errors[0][1]
    stopped = replay(store, failing_handler, stop_on_error=True)
    assert stopped.stopped_early and (stopped.handled, stopped.failed) == (1, 1)


def test_replay_touches_no_live_checkpoint(store: EventStore, history: list[RecordedEvent], connect: Any) -> None:
    seen: list[RecordedEvent] = []
    SubscriptionWorker(store, "signups", seen.append, types=["UserSignedUp"], poll_interval=0.05).run(
        until_idle=True, handle_signals=False)
    conn = connect(autocommit=True)

    def state() -> list[tuple[Any, ...]]:
        return conn.execute("SELECT * FROM pyes.subscription_partitions ORDER BY subscription, partition").fetchall()

    before = state()
    replay(store, lambda e: None)
    assert state() == before
    assert conn.execute("SELECT count(*) FROM pyes.subscription_members").fetchone() == (0,)
    assert Subscriptions(store).get("signups").handled == 3


def test_a_late_commit_is_outside_the_window_until_it_commits(store: EventStore, history: list[RecordedEvent],
                                                             connect: Any) -> None:
    slow = connect()
    store.append("user-9", [NewEvent("UserSignedUp")], conn=slow)
    store.append("user-10", [NewEvent("UserSignedUp")])
    seen, _ = run(store)
    assert ids(seen) == ids(history)  # user-10 waits behind the open transaction, as for read_all
    slow.commit()
    settle(store)
    seen, _ = run(store, after=history[-1].checkpoint)
    assert [e.stream_id for e in seen] == ["user-9", "user-10"]


def test_bad_windows_are_refused(store: EventStore, history: list[RecordedEvent]) -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidReplayWindow) as caught:
        replay(store, print, since=now, until=now - timedelta(days=1))
    assert caught.value.sqlstate == "PE406" and caught.value.detail
    with pytest.raises(InvalidReplayWindow):
        replay(store, print, after=history[4].checkpoint, upto=history[1].checkpoint)
    with pytest.raises(InvalidCheckpoint):
        replay(store, print, after="yesterday")
    with pytest.raises(InvalidSubscriptionArgument):
        replay(store, print, categories=[])
    with pytest.raises(InvalidSubscriptionArgument):
        replay(store, print, types=[""])


def test_read_window_from_sql(history: list[RecordedEvent], connect: Any) -> None:
    conn = connect(autocommit=True)
    row = conn.execute("SELECT events, after, upto FROM pyes.window_bounds(NULL, NULL, NULL, NULL, ARRAY['user'], NULL)").fetchone()
    assert row is not None and row[0] == 5 and row[2] == history[-1].checkpoint
    got = conn.execute("SELECT stream_id FROM pyes.read_window(%s, %s, NULL, NULL, ARRAY['user'], NULL, 2)",
                       (row[1], row[2])).fetchall()
    assert got == [("user-1",), ("user-1",)]
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT * FROM pyes.read_window(NULL, NULL, now(), now() - interval '1 day')")
    assert caught.value.sqlstate == "PE406"


def test_parse_bound() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_bound("771/42") == "771/42"
    assert parse_bound("2026-10-01") == datetime(2026, 10, 1, tzinfo=UTC)
    assert parse_bound("2026-10-01T12:00:00+02:00") == datetime(2026, 10, 1, 10, tzinfo=UTC)
    assert parse_bound("-30d", now=now) == now - timedelta(days=30)
    assert parse_bound("now-12h", now=now) == now - timedelta(hours=12)
    assert parse_bound("now", now=now) == now
    for bad in ("yesterday", "12", "-3y", "771/"):
        with pytest.raises(ValueError):
            parse_bound(bad)


def test_pyes_replay_command(store: EventStore, history: list[RecordedEvent], dsn: str) -> None:
    runner = CliRunner()
    REPLAYED.clear()
    result = runner.invoke(main, ["replay", "test_replay:cli_handler", "--dsn", dsn, "--type", "UserSignedUp",
                                  "--from", history[0].checkpoint, "--to", "now"])
    assert result.exit_code == 0, result.output
    assert [e.stream_id for e in REPLAYED] == ["user-2", "user-3"]  # user-1's sign-up is the excluded start
    assert "replay summary" in result.output and "events in window" in result.output
    assert "type UserSignedUp" in result.output

    REPLAYED.clear()
    start = history[3].recorded_at.isoformat()
    result = runner.invoke(main, ["replay", "test_replay:cli_handler", "--dsn", dsn, "--from", start,
                                  "--category", "order"])
    assert result.exit_code == 0, result.output
    assert [e.stream_id for e in REPLAYED] == ["order-2"]

    failed = runner.invoke(main, ["replay", "test_replay:failing_handler", "--dsn", dsn])
    assert failed.exit_code == 1
    assert "fraud check failed for user-3" in failed.output

    backwards = runner.invoke(main, ["replay", "test_replay:cli_handler", "--dsn", dsn, "--from", "now", "--to", "-1d"])
    assert backwards.exit_code == 5 and "PE406" in backwards.output
    bad_bound = runner.invoke(main, ["replay", "test_replay:cli_handler", "--dsn", dsn, "--from", "last tuesday"])
    assert bad_bound.exit_code == 2 and "checkpoint token" in bad_bound.output
    bad_handler = runner.invoke(main, ["replay", "no_such_module:fn", "--dsn", dsn])
    assert bad_handler.exit_code == 2 and "no_such_module" in bad_handler.output
