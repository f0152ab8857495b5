"""Subscriptions: commit-to-handler latency, subscriber throughput against a plain paged
SELECT, and what the NOTIFY at commit costs appends, in one run on one server.

    python bench/subscriptions.py          # or: make bench
    PYES_DATABASE_URL=postgresql://... python bench/subscriptions.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it, and drops it at the end.

1. Latency. A SubscriptionWorker runs in a thread (LISTEN on, poll every 5 s, so every
   wake-up is a notification). The main thread appends one event at a time (autocommit: one
   statement, one transaction), pausing 20 ms between appends so the system is idle. For each
   event: from the moment the append call returned (the commit is acknowledged) to the
   moment the handler starts. Median and 99th percentile. For comparison, the same with
   LISTEN off and a 100 ms poll.
2. Throughput. A no-op handler on a fresh subscription (from the beginning, one partition,
   pages of 100 and of 1,000) over EVENTS events, against the plain reference: a keyset-paged
   SELECT of the same columns from pyes.events in (transaction_id, position) order, 1,000 a
   page, rows fetched into Python tuples. Rounds interleave.
3. Notify cost. Single-event appends (EventStore.append, prepared, autocommit) with
   pyes.notify 'on' (as while a worker listens) and 'off' (ALTER DATABASE ... SET, in this
   benchmark's database only), one writer and WRITERS concurrent writers (threads with a
   connection each, each on its own streams). Rounds interleave. NOTIFY takes a cluster-wide
   lock on the notification queue at commit, which is what concurrent writers would show.

Writes every figure to bench/results/subscriptions.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes import EventStore, NewEvent, RecordedEvent
from pyes.migrate import upgrade
from pyes.subscriptions import SubscriptionWorker

PLAIN_PAGE = (
    "SELECT position, event_id, stream_id, category, version, type, schema_version, data, metadata, "
    "correlation_id, causation_id, recorded_at, transaction_id FROM pyes.events "
    "WHERE (transaction_id, position) > (%s::text::xid8, %s) ORDER BY transaction_id, position LIMIT 1000"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def wait_settled(store: EventStore) -> None:
    with store.pool.connection() as conn:
        while True:
            row = conn.execute(
                "SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), true) FROM pyes.events"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)


# -- 1. latency ------------------------------------------------------------------------------


def latency(dsn: str, samples: int, *, listen: bool, poll: float, name: str) -> dict[str, Any]:
    arrived: dict[str, float] = {}
    done = threading.Event()

    def handler(event: RecordedEvent) -> None:
        arrived[event.stream_id] = perf_counter()
        if len(arrived) >= samples:
            done.set()

    with EventStore(dsn, max_size=2) as store:
        worker = SubscriptionWorker(store, name, handler, start="now", listen=listen, poll_interval=poll)
        thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
        thread.start()
        while worker.owned_partitions() != [0]:
            time.sleep(0.01)
        time.sleep(0.2)
        committed: dict[str, float] = {}
        sent: dict[str, float] = {}
        for n in range(samples):
            stream = f"latency{name}-{n}"
            sent[stream] = perf_counter()
            store.append(stream, [NewEvent("Pinged", {"n": n})])
            committed[stream] = perf_counter()
            time.sleep(0.02)
        done.wait(60)
        worker.stop()
        thread.join(30)
    after_commit = [(arrived[s] - committed[s]) * 1000 for s in committed if s in arrived]
    after_send = [(arrived[s] - sent[s]) * 1000 for s in sent if s in arrived]
    return {
        "listen": listen,
        "poll_interval_s": poll,
        "samples": len(after_commit),
        "missing": samples - len(after_commit),
        "commit_acked_to_handler_ms": {
            "median": statistics.median(after_commit),
            "p99": percentile(after_commit, 0.99),
            "max": max(after_commit),
            "min": min(after_commit),
        },
        "append_sent_to_handler_ms": {"median": statistics.median(after_send), "p99": percentile(after_send, 0.99)},
        "notifications": worker.stats.notifications,
        "polls": worker.stats.polls,
    }


# -- 2. throughput ---------------------------------------------------------------------------


def preload(store: EventStore, events: int, rng: random.Random) -> None:
    streams = C.stream_ids(rng, 1000)
    written = 0
    n = 0
    while written < events:
        batch = min(100, events - written)
        store.append(streams[n % len(streams)], [NewEvent(*C.payload(rng)) for _ in range(batch)])
        written += batch
        n += 1
    wait_settled(store)


def subscriber_rate(store: EventStore, name: str, batch: int, expected: int) -> float:
    count = 0

    def noop(event: RecordedEvent) -> None:
        nonlocal count
        count += 1

    worker = SubscriptionWorker(store, name, noop, batch_size=batch, poll_interval=0.01, listen=False)
    started = perf_counter()
    worker.run(until_idle=True, handle_signals=False)
    elapsed = perf_counter() - started
    assert count == expected, (count, expected)
    return count / elapsed


def plain_rate(dsn: str, expected: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = perf_counter()
        xid, pos, count = "0", 0, 0
        while True:
            rows = conn.execute(PLAIN_PAGE, (xid, pos), prepare=True).fetchall()
            if not rows:
                break
            count += len(rows)
            xid, pos = str(rows[-1][12]), rows[-1][0]
        elapsed = perf_counter() - started
    assert count == expected, (count, expected)
    return count / elapsed


# -- 3. notify cost --------------------------------------------------------------------------


def append_rate(dsn: str, writers: int, seconds: float, tag: str, rng: random.Random) -> float:
    payloads = [C.payload(rng) for _ in range(200)]
    counts = [0] * writers
    stop = threading.Event()
    barrier = threading.Barrier(writers + 1)

    def writer(index: int) -> None:
        with EventStore(dsn, min_size=1, max_size=1) as store:
            store.pool.wait()
            streams = [f"notify{tag}w{index}-{k}" for k in range(20)]
            barrier.wait()
            k = 0
            while not stop.is_set():
                t, d, m = payloads[k % len(payloads)]
                store.append(streams[k % len(streams)], [NewEvent(t, d, m)])
                k += 1
            counts[index] = k

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (perf_counter() - started)


def set_notify(dsn: str, value: str) -> None:
    """pyes.notify for the connections opened from now on, in this benchmark's database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET pyes.notify = '{value}'")


