"""UPDATE throughput on a captured table against the same table uncaptured, in one run.

Two identical tables (same columns, rows, primary key); one is captured (pyes.capture_add,
then backfilled) so every UPDATE also appends a RowUpdated event (pyes.capture_row). Each
round runs the same random UPDATEs (one row by primary key, two columns changed) on both
tables, in alternating order; the figure is the median of the rounds' rates, and the cost
factor is plain rate / captured rate (target: at most 2).

Shapes: one UPDATE per transaction (autocommit, each commit waits for the WAL flush), and
100 UPDATEs per transaction (the trigger's own cost, with the commit spread thin).

    .venv/bin/python bench/capture.py [--rounds 10] [--rows 10000]

Results: bench/results/capture.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    RESULTS,
    bench_server,
    load_average,
    machine_info,
    median,
    now_iso,
    repo_info,
    scratch_database,
    server_info,
    table,
    write_json,
)

from pyes.migrate import upgrade

TABLE = """CREATE TABLE {name} (
    id          bigint PRIMARY KEY,
    owner       text NOT NULL,
    email       text NOT NULL,
    balance     numeric(12, 2) NOT NULL,
    status      text NOT NULL,
    updated_at  timestamptz NOT NULL,
    note        text)"""
FILL = """INSERT INTO {name} SELECT i, 'owner ' || i, 'user' || i || '@example.com', (i %% 1000) * 1.5,
          'active', now(), 'created by the benchmark' FROM generate_series(1, %s) i"""
UPDATE = "UPDATE {name} SET balance = balance + %s, updated_at = clock_timestamp() WHERE id = %s"
SHAPES = (("1 UPDATE per transaction", 1, 400), ("100 UPDATEs per transaction", 100, 20))


def run(conn: psycopg.Connection[Any], name: str, per_tx: int, transactions: int, keys: list[int]) -> float:
    """UPDATEs per second."""
    statement = UPDATE.format(name=name)
    it = iter(keys)
    start = time.perf_counter()
    for _ in range(transactions):
        if per_tx == 1:
            conn.execute(statement, (1, next(it)), prepare=True)
        else:
            with conn.transaction():
                for _ in range(per_tx):
                    conn.execute(statement, (1, next(it)), prepare=True)
    return per_tx * transactions / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10000)
    args = parser.parse_args()

    started, load = time.perf_counter(), load_average()
    with bench_server() as (admin_dsn, source), scratch_database(admin_dsn, "pyes_bench_capture") as dsn:
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in ("plain_accounts", "captured_accounts"):
                conn.execute(TABLE.format(name=name))
                conn.execute(FILL.format(name=name), (args.rows,))
            conn.execute("SELECT pyes.capture_add('captured_accounts')")
            while not conn.execute("SELECT done FROM pyes.capture_backfill_batch('captured_accounts', 5000)").fetchone()[0]:  # type: ignore[index]
                pass
            conn.execute("VACUUM ANALYZE")
            info = server_info(conn)
            rng = random.Random(42)
            results: dict[str, Any] = {}
            for label, per_tx, transactions in SHAPES:
                n = per_tx * transactions
                run(conn, "plain_accounts", per_tx, max(1, transactions // 4), [rng.randrange(1, args.rows + 1) for _ in range(n)])
                run(conn, "captured_accounts", per_tx, max(1, transactions // 4), [rng.randrange(1, args.rows + 1) for _ in range(n)])
                plain, captured = [], []
                for round_no in range(args.rounds):
                    keys = [rng.randrange(1, args.rows + 1) for _ in range(n)]
                    order = ("plain_accounts", "captured_accounts") if round_no % 2 == 0 else ("captured_accounts", "plain_accounts")
                    for name in order:
                        rate = run(conn, name, per_tx, transactions, keys)
                        (plain if name == "plain_accounts" else captured).append(rate)
                results[label] = {
                    "updates_per_round": n,
                    "plain_per_second": [round(r, 1) for r in plain],
                    "captured_per_second": [round(r, 1) for r in captured],
                    "plain_median": round(median(plain), 1),
                    "captured_median": round(median(captured), 1),
                    "cost_factor": round(median(plain) / median(captured), 3),
                }
            events = conn.execute("SELECT count(*) FROM pyes.events WHERE category = 'captured_accounts'").fetchone()

    rows = [[label, f"{r['plain_median']:.0f}", f"{r['captured_median']:.0f}", f"{r['cost_factor']:.2f}"]
            for label, r in results.items()]
    print(table(["shape", "plain UPDATE/s", "captured UPDATE/s", "cost (plain/captured)"], rows, [False, True, True, True]))
    write_json(RESULTS / "capture.json", {
        "benchmark": "capture",
        "what": "UPDATE throughput of a captured table (its trigger, pyes.capture_row, appends a RowUpdated per UPDATE) against the same table uncaptured",
        "target": "cost factor (plain rate / captured rate) at most 2",
        "timestamp": now_iso(),
        "server": {"source": source, **info},
        "machine": {**machine_info(), "load_average_at_start": load, "load_average_at_end": load_average()},
        "repo": repo_info(),
        "total_seconds": round(time.perf_counter() - started, 1),
        "rounds": args.rounds,
        "rows_per_table": args.rows,
        "events_written": events[0] if events else None,
        "results": results,
        # The shape bench/report.py reads: throughput, captured over plain (target cost <= 2).
        "ratios": [
            {"label": f"{label}: captured / plain UPDATE (target: cost <= 2)",
             "pyes_median_events_per_s": r["captured_median"], "reference_median_events_per_s": r["plain_median"],
             "ratio": round(r["captured_median"] / r["plain_median"], 3), "target": 0.5,
             "result": "PASS" if r["cost_factor"] <= 2 else "MISSED",
             "per_round_ratios": [c / p for c, p in zip(r["captured_per_second"], r["plain_per_second"], strict=True)]}
            for label, r in results.items()
        ],
    })


if __name__ == "__main__":
    main()
