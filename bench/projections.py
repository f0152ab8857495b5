"""Projections: inline overhead on appends, catch-up and rebuild against one INSERT ... SELECT.

    python bench/projections.py                          # or: make bench (1,000,000-event rebuild)
    python bench/projections.py --rebuild-events 300000  # a quicker run
    PYES_DATABASE_URL=postgresql://... python bench/projections.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it (pyes.migrate.upgrade), and drops it at the end.
Size: --rebuild-events (or PYES_BENCH_REBUILD_EVENTS), --catchup-events (or
PYES_BENCH_CATCHUP_EVENTS).

The projection is a balance table keyed by account, kept by one plpgsql handler (an upsert:
INSERT ... ON CONFLICT (stream_id) DO UPDATE) over Deposited / Withdrawn events of 1,000
accounts. Every event of the log is of those two types, so every event reaches the handler.

1. Inline overhead. Single-event appends (EventStore.append through a pool of one
   connection, autocommit: one prepared SELECT pyes.append(...), as in bench/append.py's
   1-event case) round-robin over the 1,000 accounts, without an inline projection (it is
   paused: the statement trigger still runs and finds none) and with the balance projection
   running inline. Rounds interleave the two (A B, B A, ...) in the same database; between
   rounds the projection is paused, or resumed and caught up, outside the timed region.
   Target (issue 4): an append with the projection costs at most 1.30 times one without,
   i.e. throughput with / without >= 0.77.
2. Catch-up. The log is filled to --catchup-events with pyes.append (1,000 accounts x 10
   events per call, 10,000 events per transaction). An asynchronous copy of the projection is
   reset and then run to caught_up with pyes.run_projection(name, NULL, batch), one
   transaction per call, for batch 1,000 and 10,000; the reference is one
   INSERT INTO balances_ref SELECT ... FROM pyes.events GROUP BY stream_id computing the same
   table. Both results are compared row by row (the run fails if they differ). Target:
   >= 50,000 events/s. A projection with an empty handler, run the same way, shows what pyes's
   own machinery costs (batch read, dynamic call, one function call per event) apart from
   the upsert. The same table kept by a batch handler (it takes pyes.events[]: one call per
   batch of 10,000, one set-based upsert for all its accounts) is run the same way, and
   checked the same way.
3. Rebuild. The log is filled to --rebuild-events; a rebuild is pyes.reset_projection (TRUNCATE,
   checkpoint back to the start) then run_projection batches (the batch size that was faster in
   2) until caught_up, against TRUNCATE + the same INSERT ... SELECT in one transaction, and
   the batch handler's rebuild the same way. Target: under 30 s for 1,000,000 events.

Figures are medians of rounds; ratios are pyes over the reference (time or events/s, both
stated). Other processes share this machine: the load average is recorded at the start
and at the end, and figures taken under load are noisy. Writes bench/results/projections.json.
Exits non-zero if anything fails (including a result that differs from the reference); a
missed target is printed as MISSED but is not a failure.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes import EventStore, NewEvent
from pyes.migrate import upgrade

N_ACCOUNTS = 1000
LOAD_PER_STREAM = 10  # events per pyes.append call when filling the log
TYPES = ("Deposited", "Withdrawn")
INLINE = "balances_inline"
ASYNC = "balances_async"
NOOP = "noop_async"
BATCH = "balances_batch"
BATCHES = (1000, 10000)
TARGET_INLINE_COST = 1.30
TARGET_CATCHUP_RATE = 50_000.0
TARGET_REBUILD_SECONDS = 30.0
TARGET_REBUILD_EVENTS = 1_000_000

SETUP_SQL = """
CREATE SCHEMA bench_proj;

