"""Consumer groups: partitions dealt among members through leases in the database; members
joining, leaving and dying; three real worker processes, one of them killed, while events
keep coming."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import settle

from pyes import EventStore, NewEvent, RecordedEvent
from pyes.subscriptions import Subscriptions

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def join(conn: psycopg.Connection[Any], member: str, lease: float = 30.0) -> dict[int, tuple[bool, bool]]:
    rows = conn.execute("SELECT partition, keep, held FROM pyes.join_subscription('g', %s, %s)", (member, lease)).fetchall()
    return {p: (keep, held) for p, keep, held in rows}


def held(assignment: dict[int, tuple[bool, bool]]) -> set[int]:
    return {p for p, (_keep, is_held) in assignment.items() if is_held}


def test_partitions_are_dealt_and_handed_over_never_held_twice(store: EventStore, connect: Any) -> None:
    Subscriptions(store).create("g", partitions=6)
    conn = connect(autocommit=True)
    assert held(join(conn, "a")) == set(range(6))
    # b joins: half of a's partitions are dealt to b, but a still holds them until it hands
    # them back, so b gets none yet.
    b = join(conn, "b")
    assert held(b) == set() and set(b) == {1, 3, 5} and not any(h for _k, h in b.values())
    a = join(conn, "a")
    assert held(a) == set(range(6)) and {p for p, (keep, _h) in a.items() if not keep} == {1, 3, 5}
    # a saves its checkpoints and hands them back; b claims them at its next call.
    conn.execute("SELECT pyes.release_partitions('g', 'a', ARRAY[1, 3, 5])")
    assert held(join(conn, "b")) == {1, 3, 5}
    assert held(join(conn, "a")) == {0, 2, 4}
    # c joins and then leaves again: nothing changes hands until the holders let go.
    c = join(conn, "c")
    assert held(c) == set()
    conn.execute("SELECT pyes.leave_subscription('g', 'c')")
    assert held(join(conn, "a")) == {0, 2, 4} and held(join(conn, "b")) == {1, 3, 5}
    owners = conn.execute("SELECT partition, owner FROM pyes.subscription_partitions ORDER BY partition").fetchall()
    assert owners == [(0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "a"), (5, "b")]


def test_a_dead_members_partitions_go_to_the_others_once_its_lease_ran_out(store: EventStore, connect: Any) -> None:
    Subscriptions(store).create("g", partitions=4)
    conn = connect(autocommit=True)
    join(conn, "a", lease=0.5)
    join(conn, "b", lease=30)
    assert held(join(conn, "a", lease=0.5)) == {0, 1, 2, 3}  # b waits for a to hand over
    conn.execute("SELECT pyes.release_partitions('g', 'a', ARRAY[1, 3])")
    assert held(join(conn, "b", lease=30)) == {1, 3}
    # a dies (stops renewing). While its lease runs, b cannot take its partitions...
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT pyes.save_checkpoint('g', 'b', 0, '1/1')")
    assert caught.value.sqlstate == "PE404"
    time.sleep(0.7)
    # ...then b is alone: everything is dealt to it and it claims the expired leases.
    assert held(join(conn, "b", lease=30)) == {0, 1, 2, 3}
    assert conn.execute("SELECT member_id FROM pyes.subscription_members").fetchall() == [("b",)]
    # The dead member can no longer move a checkpoint.
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT pyes.save_checkpoint('g', 'a', 0, '1/1')")
    assert caught.value.sqlstate == "PE404"


def test_stream_partitions_are_stable_and_spread(connect: Any) -> None:
    conn = connect(autocommit=True)
    rows = conn.execute(
        "SELECT pyes.stream_partition('account-' || n, 8) FROM generate_series(1, 800) n"
    ).fetchall()
    counts = defaultdict(int)
    for (p,) in rows:
        counts[p] += 1
    assert set(counts) == set(range(8)) and min(counts.values()) > 60
    # md5-based: the same on every server and version (a stream never changes partition).
    assert conn.execute("SELECT pyes.stream_partition('account-1', 4)").fetchone() == (0,)
    assert conn.execute("SELECT pyes.stream_partition('account-2', 4)").fetchone() == (3,)


def group_handler(event: RecordedEvent) -> None:
    """Run by the worker processes: record who handled what, when it started and ended."""
    member = os.environ["PYES_TEST_MEMBER"]
    with psycopg.connect(os.environ["PYES_DATABASE_URL"], autocommit=True) as c:
        row = c.execute(
            "INSERT INTO deliveries (event_id, stream_id, version, member) VALUES (%s, %s, %s, %s) RETURNING n",
            (event.event_id, event.stream_id, event.version, member),
        ).fetchone()
        assert row is not None
        time.sleep(0.01)
        c.execute("UPDATE deliveries SET finished_at = clock_timestamp() WHERE n = %s", (row[0],))


def _start_worker(dsn: str, member: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYES_DATABASE_URL": dsn, "PYTHONPATH": str(TESTS), "PYES_TEST_MEMBER": member}
    return subprocess.Popen(
        [sys.executable, "-c", "from pyes.cli import main; main()", "subscriptions", "run", "group",
         "test_subscriptions_group:group_handler", "--partitions", "12", "--member", member, "--lease", "2",
         "--poll-interval", "0.2", "--batch-size", "10", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_three_workers_one_killed_nothing_lost_each_stream_in_order_by_one_member_at_a_time(
    store: EventStore, dsn: str, connect: Any
) -> None:
    conn = connect(autocommit=True)
    conn.execute("""CREATE TABLE deliveries (n bigserial PRIMARY KEY, event_id uuid NOT NULL, stream_id text NOT NULL,
                    version bigint NOT NULL, member text NOT NULL, started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                    finished_at timestamptz)""")
    streams = [f"account-{n}" for n in range(24)]
    for round_ in range(4):
        for stream in streams:
            store.append(stream, [NewEvent("Deposited", {"round": round_})])
    workers = {m: _start_worker(dsn, m) for m in ("w1", "w2", "w3")}
    killed_at = None
    try:
        def delivered_count() -> int:
            row = conn.execute("SELECT count(DISTINCT event_id) FROM deliveries").fetchone()
            return int(row[0]) if row else 0

        deadline = time.monotonic() + 60
        # Wait until all three hold partitions and have handled something, then kill one.
        while conn.execute("SELECT count(DISTINCT member) FROM deliveries").fetchone() != (3,):
            assert time.monotonic() < deadline, "the three workers did not all get partitions"
            time.sleep(0.05)
        victim_partitions = conn.execute(
            "SELECT count(*) FROM pyes.subscription_partitions WHERE owner = 'w2'").fetchone()
        assert victim_partitions is not None and victim_partitions[0] >= 1
        workers["w2"].send_signal(signal.SIGKILL)
        workers["w2"].wait(10)
        killed_at = conn.execute("SELECT clock_timestamp()").fetchone()
        # Events keep coming while the group rebalances.
        for round_ in range(4, 7):
            for stream in streams:
                store.append(stream, [NewEvent("Deposited", {"round": round_})])
        settle(store)
        total = len(streams) * 7
        while delivered_count() < total:
            assert time.monotonic() < deadline + 60, f"only {delivered_count()} of {total} events were handled"
            time.sleep(0.1)
        # The two survivors end up holding every partition between them (a hand-over in
        # flight leaves a partition without a holder for a moment).
        while True:
            owners = {row[0] for row in conn.execute("SELECT owner FROM pyes.subscription_partitions").fetchall()}
            if owners == {"w1", "w3"}:
                break
            assert time.monotonic() < deadline + 90, f"partitions held by {owners}"
            time.sleep(0.1)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert workers["w1"].returncode == 0 and workers["w3"].returncode == 0
    assert killed_at is not None

    rows = conn.execute(
        "SELECT stream_id, version, member, started_at, finished_at FROM deliveries ORDER BY n").fetchall()
    by_stream: dict[str, list[tuple[int, str, Any, Any]]] = defaultdict(list)
    for stream_id, version, member, started, finished in rows:
        by_stream[stream_id].append((version, member, started, finished))
    assert set(by_stream) == set(streams)
    for stream_id, deliveries in by_stream.items():
        # Nothing lost; in order: a delivery never jumps ahead of the next undelivered
        # version (a redelivery after the kill may go back, at least once).
        highest = 0
        for version, _member, _s, _f in deliveries:
            assert version <= highest + 1, f"{stream_id}: version {version} after {highest}"
            highest = max(highest, version)
        assert highest == 7
        # One member at a time: deliveries of the stream never overlap in time, except that
        # the killed member's last one never finished.
        ordered = sorted(deliveries, key=lambda d: d[2])
        for before, after in itertools.pairwise(ordered):
            end = before[3] if before[3] is not None else killed_at[0]
            assert end <= after[2], f"{stream_id}: {before} overlaps {after}"
    # Only the killed member's unsaved events were delivered twice.
    twice = conn.execute(
        "SELECT count(*) FROM (SELECT event_id FROM deliveries GROUP BY event_id HAVING count(*) > 1) d").fetchone()
    assert twice is not None
    members_of_duplicates = conn.execute(
        """SELECT DISTINCT member FROM deliveries WHERE event_id IN
           (SELECT event_id FROM deliveries GROUP BY event_id HAVING count(*) > 1)""").fetchall()
    assert twice[0] == 0 or ("w2",) in members_of_duplicates