def comparisons(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios in the shape bench/report.py reads (an object with "ratio")."""
    th, nc = result["throughput"], result["notify_cost"]
    plain = th["events_per_s"]["plain_select"]["median"]
    out = [
        {"label": f"no-op subscriber, pages of {k.rsplit('_', 1)[1]} / plain paged SELECT", "ratio": ratio,
         "pyes_median_events_per_s": th["events_per_s"][k]["median"], "reference_median_events_per_s": plain,
         "target": None, "result": "report"}
        for k, ratio in th["ratio_to_plain"].items()
    ]
    out += [
        {"label": f"appends with NOTIFY / without, {w} writer(s)", "ratio": ratio,
         "pyes_median_events_per_s": nc["appends_per_s"][f"notify_on_{w}"]["median"],
         "reference_median_events_per_s": nc["appends_per_s"][f"notify_off_{w}"]["median"],
         "target": None, "result": "report"}
        for w, ratio in nc["ratio_on_to_off"].items()
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="latency samples (default 300)")
    parser.add_argument("--events", type=int, default=50_000, help="events for the throughput run (default 50,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per append measurement (default 3)")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers for the notify cost (default 4)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "subscriptions.json")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args(argv)
    started = perf_counter()
    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "benchmark": "subscriptions",
        "timestamp": C.now_iso(),
        "machine": C.machine_info(),
        "repo": C.repo_info(),
        "config": vars(args) | {"output": str(args.output)},
        "statements": {"plain_page": PLAIN_PAGE},
    }
    result["machine"]["load_average_at_start"] = C.load_average()

    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_subs") as dsn:
        upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            result["server"] = C.server_info(conn) | {"source": source}

        print("latency (LISTEN/NOTIFY) ...", flush=True)
        result["latency_notify"] = latency(dsn, args.samples, listen=True, poll=5.0, name="n")
        print("latency (polling every 100 ms) ...", flush=True)
        result["latency_poll"] = latency(dsn, max(20, args.samples // 5), listen=False, poll=0.1, name="p")

        print(f"throughput over {args.events:,} events ...", flush=True)
        with EventStore(dsn, max_size=4) as store:
            preload(store, args.events, rng)
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pyes.events").fetchone()
            total = int(row[0]) if row else 0
            rates: dict[str, list[float]] = {"subscriber_batch_100": [], "subscriber_batch_1000": [], "plain_select": []}
            for r in range(args.rounds):
                order = list(rates)
                rng.shuffle(order)
                for key in order:
                    if key == "plain_select":
                        rates[key].append(plain_rate(dsn, total))
                    else:
                        batch = int(key.rsplit("_", 1)[1])
                        rates[key].append(subscriber_rate(store, f"noop-{batch}-{r}", batch, total))
            plain = statistics.median(rates["plain_select"])
            result["throughput"] = {
                "events": total,
                "events_per_s": {k: {"median": statistics.median(v), "rounds": v} for k, v in rates.items()},
                "ratio_to_plain": {k: statistics.median(v) / plain for k, v in rates.items() if k != "plain_select"},
            }

        print("notify cost on appends ...", flush=True)
        cost: dict[str, list[float]] = {f"{state}_{w}": [] for state in ("notify_on", "notify_off") for w in (1, args.writers)}
        for r in range(args.rounds):
            order = list(cost)
            rng.shuffle(order)
            for key in order:
                state, writers = key.rsplit("_", 1)
                set_notify(dsn, "on" if state == "notify_on" else "off")
                cost[key].append(append_rate(dsn, int(writers), args.seconds, f"{key}r{r}", rng))
        set_notify(dsn, "auto")
        result["notify_cost"] = {
            "appends_per_s": {k: {"median": statistics.median(v), "rounds": v} for k, v in cost.items()},
            "ratio_on_to_off": {
                str(w): statistics.median(cost[f"notify_on_{w}"]) / statistics.median(cost[f"notify_off_{w}"])
                for w in (1, args.writers)
            },
        }

    result["comparisons"] = comparisons(result)
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    C.write_json(args.output, result)

    ln, lp = result["latency_notify"], result["latency_poll"]
    rows = [
        ["latency, NOTIFY", f"{ln['commit_acked_to_handler_ms']['median']:.2f} ms",
         f"{ln['commit_acked_to_handler_ms']['p99']:.2f} ms", f"{ln['samples']} samples, {ln['notifications']} wake-ups by NOTIFY"],
        ["latency, poll 100 ms", f"{lp['commit_acked_to_handler_ms']['median']:.2f} ms",
         f"{lp['commit_acked_to_handler_ms']['p99']:.2f} ms", f"{lp['samples']} samples"],
    ]
    print()
    print(C.table(["case", "median", "p99", "note"], rows, [False, True, True, False]))
    th = result["throughput"]
    rows = [[k, f"{v['median']:,.0f}", f"{th['ratio_to_plain'].get(k, 1.0):.2f}"] for k, v in th["events_per_s"].items()]
    print()
    print(C.table(["reader", "events/s", "ratio to plain"], rows, [False, True, True]))
    nc = result["notify_cost"]
    rows = [[k, f"{v['median']:,.0f}"] for k, v in nc["appends_per_s"].items()]
    rows += [[f"ratio on/off, {w} writer(s)", f"{ratio:.3f}"] for w, ratio in nc["ratio_on_to_off"].items()]
    print()
    print(C.table(["appends", "per second"], rows, [False, True]))
    print(f"\nwritten to {args.output} in {result['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