-- The projection's table, one per projection (inline, async), and the reference's.
CREATE TABLE bench_proj.balances_inline (
    stream_id  text PRIMARY KEY,
    balance    numeric(20, 2) NOT NULL,
    events     bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE bench_proj.balances_async (LIKE bench_proj.balances_inline INCLUDING ALL);
CREATE TABLE bench_proj.balances_batch (LIKE bench_proj.balances_inline INCLUDING ALL);
CREATE TABLE bench_proj.balances_ref (LIKE bench_proj.balances_inline INCLUDING ALL);
CREATE TABLE bench_proj.noop (stream_id text PRIMARY KEY);

-- Two handlers with the same body, each writing its own table (pyes runs a handler with
-- search_path = the projection's schema, so the table is named without one).
CREATE FUNCTION bench_proj.apply_balance_inline(e pyes.events) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances_inline AS b (stream_id, balance, events, updated_at)
    VALUES (e.stream_id,
            CASE e.type WHEN 'Deposited' THEN 1 ELSE -1 END * (e.data ->> 'amount')::numeric,
            1, e.recorded_at)
    ON CONFLICT (stream_id) DO UPDATE
       SET balance = b.balance + excluded.balance, events = b.events + 1, updated_at = excluded.updated_at;
END;
$$;

CREATE FUNCTION bench_proj.apply_balance_async(e pyes.events) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances_async AS b (stream_id, balance, events, updated_at)
    VALUES (e.stream_id,
            CASE e.type WHEN 'Deposited' THEN 1 ELSE -1 END * (e.data ->> 'amount')::numeric,
            1, e.recorded_at)
    ON CONFLICT (stream_id) DO UPDATE
       SET balance = b.balance + excluded.balance, events = b.events + 1, updated_at = excluded.updated_at;
END;
$$;

-- The same table kept by a batch handler (it takes pyes.events[]: one call per batch), written
-- set-based: one upsert per batch for all its accounts. A later batch holds later events of a
-- stream, so its last recorded_at is the stream's newest.
CREATE FUNCTION bench_proj.apply_balances_batch(events pyes.events[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances_batch AS b (stream_id, balance, events, updated_at)
    SELECT e.stream_id, sum(CASE e.type WHEN 'Deposited' THEN 1 ELSE -1 END * (e.data ->> 'amount')::numeric),
           count(*), max(e.recorded_at)
      FROM unnest(events) AS e
     GROUP BY e.stream_id
    ON CONFLICT (stream_id) DO UPDATE
       SET balance = b.balance + excluded.balance, events = b.events + excluded.events, updated_at = excluded.updated_at;
END;
$$;

-- pyes's machinery without the upsert: batch read, dynamic call, one call per event.
CREATE FUNCTION bench_proj.apply_noop(e pyes.events) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
END;
$$;
"""

# The one statement computing the same table as the handler. recorded_at never goes down
# within a stream (pyes.append reads it with the stream's row locked), so the last event's
# time is the stream's max(recorded_at).
REFERENCE_SQL = """
INSERT INTO bench_proj.balances_ref (stream_id, balance, events, updated_at)
SELECT e.stream_id,
       sum(CASE e.type WHEN 'Deposited' THEN 1 ELSE -1 END * (e.data ->> 'amount')::numeric),
       count(*), max(e.recorded_at)
  FROM pyes.events e
 WHERE e.type IN ('Deposited', 'Withdrawn')
 GROUP BY e.stream_id
"""

# Events filled in by the server: the same shape as bench/_common.payload (about 135 bytes of
# data, 75 of metadata), amounts in cents so that sums are exact.
EVENT_SQL = """jsonb_build_object(
    'id', gen_random_uuid(),
    'type', CASE WHEN random() < 0.6 THEN 'Deposited' ELSE 'Withdrawn' END,
    'data', jsonb_build_object(
        'amount', (random() * 1000000)::int / 100.0,
        'currency', (ARRAY['EUR', 'USD', 'GBP'])[1 + (random() * 2)::int],
        'reference', 'INV-2025-' || lpad((random() * 999999)::int::text, 6, '0'),
        'channel', (ARRAY['card', 'sepa', 'wire'])[1 + (random() * 2)::int],
        'booked_on', '2025-' || lpad((1 + (random() * 11)::int)::text, 2, '0') || '-14',
        'note', 'card payment'),
    'metadata', jsonb_build_object(
        'user_id', 'u-' || (random() * 99999)::int, 'source', 'api',
        'request_id', left(md5(random()::text), 16)))"""

# One transaction: LOAD_PER_STREAM events to each of the given streams, one pyes.append per
# stream (the WHERE makes the subquery run once per stream).
LOAD_SQL = f"""
SELECT count(*) FROM (
    SELECT pyes.append(s.id, (SELECT jsonb_agg({EVENT_SQL}) FROM generate_series(1, %s) WHERE s.id IS NOT NULL))
      FROM unnest(%s::text[]) AS s(id)) x
"""

COMPARE_SQL = """
SELECT count(*) FROM bench_proj.{table} p FULL JOIN bench_proj.balances_ref r USING (stream_id)
 WHERE p.stream_id IS NULL OR r.stream_id IS NULL
    OR (p.balance, p.events, p.updated_at) IS DISTINCT FROM (r.balance, r.events, r.updated_at)
"""


def accounts() -> list[str]:
    return [f"account-{i:04d}" for i in range(N_ACCOUNTS)]


def event_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pyes.events").fetchone()
    assert row is not None
    return int(row[0])


def fill_to(conn: psycopg.Connection[Any], total: int) -> dict[str, Any]:
    """Append until the log holds at least ``total`` events (autocommit connection)."""
    have = event_count(conn)
    streams = accounts()
    per_tx = N_ACCOUNTS * LOAD_PER_STREAM
    t0 = perf_counter()
    added = 0
    analyzed = False
    while have + added < total:
        left = total - have - added
        n = min(N_ACCOUNTS, math.ceil(left / LOAD_PER_STREAM))
        conn.execute(LOAD_SQL, (LOAD_PER_STREAM, streams[:n]))
        added += n * LOAD_PER_STREAM
        if not analyzed:
            # pyes.append's cached plans were made when the table was small: without fresh
            # statistics their duplicate-id check reads pyes.events sequentially, and a bulk
            # load slows down as the log grows.
            conn.execute("ANALYZE pyes.events, pyes.streams")
            analyzed = True
        if added % (20 * per_tx) < per_tx:
            print(f"    {have + added:,} events", flush=True)
    seconds = perf_counter() - t0
    conn.execute("VACUUM (ANALYZE) pyes.events, pyes.streams")
    return {"added": added, "seconds": seconds, "events_per_s": added / seconds if seconds else None,
            "total": event_count(conn)}


def timed(fn: Callable[[], Any], backend: int | None) -> tuple[float, float | None, Any]:
    """(wall seconds, server backend CPU seconds or None, fn's result)."""
    gc.collect()
    s0 = C.backend_cpu(backend)
    t0 = perf_counter()
    out = fn()
    t1 = perf_counter()
    s1 = C.backend_cpu(backend)
    return t1 - t0, (s1 - s0 if s0 is not None and s1 is not None else None), out


def run_to_caught_up(conn: psycopg.Connection[Any], name: str, batch: int, limit_s: float = 600.0) -> dict[str, int]:
    """Call pyes.run_projection until caught_up; raise if it fails or never gets there."""
    calls = processed = 0
    deadline = perf_counter() + limit_s
    while True:
        row = conn.execute(
            "SELECT processed, caught_up, state FROM pyes.run_projection(%s, NULL, %s)", (name, batch),
            prepare=True,
        ).fetchone()
        assert row is not None
        calls += 1
        processed += row[0]
        if row[2] == "failed":
            err = conn.execute(
                "SELECT last_error_sqlstate, last_error FROM pyes.projections WHERE name = %s", (name,)
            ).fetchone()
            raise RuntimeError(f"projection {name} failed: {err}")
        if row[1]:
            return {"calls": calls, "processed": processed}
        if perf_counter() > deadline:
            raise RuntimeError(f"projection {name} did not catch up within {limit_s} s ({processed} events)")


def reset(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute("SELECT 1 FROM pyes.reset_projection(%s, NULL)", (name,))


def compare(conn: psycopg.Connection[Any], table: str) -> None:
    """The projection's table equals the reference's, or raise."""
    row = conn.execute(COMPARE_SQL.format(table=table)).fetchone()
    rows = conn.execute(f"SELECT count(*), coalesce(sum(events), 0) FROM bench_proj.{table}").fetchone()
    assert row is not None and rows is not None
    if row[0]:
        raise AssertionError(f"bench_proj.{table} differs from the reference in {row[0]} rows")
    if rows[0] == 0:
        raise AssertionError(f"bench_proj.{table} is empty")


def run_reference(conn: psycopg.Connection[Any], truncate_inside: bool) -> Callable[[], None]:
    def run() -> None:
        with conn.transaction():
            if truncate_inside:
                conn.execute("TRUNCATE bench_proj.balances_ref")
            conn.execute(REFERENCE_SQL)

    return run


def set_inline(conn: psycopg.Connection[Any], on: bool) -> None:
    """Pause the inline projection, or resume it and let it catch up until it runs inline."""
    state = conn.execute("SELECT state FROM pyes.projections WHERE name = %s", (INLINE,)).fetchone()
    assert state is not None
    if on and state[0] != "running":
        conn.execute("SELECT 1 FROM pyes.resume_projection(%s)", (INLINE,))
        run_to_caught_up(conn, INLINE, 10000)
    elif not on and state[0] == "running":
        conn.execute("SELECT 1 FROM pyes.pause_projection(%s)", (INLINE,))
    state = conn.execute("SELECT state FROM pyes.projections WHERE name = %s", (INLINE,)).fetchone()
    if state is None or state[0] != ("running" if on else "paused"):
        raise RuntimeError(f"inline projection is {state}, expected {'running' if on else 'paused'}")


# -- 1. inline overhead --------------------------------------------------------------------


def inline_overhead(dsn: str, admin: psycopg.Connection[Any], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    streams = accounts()
    store = EventStore(dsn, min_size=1, max_size=1)
    store.pool.wait()
    position = 0

    def inputs(n: int) -> list[tuple[str, list[NewEvent]]]:
        nonlocal position
        out = []
        for _ in range(n):
            _, data, metadata = C.payload(rng)
            data["amount"] = rng.randrange(1, 1_000_000) / 100
            out.append((streams[position % N_ACCOUNTS], [NewEvent(type=rng.choice(TYPES), data=data, metadata=metadata)]))
            position += 1
        return out

    def run(batch: list[tuple[str, list[NewEvent]]]) -> None:
        append = store.append
        for stream, events in batch:
            append(stream, events)

    try:
        with store.pool.connection() as c:
            backend = C.local_backend(c)
        # Warm-up, both ways: creates the streams and the balance rows, prepares statements,
        # fills plan caches; calibrates how many appends one measurement takes.
        rates = {}
        for on in (False, True, False, True):
            set_inline(admin, on)
            warm = inputs(N_ACCOUNTS if on is False and not rates else 300)
            seconds, _, _ = timed(partial(run, warm), backend)
            rates[on] = len(warm) / seconds
        admin.execute("VACUUM (ANALYZE) pyes.events, pyes.streams, bench_proj.balances_inline")
        n = max(N_ACCOUNTS // 4, int(args.seconds * min(rates.values())))
        print(f"  {n} single-event appends per measurement, {args.rounds} rounds x 2", flush=True)
        rounds: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
        for rnd in range(args.rounds):
            order = (False, True) if rnd % 2 == 0 else (True, False)
            for on in order:
                set_inline(admin, on)
                batch = inputs(n)
                seconds, server, _ = timed(partial(run, batch), backend)
                rounds["with" if on else "without"].append(
                    {"round": rnd + 1, "appends": n, "seconds": seconds, "appends_per_s": n / seconds,
                     "us_per_append": 1e6 * seconds / n,
                     "server_backend_us_per_append": 1e6 * server / n if server is not None else None}
                )
            w, wo = rounds["with"][-1], rounds["without"][-1]
            print(f"  round {rnd + 1}/{args.rounds}  without {wo['appends_per_s']:,.0f}/s  with {w['appends_per_s']:,.0f}/s"
                  f"  cost x{w['seconds'] / wo['seconds']:.2f}", flush=True)
        # Verify: the inline table, caught up, equals the one-statement result.
        set_inline(admin, True)
        admin.execute("TRUNCATE bench_proj.balances_ref")
        admin.execute(REFERENCE_SQL)
        compare(admin, "balances_inline")
        admin.execute("TRUNCATE bench_proj.balances_ref")
    finally:
        store.close()

    def med(side: str, key: str) -> float | None:
        vals = [r[key] for r in rounds[side]]
        return None if any(v is None for v in vals) else C.median(vals)

    cost = med("with", "us_per_append") / med("without", "us_per_append")  # type: ignore[operator]
    per_round = [a["seconds"] / b["seconds"] for a, b in zip(rounds["with"], rounds["without"])]
    sw, swo = med("with", "server_backend_us_per_append"), med("without", "server_backend_us_per_append")
    return {
        "appends_per_measurement": n,
        "streams": N_ACCOUNTS,
        "without": {"median_appends_per_s": 1e6 / med("without", "us_per_append"),  # type: ignore[operator]
                    "median_us_per_append": med("without", "us_per_append"),
                    "median_server_backend_us_per_append": swo, "rounds": rounds["without"]},
        "with": {"median_appends_per_s": 1e6 / med("with", "us_per_append"),  # type: ignore[operator]
                 "median_us_per_append": med("with", "us_per_append"),
                 "median_server_backend_us_per_append": sw, "rounds": rounds["with"]},
        "cost_ratio": cost,
        "throughput_ratio": 1 / cost,
        "per_round_cost_ratios": per_round,
        "median_per_round_cost_ratio": C.median(per_round),
        "server_backend_us_added_per_append": (sw - swo) if sw is not None and swo is not None else None,
        "target_max_cost_ratio": TARGET_INLINE_COST,
        "result": "PASS" if cost <= TARGET_INLINE_COST else "MISSED",
        "verified_equal_to_reference": True,
    }


# -- 2. and 3. catch-up and rebuild --------------------------------------------------------


def catch_up(conn: psycopg.Connection[Any], backend: int | None, name: str, batch: int, with_reset: bool) -> dict[str, Any]:
    if not with_reset:
        reset(conn, name)

    def go() -> dict[str, int]:
        if with_reset:
            reset(conn, name)
        return run_to_caught_up(conn, name, batch)

    seconds, server, out = timed(go, backend)
    return {"seconds": seconds, "server_backend_cpu_seconds": server, **out}


def reference_round(conn: psycopg.Connection[Any], backend: int | None, with_truncate: bool) -> dict[str, Any]:
    if not with_truncate:
        conn.execute("TRUNCATE bench_proj.balances_ref")
    seconds, server, _ = timed(run_reference(conn, with_truncate), backend)
    return {"seconds": seconds, "server_backend_cpu_seconds": server}


def explain_batch(conn: psycopg.Connection[Any], batch: int) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the query by which run_projection reads a batch (a copy
    of the one in pyes.projection_batch, from the start of the log)."""
    rows = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT e FROM pyes.events e WHERE (e.transaction_id, e.position) > ('0'::xid8, 0) "
        "AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
        "AND (e.type = ANY ('{Deposited,Withdrawn}') OR e.type = '$rewind') "
        "ORDER BY e.transaction_id, e.position LIMIT %s", (batch,)).fetchall()
    return [r[0] for r in rows]


def against(variant: dict[str, Any], reference: dict[str, Any]) -> None:
    """Record a variant's time and throughput ratios against the reference's (in place)."""
    variant["time_ratio_vs_reference"] = variant["median_seconds"] / reference["median_seconds"]
    variant["throughput_ratio_vs_reference"] = reference["median_seconds"] / variant["median_seconds"]


def summarize(rounds: list[dict[str, Any]], events: int) -> dict[str, Any]:
    secs = C.median([r["seconds"] for r in rounds])
    cpu = [r["server_backend_cpu_seconds"] for r in rounds]
    return {
        "median_seconds": secs,
        "median_events_per_s": events / secs,
        "median_server_backend_cpu_seconds": C.median(cpu) if all(c is not None for c in cpu) else None,
        "rounds": rounds,
    }


def catchup_section(conn: psycopg.Connection[Any], backend: int | None, args: argparse.Namespace) -> dict[str, Any]:
    events = event_count(conn)
    print(f"\n2. catch-up over {events:,} events ({args.catchup_rounds} rounds each, interleaved)", flush=True)
    reference_round(conn, None, with_truncate=True)  # the expected table, for the checks
    rounds: dict[str, list[dict[str, Any]]] = {f"pyes_batch_{b}": [] for b in BATCHES}
    rounds["reference"] = []
    rounds["noop_batch_10000"] = []
    rounds["batch_handler_10000"] = []
    for rnd in range(args.catchup_rounds):
        keys = list(rounds)
        if rnd % 2:
            keys.reverse()
        for key in keys:
            if key == "reference":
                r = reference_round(conn, backend, with_truncate=False)
            elif key.startswith("noop"):
                r = catch_up(conn, backend, NOOP, 10000, with_reset=False)
            elif key.startswith("batch_handler"):
                r = catch_up(conn, backend, BATCH, 10000, with_reset=False)
                if r["processed"] != events:
                    raise AssertionError(f"{key}: processed {r['processed']} events of {events}")
                compare(conn, "balances_batch")
            else:
                r = catch_up(conn, backend, ASYNC, int(key.rsplit("_", 1)[1]), with_reset=False)
                if r["processed"] != events:
                    raise AssertionError(f"{key}: processed {r['processed']} events of {events}")
                compare(conn, "balances_async")
            rounds[key].append({"round": rnd + 1, **r})
        print("  round " + f"{rnd + 1}/{args.catchup_rounds}  " + "  ".join(
            f"{k}={events / v[-1]['seconds']:,.0f}/s" for k, v in rounds.items()), flush=True)
    compare(conn, "balances_async")
    out: dict[str, Any] = {"events": events, "variants": {k: summarize(v, events) for k, v in rounds.items()}}
    ref = out["variants"]["reference"]
    for key in [f"pyes_batch_{b}" for b in BATCHES] + ["batch_handler_10000"]:
        v = out["variants"][key]
        against(v, ref)
        v["us_per_event"] = 1e6 * v["median_seconds"] / events
    best = min(BATCHES, key=lambda b: out["variants"][f"pyes_batch_{b}"]["median_seconds"])
    out["best_batch"] = best
    rate = out["variants"][f"pyes_batch_{best}"]["median_events_per_s"]
    out["target_min_events_per_s"] = TARGET_CATCHUP_RATE
    out["result"] = "PASS" if rate >= TARGET_CATCHUP_RATE else "MISSED"
    bh_rate = out["variants"]["batch_handler_10000"]["median_events_per_s"]
    out["batch_handler_result"] = "PASS" if bh_rate >= TARGET_CATCHUP_RATE else "MISSED"
    noop = out["variants"]["noop_batch_10000"]
    out["machinery_us_per_event"] = 1e6 * noop["median_seconds"] / events
    out["handler_upsert_us_per_event"] = (1e6 * out["variants"]["pyes_batch_10000"]["median_seconds"] / events
                                          - out["machinery_us_per_event"])
    out["reference_us_per_event"] = 1e6 * ref["median_seconds"] / events
    out["explain_batch_read"] = explain_batch(conn, best)
    return out


def rebuild_section(conn: psycopg.Connection[Any], backend: int | None, args: argparse.Namespace, batch: int) -> dict[str, Any]:
    events = event_count(conn)
    print(f"\n3. rebuild over {events:,} events, batch {batch} ({args.rebuild_rounds} rounds, interleaved)", flush=True)
    reference_round(conn, None, with_truncate=True)  # the expected table, for the checks
    rounds: dict[str, list[dict[str, Any]]] = {"pyes": [], "reference": [], "batch_handler": []}
    for rnd in range(args.rebuild_rounds):
        keys = ["pyes", "reference", "batch_handler"] if rnd % 2 == 0 else ["batch_handler", "reference", "pyes"]
        for key in keys:
            if key != "reference":
                r = catch_up(conn, backend, ASYNC if key == "pyes" else BATCH, batch, with_reset=True)
                if r["processed"] != events:
                    raise AssertionError(f"rebuild ({key}) processed {r['processed']} events of {events}")
            else:
                r = reference_round(conn, backend, with_truncate=True)
            rounds[key].append({"round": rnd + 1, **r})
        compare(conn, "balances_async")
        compare(conn, "balances_batch")
        print(f"  round {rnd + 1}/{args.rebuild_rounds}  pyes {rounds['pyes'][-1]['seconds']:.1f} s  "
              f"batch handler {rounds['batch_handler'][-1]['seconds']:.1f} s  "
              f"reference {rounds['reference'][-1]['seconds']:.2f} s", flush=True)
    out: dict[str, Any] = {"events": events, "batch": batch,
                           "variants": {k: summarize(v, events) for k, v in rounds.items()}}
    p, r = out["variants"]["pyes"], out["variants"]["reference"]
    against(p, r)
    out["time_ratio_vs_reference"] = p["time_ratio_vs_reference"]
    out["throughput_ratio_vs_reference"] = p["throughput_ratio_vs_reference"]
    # The target is for 1,000,000 events: scale linearly when a smaller run was asked for.
    limit = TARGET_REBUILD_SECONDS * events / TARGET_REBUILD_EVENTS
    out["target_max_seconds"] = limit
    out["target_note"] = f"{TARGET_REBUILD_SECONDS:.0f} s per {TARGET_REBUILD_EVENTS:,} events, scaled to this size"
    out["result"] = "PASS" if p["median_seconds"] <= limit else "MISSED"
    b = out["variants"]["batch_handler"]
    against(b, r)
    out["batch_handler_result"] = "PASS" if b["median_seconds"] <= limit else "MISSED"
    return out


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rebuild-events", type=int, default=env_int("PYES_BENCH_REBUILD_EVENTS", 1_000_000),
                        help="events in the log for the rebuild (default 1,000,000)")
    parser.add_argument("--catchup-events", type=int, default=env_int("PYES_BENCH_CATCHUP_EVENTS", 200_000),
                        help="events in the log for the catch-up (default 200,000)")
    parser.add_argument("--rounds", type=int, default=6, help="inline-overhead rounds (default 6)")
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of one inline measurement (default 1.5)")
    parser.add_argument("--catchup-rounds", type=int, default=3, help="catch-up rounds (default 3)")
    parser.add_argument("--rebuild-rounds", type=int, default=2, help="rebuild rounds (default 2)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "projections.json")
    parser.add_argument("--seed", type=int, default=20251128)
    args = parser.parse_args(argv)
    if min(args.rounds, args.catchup_rounds, args.rebuild_rounds) < 1 or args.seconds <= 0:
        parser.error("rounds must be >= 1 and --seconds > 0")
    if args.catchup_events < 20_000 or args.rebuild_events < args.catchup_events:
        parser.error("--catchup-events must be >= 20,000 and --rebuild-events >= --catchup-events")

    started = perf_counter()
    load = C.load_average()
    result: dict[str, Any] = {
        "benchmark": "projections",
        "timestamp": C.now_iso(),
        "machine": {**C.machine_info(), "load_average_at_start": load},
        "repo": C.repo_info(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "noise": "other processes share this machine's CPUs: see the load averages; rounds interleave so that "
                 "both sides share the noise, but absolute figures vary from run to run",
    }
    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_projections") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
        upgrade(dsn)
        srv = result["server"]
        print(f"pyes projections benchmark  {result['timestamp']}")
        print(f"server: {srv['version']}\n        {source}, {srv['connection']}")
        if load is not None and load[0] > 0.5 * (os.cpu_count() or 1):
            print(f"WARNING: load average {load[0]:.2f} on {os.cpu_count()} CPUs: other work on this machine makes "
                  "the figures noisy (rounds interleave, so both sides share the noise)")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
            conn.execute(
                "SELECT 1 FROM pyes.register_projection(%s, 'bench_proj.apply_balance_inline(pyes.events)', %s, "
                "'inline', ARRAY['balances_inline'], 'bench_proj', p_stream_column => 'stream_id')", (INLINE, list(TYPES)))
            run_to_caught_up(conn, INLINE, 1000)  # empty log: turns inline at once

            print("\n1. inline overhead: single-event appends without / with the inline balance projection", flush=True)
            result["inline_overhead"] = inline_overhead(dsn, conn, args)
            conn.execute("SELECT pyes.unregister_projection(%s)", (INLINE,))
            for name, handler, table in ((ASYNC, "apply_balance_async(pyes.events)", "balances_async"),
                                         (NOOP, "apply_noop(pyes.events)", "noop"),
                                         (BATCH, "apply_balances_batch(pyes.events[])", "balances_batch")):
                conn.execute(
                    f"SELECT 1 FROM pyes.register_projection(%s, 'bench_proj.{handler}', %s, 'async', "
                    f"ARRAY['{table}'], 'bench_proj', p_stream_column => 'stream_id')", (name, list(TYPES)))

            backend = C.local_backend(conn)
            result["server_cpu_measured"] = backend is not None
            print(f"\nfilling the log to {args.catchup_events:,} events (pyes.append, {N_ACCOUNTS} accounts x "
                  f"{LOAD_PER_STREAM} events per transaction of {N_ACCOUNTS * LOAD_PER_STREAM:,})", flush=True)
            result["fill_catchup"] = fill_to(conn, args.catchup_events)
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                pass
            result["catch_up"] = catchup_section(conn, backend, args)

            print(f"\nfilling the log to {args.rebuild_events:,} events", flush=True)
            result["fill_rebuild"] = fill_to(conn, args.rebuild_events)
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                pass
            result["rebuild"] = rebuild_section(conn, backend, args, result["catch_up"]["best_batch"])
            result["table_sizes"] = dict(conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "WHERE c.relnamespace IN ('pyes'::regnamespace, 'bench_proj'::regnamespace) AND c.relkind = 'r' "
                "ORDER BY 1").fetchall())

    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    result["ratios"] = ratios(result)
    C.write_json(args.output, result)
    report(result)
    print(f"\nresults: {args.output}  ({result['total_seconds']:.0f} s in all, {time.strftime('%H:%M:%S')})")
    return 0


def not_a_ratio(label: str, variant: dict[str, Any], reference: dict[str, Any], result: str) -> dict[str, Any]:
    """A line for bench/report.py whose target is a rate or a time: the ratio is reported, the
    result is the target's."""
    return {"label": label, "pyes_median_events_per_s": variant["median_events_per_s"],
            "reference_median_events_per_s": reference["median_events_per_s"],
            "ratio": variant["throughput_ratio_vs_reference"], "target": None, "result": result}


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios in the shape bench/report.py reads: throughput, pyes over its reference."""
    io, cu, rb = result["inline_overhead"], result["catch_up"], result["rebuild"]
    best = cu["variants"][f"pyes_batch_{cu['best_batch']}"]
    return [
        {"label": "inline balance projection: 1-event appends, with / without (target: cost <= 1.30)",
         "pyes_median_events_per_s": io["with"]["median_appends_per_s"],
         "reference_median_events_per_s": io["without"]["median_appends_per_s"],
         "ratio": io["throughput_ratio"], "target": round(1 / TARGET_INLINE_COST, 3), "result": io["result"],
         "per_round_ratios": [1 / r for r in io["per_round_cost_ratios"]]},
        not_a_ratio(f"catch-up of {cu['events']:,} events, batch {cu['best_batch']}, against one INSERT ... SELECT "
                    f"(target: >= {TARGET_CATCHUP_RATE:,.0f} events/s, not a ratio)",
                    best, cu["variants"]["reference"], cu["result"]),
        not_a_ratio(f"catch-up of {cu['events']:,} events, batch handler (one call per batch of 10,000), against one "
                    f"INSERT ... SELECT (target: >= {TARGET_CATCHUP_RATE:,.0f} events/s, not a ratio)",
                    cu["variants"]["batch_handler_10000"], cu["variants"]["reference"], cu["batch_handler_result"]),
        not_a_ratio(f"rebuild of {rb['events']:,} events against TRUNCATE + one INSERT ... SELECT "
                    f"(target: <= {rb['target_max_seconds']:.0f} s, not a ratio)",
                    rb["variants"]["pyes"], rb["variants"]["reference"], rb["result"]),
        not_a_ratio(f"rebuild of {rb['events']:,} events, batch handler, against TRUNCATE + one INSERT ... SELECT "
                    f"(target: <= {rb['target_max_seconds']:.0f} s, not a ratio)",
                    rb["variants"]["batch_handler"], rb["variants"]["reference"], rb["batch_handler_result"]),
    ]


def report_row(case: str, variant: dict[str, Any], reference: dict[str, Any], figure: Callable[..., str],
               reference_name: str, target: str, result: str) -> list[str]:
    """A line of the printed table: a variant beside its reference, with the ratios."""
    return [case, figure(**variant), f"{figure(**reference)} ({reference_name})",
            f"time x{variant['time_ratio_vs_reference']:.1f} (throughput x{variant['throughput_ratio_vs_reference']:.3f})",
            target, result]


def report(result: dict[str, Any]) -> None:
    io, cu, rb = result["inline_overhead"], result["catch_up"], result["rebuild"]
    rows = [
        ["inline: 1-event append", f"{io['with']['median_appends_per_s']:,.0f} appends/s",
         f"{io['without']['median_appends_per_s']:,.0f} appends/s (no projection)",
         (f"cost x{io['cost_ratio']:.2f} (throughput x{io['throughput_ratio']:.2f}); rounds "
          f"x{min(io['per_round_cost_ratios']):.2f}-{max(io['per_round_cost_ratios']):.2f}"),
         f"cost <= {TARGET_INLINE_COST}", io["result"]],
    ]
    ref = cu["variants"]["reference"]
    rate, rate_target = ("{median_events_per_s:,.0f} events/s").format, f">= {TARGET_CATCHUP_RATE:,.0f}/s"
    for b in BATCHES:
        best = b == cu["best_batch"]
        rows.append(report_row(f"catch-up {cu['events']:,}, batch {b}", cu["variants"][f"pyes_batch_{b}"], ref, rate,
                               "INSERT ... SELECT", rate_target if best else "-", cu["result"] if best else "report"))
    rows.append(report_row(f"catch-up {cu['events']:,}, batch handler", cu["variants"]["batch_handler_10000"], ref, rate,
                           "INSERT ... SELECT", rate_target, cu["batch_handler_result"]))
    secs, secs_target = ("{median_seconds:.2f} s").format, f"<= {rb['target_max_seconds']:.1f} s"
    r = rb["variants"]["reference"]
    rows.append(report_row(f"rebuild {rb['events']:,}, batch {rb['batch']}", rb["variants"]["pyes"], r, secs,
                           "TRUNCATE + INSERT ... SELECT", secs_target, rb["result"]))
    rows.append(report_row(f"rebuild {rb['events']:,}, batch handler", rb["variants"]["batch_handler"], r, secs,
                           "TRUNCATE + INSERT ... SELECT", secs_target, rb["batch_handler_result"]))
    print()
    print(C.table(["case", "pyes", "reference", "ratio pyes/reference", "target", "result"], rows,
                  [False, True, True, False, False, False]))
    print("\nWhere the time goes:")
    sw = io["server_backend_us_added_per_append"]
    print(f"  inline: {io['with']['median_us_per_append']:.0f} us per append with, "
          f"{io['without']['median_us_per_append']:.0f} us without"
          + (f"; the projection adds {sw:.0f} us of server CPU per append" if sw is not None else ""))
    best = cu["variants"][f"pyes_batch_{cu['best_batch']}"]
    print(f"  catch-up: {1e6 / best['median_events_per_s']:.1f} us per event "
          f"= {cu['machinery_us_per_event']:.1f} us pyes machinery (empty handler: batch read, dynamic call, one "
          f"plpgsql call per event) + {cu['handler_upsert_us_per_event']:.1f} us the handler's upsert; "
          f"the INSERT ... SELECT: {cu['reference_us_per_event']:.2f} us per event")
    load0, load1 = result["machine"]["load_average_at_start"], result["machine"]["load_average_at_end"]
    if load0 and load1:
        print(f"  load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end, on "
              f"{result['machine']['cpu_count']} CPUs: figures are noisy when it is near or above that")
    for key in ("fill_catchup", "fill_rebuild"):
        f = result[key]
        if f["added"]:
            print(f"  filling with pyes.append: {f['added']:,} events in {f['seconds']:.1f} s "
                  f"({f['events_per_s']:,.0f} events/s)")
    misses = [n for n, d in (("inline", io), ("catch-up", cu), ("rebuild", rb)) if d["result"] == "MISSED"]
    misses += [f"{n} (batch handler)" for n, d in (("catch-up", cu), ("rebuild", rb)) if d["batch_handler_result"] == "MISSED"]
    for m in misses:
        print(f"MISSED  {m}")
    print("checks passed: every projection table equals the INSERT ... SELECT result, row by row")


if __name__ == "__main__":
    sys.exit(main())
