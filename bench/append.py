"""Appending through pyes against plain INSERTs into an identical table, in one run on one server.

    python bench/append.py              # or: make bench
    PYES_DATABASE_URL=postgresql://... python bench/append.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it (pyes.migrate.upgrade), and drops it at the end.

The reference table bench_raw.events is ``LIKE pyes.events INCLUDING ALL``: same columns,
defaults, identity, NOT NULL and CHECK constraints, primary key, unique constraints and the
three indexes (a LIKE copies no triggers, so it has no immutability triggers, and it has no
streams table). Extra reference lines use more copies, bench_raw.events_multi (multi-row
INSERT) and bench_raw.events_copy (COPY), so that each table grows only by the work measured
on it.

Shapes (events per transaction), each measured for pyes and the references in every round:

  1    pyes: EventStore.append(stream, [NewEvent]) through the store's pool of one connection.
       The pool is in autocommit, so the call is one prepared SELECT pyes.append(...): one
       statement, one transaction, one round trip. reference (the target's): one prepared
       INSERT of one row in autocommit, likewise one statement and one round trip. Extra
       lines: the INSERT as BEGIN, INSERT, COMMIT, and pyes as store.append(..., conn=c) then
       c.commit() against that.
  10   pyes: one append of 10 events. reference: cursor.executemany of 10 INSERTs (psycopg
       pipelines them), then COMMIT. Extra: one INSERT ... VALUES of 10 rows, and COPY ... FROM
       STDIN of the 10 rows (text format, psycopg's cursor.copy), each then COMMIT.
  100  the same with 100 events; targets: >= 1.2 x executemany, >= 0.5 x COPY.

Floors (report only, 1 and 100 events): bench_raw.floor_insert, a PL/pgSQL function called as
pyes.append is that only INSERTs the events, and bench_raw.floor_stream_row, which also keeps
a stream row as pyes does; see FLOOR_SQL.

Every append goes to one of 100 streams, round-robin, so every stream grows by the same
number of events and both sides do the same index work. Inputs (NewEvent objects for pyes,
parameter tuples for the references, with the same payload dicts) are built before the
timed region; JSON encoding happens inside it on both sides (pyes encodes the batch, the
reference its data and metadata), with the same encoder (pyes.jsonio.dumps). Rounds
interleave the variants, each permutation of their order in turn, so that drift (checkpoints,
autovacuum, neighbours) affects all of them; a variant's figure is the median events/s of its
rounds.

Writes every figure to bench/results/append.json. Exits non-zero if anything fails; a missed
target is printed as MISSED but is not a failure.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes import EventStore, NewEvent
from pyes.migrate import upgrade

N_STREAMS = 100

# The columns pyes.append fills from the event (recorded_at and transaction_id it sets to
# clock_timestamp() and pg_current_xact_id(); the reference leaves them to their defaults,
# now() and pg_current_xact_id(); correlation_id and causation_id are NULL on both sides).
REF_COLUMNS = "event_id, stream_id, category, version, type, schema_version, data, metadata"
_ROW = "(" + ", ".join(["%s"] * 8) + ")"
INSERT_ONE = f"INSERT INTO bench_raw.events ({REF_COLUMNS}) VALUES {_ROW}"


def insert_multi(n: int) -> str:
    return f"INSERT INTO bench_raw.events_multi ({REF_COLUMNS}) VALUES " + ", ".join([_ROW] * n)


# The floors of pyes's design: what a PL/pgSQL function called like pyes.append (prepared,
# autocommit, the events as one jsonb array, search_path pinned) costs when it only INSERTs
# the events (versions computed by the client, as the references do), and when it also keeps
# a stream row as pyes does (an UPDATE of its version, or an INSERT for a new stream). No
# validation, no id check, no expected-version logic, no trigger: pyes cannot be faster than
# the second, and no design whose append is a function call faster than the first.


def _floor_insert(table: str, last_version: str, extra_columns: str = "", extra_values: str = "") -> str:
    """The statements both floors end with: the INSERT of one event (VALUES) or of the batch
    (INSERT ... SELECT, as pyes.append runs them) into ``table``, the last event at version
    ``last_version``; they set the OUT parameter ``positions``."""
    columns = f"event_id, stream_id, category, version, type, schema_version, data, metadata{extra_columns}"
    return f"""
    IF v_count = 1 THEN
        v_ev := p_events -> 0;
        INSERT INTO {table} AS t ({columns})
        VALUES ((v_ev ->> 'id')::uuid, p_stream_id, split_part(p_stream_id, '-', 1), {last_version}, v_ev ->> 'type', 1,
                v_ev -> 'data', v_ev -> 'metadata'{extra_values})
        RETURNING t.position INTO v_position;
        positions := ARRAY[v_position];
        RETURN;
    END IF;
    WITH inserted AS (
        INSERT INTO {table} AS t ({columns})
        SELECT (e.ev ->> 'id')::uuid, p_stream_id, split_part(p_stream_id, '-', 1), {last_version} - v_count + e.ord,
               e.ev ->> 'type', 1, e.ev -> 'data', e.ev -> 'metadata'{extra_values}
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
         ORDER BY e.ord
        RETURNING t.position
    )
    SELECT array_agg(i.position ORDER BY i.position) INTO positions FROM inserted i;"""


FLOOR_SQL = f"""
CREATE FUNCTION bench_raw.floor_insert(p_stream_id text, p_events jsonb, p_version bigint,
                                       OUT stream_version bigint, OUT positions bigint[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_count integer := jsonb_array_length(p_events);
    v_ev jsonb;
    v_position bigint;
BEGIN
    stream_version := p_version;{_floor_insert("bench_raw.floor_events", "p_version")}
END;
$$;

CREATE FUNCTION bench_raw.floor_stream_row(p_stream_id text, p_events jsonb,
                                           OUT stream_version bigint, OUT positions bigint[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_count integer := jsonb_array_length(p_events);
    v_ev jsonb;
    v_xid xid8 := pg_current_xact_id();
    v_now timestamptz;
    v_position bigint;
BEGIN
    UPDATE bench_raw.floor_streams s SET version = s.version + v_count, last_xid = v_xid, updated_at = clock_timestamp()
     WHERE s.stream_id = p_stream_id
    RETURNING s.version, s.updated_at INTO stream_version, v_now;
    IF NOT FOUND THEN
        INSERT INTO bench_raw.floor_streams AS s (stream_id, category, version, last_xid)
        VALUES (p_stream_id, split_part(p_stream_id, '-', 1), v_count, v_xid)
        RETURNING s.version, s.updated_at INTO stream_version, v_now;
    END IF;{_floor_insert("bench_raw.floor_stream_events", "stream_version", ", recorded_at, transaction_id", ", v_now, v_xid")}
END;
$$;
"""
FLOOR_INSERT = "SELECT stream_version, positions FROM bench_raw.floor_insert(%s, %s, %s)"
FLOOR_STREAM_ROW = "SELECT stream_version, positions FROM bench_raw.floor_stream_row(%s, %s)"

SETUP_SQL = """
CREATE SCHEMA bench_raw;
CREATE TABLE bench_raw.events (LIKE pyes.events INCLUDING ALL);
CREATE TABLE bench_raw.events_multi (LIKE pyes.events INCLUDING ALL);
CREATE TABLE bench_raw.events_copy (LIKE pyes.events INCLUDING ALL);
CREATE TABLE bench_raw.floor_events (LIKE pyes.events INCLUDING ALL);
CREATE TABLE bench_raw.floor_stream_events (LIKE pyes.events INCLUDING ALL);
CREATE TABLE bench_raw.floor_streams (LIKE pyes.streams INCLUDING ALL);
""" + FLOOR_SQL
COPY_IN = f"COPY bench_raw.events_copy ({REF_COLUMNS}) FROM STDIN"

# One event: (type, data, metadata). One op: (stream index, [event, ...]): one transaction.
Event = tuple[str, dict[str, Any], dict[str, Any]]
Op = tuple[int, list[Event]]


def make_streams(rng: random.Random) -> list[str]:
    return C.stream_ids(rng, N_STREAMS)


def make_event(rng: random.Random) -> Event:
    return C.payload(rng)


@dataclass
class Variant:
    key: str
    label: str
    side: str  # "pyes" or "reference"
    table: str
    build: Callable[[list[Op]], Any]  # untimed: the inputs of the timed run
    run: Callable[[Any], None]  # timed
    connection: str  # which connection it runs on: "pyes", "pyes_conn", "reference", "reference_ac" or "floor"
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def medians(self) -> float:
        return C.median([r["events_per_s"] for r in self.rounds])


@dataclass
class Comparison:
    pyes: str
    reference: str
    target: float | None  # minimum ratio pyes/reference; None: report only
    note: str


@dataclass
class Shape:
    name: str
    batch: int
    variants: list[Variant]
    comparisons: list[Comparison]
    warmup_ops: int
    step: int  # ops per measurement are a multiple of this
    ops: int = 0
    next_stream: int = 0
    calibration: dict[str, float] = field(default_factory=dict)

    def template(self, rng: random.Random, n_ops: int) -> list[Op]:
        """n_ops transactions of ``batch`` events, round-robin over the streams."""
        ops = []
        for _ in range(n_ops):
            ops.append((self.next_stream, [make_event(rng) for _ in range(self.batch)]))
            self.next_stream = (self.next_stream + 1) % N_STREAMS
        return ops


class Bench:
    def __init__(self, dsn: str, streams: list[str]) -> None:
        self.streams = streams
        self.categories = [s.split("-", 1)[0] for s in streams]
        self.store = EventStore(dsn, min_size=1, max_size=1)
        self.store.pool.wait()
        self.pyes_conn = psycopg.connect(dsn)
        self.ref_conn = psycopg.connect(dsn)
        self.ref_cursor = self.ref_conn.cursor()
        self.ref_ac_conn = psycopg.connect(dsn, autocommit=True)
        self.floor_conn = psycopg.connect(dsn, autocommit=True)
        # Last version written per stream, per reference table: the reference computes
        # versions in Python (while building its inputs), pyes in the database.
        self.versions: dict[str, list[int]] = {
            t: [0] * N_STREAMS
            for t in ("bench_raw.events", "bench_raw.events_multi", "bench_raw.events_copy", "bench_raw.floor_events")
        }
        self.written: dict[str, int] = {
            "pyes.events": 0,
            "bench_raw.events": 0,
            "bench_raw.events_multi": 0,
            "bench_raw.events_copy": 0,
            "bench_raw.floor_events": 0,
            "bench_raw.floor_stream_events": 0,
        }

    def close(self) -> None:
        self.store.close()
        self.pyes_conn.close()
        self.ref_conn.close()
        self.ref_ac_conn.close()
        self.floor_conn.close()

    # -- inputs (untimed) ------------------------------------------------------------------

    def pyes_inputs(self, ops: list[Op]) -> list[tuple[str, list[NewEvent]]]:
        self.written["pyes.events"] += sum(len(evs) for _, evs in ops)
        return [(self.streams[s], [NewEvent(type=t, data=d, metadata=m) for t, d, m in evs]) for s, evs in ops]

    def ref_rows(self, ops: list[Op], table: str) -> list[list[tuple[Any, ...]]]:
        versions = self.versions[table]
        self.written[table] += sum(len(evs) for _, evs in ops)
        out = []
        for s, evs in ops:
            rows = []
            for t, d, m in evs:
                versions[s] += 1
                rows.append((uuid.uuid4(), self.streams[s], self.categories[s], versions[s], t, 1, C.jsonb(d), C.jsonb(m)))
            out.append(rows)
        return out

    def floor_inputs(self, ops: list[Op], table: str) -> list[tuple[Any, ...]]:
        """(stream, [event object as pyes.append takes it], version) per transaction."""
        versions = self.versions.get(table)
        self.written[table] += sum(len(evs) for _, evs in ops)
        out = []
        for s, evs in ops:
            batch = [NewEvent(type=t, data=d, metadata=m).to_json() for t, d, m in evs]
            if versions is None:
                out.append((self.streams[s], batch))
            else:
                versions[s] += len(evs)
                out.append((self.streams[s], batch, versions[s]))
        return out

    # -- timed runs ------------------------------------------------------------------------

    def run_pyes_pool(self, inputs: list[tuple[str, list[NewEvent]]]) -> None:
        append = self.store.append
        for stream, events in inputs:
            append(stream, events)

    def run_pyes_conn(self, inputs: list[tuple[str, list[NewEvent]]]) -> None:
        append, conn = self.store.append, self.pyes_conn
        for stream, events in inputs:
            append(stream, events, conn=conn)
            conn.commit()

    def run_insert_one(self, inputs: list[list[tuple[Any, ...]]]) -> None:
        conn = self.ref_conn
        for rows in inputs:
            conn.execute(INSERT_ONE, rows[0])
            conn.commit()

    def run_insert_autocommit(self, inputs: list[list[tuple[Any, ...]]]) -> None:
        conn = self.ref_ac_conn
        for rows in inputs:
            conn.execute(INSERT_ONE, rows[0])

    def run_floor(self, query: str) -> Callable[[list[tuple[Any, ...]]], None]:
        def run(inputs: list[tuple[Any, ...]]) -> None:
            conn = self.floor_conn
            for stream, batch, *version in inputs:
                conn.execute(query, (stream, C.jsonb(batch), *version), prepare=True).fetchone()

        return run

    def run_executemany(self, inputs: list[list[tuple[Any, ...]]]) -> None:
        conn, cur = self.ref_conn, self.ref_cursor
        for rows in inputs:
            cur.executemany(INSERT_ONE, rows)
            conn.commit()

    def run_copy(self, inputs: list[list[tuple[Any, ...]]]) -> None:
        conn, cur = self.ref_conn, self.ref_cursor
        for rows in inputs:
            with cur.copy(COPY_IN) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()

    def run_multirow(self, query: str) -> Callable[[list[tuple[Any, ...]]], None]:
        def run(inputs: list[tuple[Any, ...]]) -> None:
            conn = self.ref_conn
            for flat in inputs:
                conn.execute(query, flat)
                conn.commit()

        return run

    # -- shapes ----------------------------------------------------------------------------

    def shapes(self) -> list[Shape]:
        def pyes_pool() -> Variant:
            return Variant(
                "pyes",
                "pyes store.append (pool of 1)",
                "pyes",
                "pyes.events",
                self.pyes_inputs,
                self.run_pyes_pool,
                "pyes",
            )

        def floors() -> list[Variant]:
            return [
                Variant(
                    "floor_insert",
                    "plpgsql function that only INSERTs",
                    "reference",
                    "bench_raw.floor_events",
                    lambda ops: self.floor_inputs(ops, "bench_raw.floor_events"),
                    self.run_floor(FLOOR_INSERT),
                    "floor",
                ),
                Variant(
                    "floor_stream_row",
                    "plpgsql function: stream row UPDATE + INSERT",
                    "reference",
                    "bench_raw.floor_stream_events",
                    lambda ops: self.floor_inputs(ops, "bench_raw.floor_stream_events"),
                    self.run_floor(FLOOR_STREAM_ROW),
                    "floor",
                ),
            ]

        def rows_of(table: str) -> Callable[[list[Op]], Any]:
            return lambda ops: self.ref_rows(ops, table)

        def flat_of(table: str) -> Callable[[list[Op]], Any]:
            return lambda ops: [tuple(v for row in rows for v in row) for rows in self.ref_rows(ops, table)]

        shapes = [
            Shape(
                "1 event / tx",
                1,
                [
                    pyes_pool(),
                    Variant(
                        "pyes_conn",
                        "pyes store.append(conn=c); c.commit()",
                        "pyes",
                        "pyes.events",
                        self.pyes_inputs,
                        self.run_pyes_conn,
                        "pyes_conn",
                    ),
                    Variant(
                        "insert",
                        "INSERT 1 row; COMMIT",
                        "reference",
                        "bench_raw.events",
                        rows_of("bench_raw.events"),
                        self.run_insert_one,
                        "reference",
                    ),
                    Variant(
                        "insert_ac",
                        "INSERT 1 row, autocommit",
                        "reference",
                        "bench_raw.events",
                        rows_of("bench_raw.events"),
                        self.run_insert_autocommit,
                        "reference_ac",
                    ),
                    *floors(),
                ],
                [
                    # Both sides at their best: one statement, one round trip, its own transaction.
                    Comparison("pyes", "insert_ac", 0.9, "target"),
                    Comparison(
                        "pyes", "insert", None, "extra: reference as BEGIN, INSERT, COMMIT (3 round trips)"
                    ),
                    Comparison(
                        "pyes_conn", "insert", None, "extra: both as BEGIN, statement, COMMIT on one connection"
                    ),
                    # Where the target's gap comes from: the floors of a function-based design.
                    Comparison("floor_insert", "insert_ac", None, "floor: any append function"),
                    Comparison("floor_stream_row", "insert_ac", None, "floor: pyes's design"),
                    Comparison("pyes", "floor_stream_row", None, "pyes over the floor of its design"),
                ],
                warmup_ops=200,
                step=N_STREAMS,
            )
        ]
        for batch, warmup, step in ((10, 100, N_STREAMS), (100, 20, 10)):
            shapes.append(
                Shape(
                    f"{batch} events / tx",
                    batch,
                    [
                        pyes_pool(),
                        Variant(
                            "executemany",
                            f"executemany of {batch} INSERTs; COMMIT",
                            "reference",
                            "bench_raw.events",
                            rows_of("bench_raw.events"),
                            self.run_executemany,
                            "reference",
                        ),
                        Variant(
                            "multirow",
                            f"one INSERT of {batch} rows; COMMIT",
                            "reference",
                            "bench_raw.events_multi",
                            flat_of("bench_raw.events_multi"),
                            self.run_multirow(insert_multi(batch)),
                            "reference",
                        ),
                        Variant(
                            "copy",
                            f"COPY of {batch} rows; COMMIT",
                            "reference",
                            "bench_raw.events_copy",
                            rows_of("bench_raw.events_copy"),
                            self.run_copy,
                            "reference",
                        ),
                        *(floors() if batch == 100 else []),
                    ],
                    [
                        Comparison(
                            "pyes",
                            "executemany",
                            1.2 if batch == 100 else None,
                            "target" if batch == 100 else "report only",
                        ),
                        Comparison("pyes", "multirow", None, "extra: single multi-row INSERT"),
                        Comparison(
                            "pyes",
                            "copy",
                            0.5 if batch == 100 else None,
                            "target" if batch == 100 else "report only",
                        ),
                        *(
                            [
                                Comparison("floor_insert", "executemany", None, "floor: any append function"),
                                Comparison("floor_stream_row", "executemany", None, "floor: pyes's design"),
                                Comparison("pyes", "floor_stream_row", None, "pyes over the floor of its design"),
                            ]
                            if batch == 100
                            else []
                        ),
                    ],
                    warmup_ops=warmup,
                    step=step,
                )
            )
        return shapes


def order_of(n: int, rnd: int) -> list[int]:
    """The order of n variants in round rnd: rotated by rnd // 2, reversed in odd rounds. With
    three variants six rounds run each of the six orders once; any two variants swap places
    from one round to the next."""
    rot = [(i + rnd // 2) % n for i in range(n)]
    return rot[::-1] if rnd % 2 else rot


def measure(variant: Variant, inputs: Any, backend: int | None = None) -> tuple[float, float, float | None]:
    """Run the variant; return (wall seconds, CPU seconds of this Python process, CPU seconds
    of the server backend ``backend`` or None when it cannot be read)."""
    gc.collect()
    s0 = C.backend_cpu(backend)
    c0 = time.process_time()
    t0 = perf_counter()
    variant.run(inputs)
    t1 = perf_counter()
    c1 = time.process_time()
    s1 = C.backend_cpu(backend)
    return t1 - t0, c1 - c0, (s1 - s0 if s0 is not None and s1 is not None else None)


def verify(conn: psycopg.Connection[Any], bench: Bench) -> dict[str, Any]:
    """Every table holds what was written, each stream's versions are 1..n without a gap,
    and pyes.streams agrees with pyes.events. Raises if not."""
    checks: dict[str, Any] = {}
    for table, expected in bench.written.items():
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT stream_id), count(*) FILTER (WHERE version < 1) FROM {table}"
        ).fetchone()
        bad = conn.execute(
            f"SELECT count(*) FROM (SELECT stream_id FROM {table} GROUP BY stream_id "
            f"HAVING max(version) <> count(*) OR min(version) <> 1) x"
        ).fetchone()
        assert row is not None and bad is not None
        checks[table] = {"rows": row[0], "expected": expected, "streams": row[1], "streams_with_gaps": bad[0]}
        if row[0] != expected or bad[0] != 0 or row[2] != 0:
            raise AssertionError(f"{table}: {checks[table]}")
    C.check_streams_agree(conn, "pyes.streams", "pyes.events")
    checks["pyes.streams_consistent"] = True
    C.check_streams_agree(conn, "bench_raw.floor_streams", "bench_raw.floor_stream_events")
    checks["bench_raw.floor_streams_consistent"] = True
    return checks


def prepared(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    cols = "left(regexp_replace(statement, '\\s+', ' ', 'g'), 70)"
    if conn.info.server_version >= 140000:
        cols += ", generic_plans, custom_plans"
    rows = conn.execute(f"SELECT {cols} FROM pg_prepared_statements ORDER BY 1").fetchall()
    if not conn.autocommit:
        conn.rollback()
    keys = ("statement", "generic_plans", "custom_plans")
    return [dict(zip(keys, r)) for r in rows]


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per shape (default 6)")
    parser.add_argument("--seconds", type=float, default=0.8, help="target duration of one measurement (default 0.8)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "append.json")
    parser.add_argument("--seed", type=int, default=20251126)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")

    started = perf_counter()
    result: dict[str, Any] = {
        "benchmark": "append",
        "timestamp": C.now_iso(),
        "machine": C.machine_info(),
        "repo": C.repo_info(),
        "config": {
            "rounds": args.rounds,
            "target_seconds_per_measurement": args.seconds,
            "streams": N_STREAMS,
            "seed": args.seed,
        },
    }
    rng = random.Random(args.seed)
    streams = make_streams(rng)
    sample = [make_event(random.Random(i)) for i in range(200)]
    result["config"]["payload_bytes_avg"] = {
        "data": sum(len(json.dumps(d)) for _, d, _ in sample) / len(sample),
        "metadata": sum(len(json.dumps(m)) for _, _, m in sample) / len(sample),
    }

    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_append") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
            result["reference_table"] = {
                "indexes": conn.execute(
                    "SELECT schemaname || '.' || tablename, indexname, regexp_replace(indexdef, '^.* USING ', 'USING ') "
                    "FROM pg_indexes WHERE schemaname IN ('pyes', 'bench_raw') AND tablename LIKE 'events%' ORDER BY 1, 2"
                ).fetchall(),
                "triggers": conn.execute(
                    "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"
                ).fetchall(),
            }

        srv = result["server"]
        s = srv["settings"]
        print(f"pyes append benchmark  {result['timestamp']}")
        print(f"server: {srv['version']}")
        print(f"        {source}, {srv['connection']}")
        print(
            f"        fsync={s['fsync']} synchronous_commit={s['synchronous_commit']} wal_level={s['wal_level']} "
            f"shared_buffers={s['shared_buffers']} full_page_writes={s['full_page_writes']} "
            f"wal_sync_method={s['wal_sync_method']}"
        )
        m = result["machine"]
        print(
            f"client: {m['cpu_count']} CPUs, Python {m['python']}, psycopg {m['psycopg']} ({m['psycopg_impl']}), "
            f"libpq {m['libpq']}"
        )
        pb = result["config"]["payload_bytes_avg"]
        load = C.load_average()
        result["machine"]["load_average_at_start"] = load
        if load is not None and load[0] > 0.5 * (os.cpu_count() or 1):
            print(
                f"WARNING: load average {load[0]:.2f} on {os.cpu_count()} CPUs before the run: other work on this "
                "machine makes the figures noisy (the rounds interleave, so both sides share the noise)"
            )
        print(
            f"events: {N_STREAMS} streams round-robin, data ~{pb['data']:.0f} B, metadata ~{pb['metadata']:.0f} B of JSON"
        )

        bench = Bench(dsn, streams)
        try:
            shapes = bench.shapes()
            # Warm-up: creates the streams, prepares every statement (psycopg prepares after
            # 5 executions; pyes.append with prepare=True), fills plpgsql's plan caches, and
            # calibrates how many transactions one measurement takes.
            print("\nwarming up and calibrating ...", flush=True)
            for shape in shapes:
                for v in shape.variants:
                    ops = shape.template(rng, shape.warmup_ops)
                    shape.next_stream = (shape.next_stream - shape.warmup_ops) % N_STREAMS
                    half = shape.warmup_ops // 2
                    first, second = v.build(ops[:half]), v.build(ops[half:])
                    measure(v, first)
                    shape.calibration[v.key] = (shape.warmup_ops - half) / measure(v, second)[0]
                shape.next_stream = (shape.next_stream + shape.warmup_ops) % N_STREAMS
                slowest = min(shape.calibration.values())
                shape.ops = max(shape.step, math.ceil(args.seconds * slowest / shape.step) * shape.step)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "VACUUM (ANALYZE) pyes.events, pyes.streams, bench_raw.events, bench_raw.events_multi, "
                    "bench_raw.events_copy, bench_raw.floor_events, bench_raw.floor_stream_events, "
                    "bench_raw.floor_streams"
                )
                try:
                    conn.execute("CHECKPOINT")
                    result["checkpoint_before_rounds"] = True
                except psycopg.errors.InsufficientPrivilege:
                    result["checkpoint_before_rounds"] = False
            estimate = sum(args.rounds * shape.ops * sum(1 / r for r in shape.calibration.values()) for shape in shapes)
            for shape in shapes:
                print(f"  {shape.name:<16} {shape.ops} transactions x {shape.batch} events per measurement")
            print(f"  about {estimate:.0f} s of measurements in {args.rounds} rounds", flush=True)

            # Server backends whose CPU time /proc shows (a server on this machine only).
            with bench.store.pool.connection() as conn:
                backends = {"pyes": C.local_backend(conn)}
            backends["pyes_conn"] = C.local_backend(bench.pyes_conn)
            backends["reference"] = C.local_backend(bench.ref_conn)
            backends["reference_ac"] = C.local_backend(bench.ref_ac_conn)
            backends["floor"] = C.local_backend(bench.floor_conn)
            result["server_cpu_measured"] = all(b is not None for b in backends.values())
            for rnd in range(args.rounds):
                for shape in shapes:
                    order = order_of(len(shape.variants), rnd)
                    ops = shape.template(rng, shape.ops)
                    for position, index in enumerate(order):
                        v = shape.variants[index]
                        inputs = v.build(ops)
                        seconds, client_cpu, server_cpu = measure(v, inputs, backends[v.connection])
                        events = shape.ops * shape.batch
                        v.rounds.append(
                            {
                                "round": rnd + 1,
                                "position": position + 1,
                                "transactions": shape.ops,
                                "events": events,
                                "seconds": seconds,
                                "events_per_s": events / seconds,
                                "client_cpu_seconds": client_cpu,
                                "server_backend_cpu_seconds": server_cpu,
                            }
                        )
                line = "  ".join(
                    f"{sh.name.split()[0]}: "
                    + " ".join(f"{v.key}={v.rounds[-1]['events_per_s']:,.0f}" for v in sh.variants)
                    for sh in shapes
                )
                print(f"  round {rnd + 1}/{args.rounds}  {line}", flush=True)

            with psycopg.connect(dsn) as conn:
                result["checks"] = verify(conn, bench)
            with bench.store.pool.connection() as conn:
                result["prepared_statements"] = {"pyes pool connection": prepared(conn)}
            result["prepared_statements"]["pyes conn= connection"] = prepared(bench.pyes_conn)
            result["prepared_statements"]["reference connection"] = prepared(bench.ref_conn)
            result["prepared_statements"]["reference autocommit connection"] = prepared(bench.ref_ac_conn)
            result["prepared_statements"]["floor connection"] = prepared(bench.floor_conn)
        finally:
            bench.close()

    # -- report ------------------------------------------------------------------------------
    rows, cpu_rows, misses = [], [], []
    result["shapes"] = []
    for shape in shapes:
        by_key = {v.key: v for v in shape.variants}
        out_shape: dict[str, Any] = {
            "name": shape.name,
            "batch": shape.batch,
            "transactions_per_measurement": shape.ops,
            "calibration_ops_per_s": shape.calibration,
            "variants": {},
            "comparisons": [],
        }
        for v in shape.variants:
            rates = [r["events_per_s"] for r in v.rounds]
            wall = C.median([1e6 * r["seconds"] / r["transactions"] for r in v.rounds])
            client = C.median([1e6 * r["client_cpu_seconds"] / r["transactions"] for r in v.rounds])
            server = (
                C.median([1e6 * r["server_backend_cpu_seconds"] / r["transactions"] for r in v.rounds])
                if all(r["server_backend_cpu_seconds"] is not None for r in v.rounds)
                else None
            )
            out_shape["variants"][v.key] = {
                "label": v.label,
                "side": v.side,
                "table": v.table,
                "median_events_per_s": v.medians(),
                "min_events_per_s": min(rates),
                "max_events_per_s": max(rates),
                "median_us_per_transaction": {"wall": wall, "client_cpu": client, "server_backend_cpu": server},
                "rounds": v.rounds,
            }
            cpu_rows.append(
                [
                    shape.name,
                    v.label,
                    f"{wall:,.0f}",
                    f"{client:,.0f}",
                    f"{server:,.0f}" if server is not None else "n/a",
                    f"{wall / shape.batch:,.1f}",
                ]
            )
        for cmp in shape.comparisons:
            p, r = by_key[cmp.pyes], by_key[cmp.reference]
            ratio = p.medians() / r.medians()
            per_round = [a["events_per_s"] / b["events_per_s"] for a, b in zip(p.rounds, r.rounds)]
            if cmp.target is None:
                verdict = "report"
            elif ratio >= cmp.target:
                verdict = "PASS"
            else:
                verdict = "MISSED"
                misses.append(f"{shape.name}: {p.label} / {r.label} = {ratio:.2f} < {cmp.target}")
            out_shape["comparisons"].append(
                {
                    "pyes": cmp.pyes,
                    "reference": cmp.reference,
                    "note": cmp.note,
                    "pyes_median_events_per_s": p.medians(),
                    "reference_median_events_per_s": r.medians(),
                    "ratio": ratio,
                    "per_round_ratios": per_round,
                    "median_per_round_ratio": C.median(per_round),
                    "target": cmp.target,
                    "result": verdict,
                }
            )
            rows.append(
                [
                    shape.name,
                    p.label,
                    fmt_rate(p.medians()),
                    r.label,
                    fmt_rate(r.medians()),
                    f"{ratio:.2f}",
                    f"{min(per_round):.2f}-{max(per_round):.2f}",
                    f">= {cmp.target}" if cmp.target is not None else "-",
                    verdict,
                ]
            )
        result["shapes"].append(out_shape)
    result["misses"] = misses
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    C.write_json(args.output, result)

    print()
    print(
        C.table(
            ["shape", "pyes", "events/s", "reference", "events/s", "ratio", "rounds", "target", "result"],
            rows,
            [False, False, True, False, True, True, True, False, False],
        )
    )
    print(
        "\nevents/s: median of the rounds; ratio: pyes median / reference median; "
        "rounds: range of the per-round ratios."
    )
    print("\nWhere the time goes, microseconds per transaction (medians of the rounds):")
    print(
        C.table(
            ["shape", "variant", "wall", "client CPU", "server CPU", "wall/event"],
            cpu_rows,
            [False, False, True, True, True, True],
        )
    )
    print(
        "client CPU: this Python process; server CPU: the connection's backend (from /proc, a local server only);\n"
        "the rest of the wall time is waiting: round trips, WAL flush at commit, scheduling."
    )
    for miss in misses:
        print(f"MISSED  {miss}")
    print(
        f"\nchecks passed: every table holds exactly the events written, versions 1..n per stream; "
        f"{time.strftime('%H:%M:%S')}, {result['total_seconds']:.0f} s in all"
    )
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
