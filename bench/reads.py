"""Reading through pyes against plain SELECTs on pyes.events, in one run on one server.

    python bench/reads.py
    PYES_DATABASE_URL=postgresql://... python bench/reads.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it (pyes.migrate.upgrade), fills it with about
200,000 events over 1,000 streams (batched appends of 100 events) plus one 1,000-event
stream, and drops it at the end.

Cases, each pyes against a plain SELECT of the same rows and the same columns (the plain
side lacks only pyes's computed ``checkpoint`` text column):

  stream  EventStore.read_stream(stream, max_count=1000) of the 1,000-event stream, against
          SELECT <columns> FROM pyes.events WHERE stream_id = %s ORDER BY version, fetchall.
  all     EventStore.read_all(after=checkpoint, max_count=1000) page after page (--pages pages
          per measurement, from a first page that moves across the table from round to round), against keyset pages SELECT <columns> FROM pyes.events WHERE position > %s
          ORDER BY position LIMIT 1000. Target: pyes >= 0.7 x plain.

Each case is measured at three levels, to say where the time goes:

  full    what an application gets: psycopg fetchall into tuples (plain) or RecordedEvent
          objects (pyes), JSON decoded into dicts on both sides by the same function
          (pyes.jsonio.loads: orjson, json.loads for what orjson would read otherwise).
  wire    the same statement through libpq only (PGconn.exec_params, text results): server
          execution, output functions and transfer, but no Python decoding.
  server  SELECT count(*) over the same page: server execution only, no output functions,
          no transfer (the page keys, checkpoints or positions, come from an earlier pass).

Rounds interleave pyes and plain (who goes first alternates); a figure is the median
events/s of the rounds. Exits non-zero if anything fails; a missed target is printed as
MISSED but is not a failure. Writes bench/results/reads.json.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes import EventStore, NewEvent, jsonio
from pyes.migrate import upgrade
from pyes.records import RECORDED_COLUMNS

N_STREAMS = 1000
EVENTS_PER_STREAM = 200
BATCH = 100
APPENDS_PER_TX = 10  # the build commits 10 appends (1,000 events) at a time
LONG_STREAM_EVENTS = 1000
PAGE = 1000
TARGET_ALL = 0.7

# The columns pyes returns (RECORDED_COLUMNS) minus the computed checkpoint.
PLAIN_COLUMNS = (
    "position, event_id, stream_id, category, version, type, schema_version, data, metadata, "
    "correlation_id, causation_id, recorded_at, transaction_id::text::bigint"
)
assert RECORDED_COLUMNS == PLAIN_COLUMNS + ", checkpoint"

PLAIN_STREAM = f"SELECT {PLAIN_COLUMNS} FROM pyes.events WHERE stream_id = %s ORDER BY version"
PLAIN_PAGE = f"SELECT {PLAIN_COLUMNS} FROM pyes.events WHERE position > %s ORDER BY position LIMIT {PAGE}"
# wire level: the statements pyes and the plain side send, with $n placeholders for libpq.
WIRE_PYES_STREAM = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_stream($1, $2, $3, $4)".encode()
WIRE_PLAIN_STREAM = PLAIN_STREAM.replace("%s", "$1").encode()
WIRE_PYES_PAGE = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_all($1, $2, $3)".encode()
WIRE_PLAIN_PAGE = PLAIN_PAGE.replace("%s", "$1").encode()
# server level: count(*) of the same rows.
COUNT_PYES_STREAM = "SELECT count(*) FROM pyes.read_stream(%s, NULL, 1000, 'forward')"
COUNT_PLAIN_STREAM = f"SELECT count(*) FROM ({PLAIN_STREAM}) x"
COUNT_PYES_PAGE = f"SELECT count(*) FROM pyes.read_all(%s, {PAGE})"
COUNT_PLAIN_PAGE = f"SELECT count(*) FROM ({PLAIN_PAGE}) x"


def make_event(rng: random.Random) -> NewEvent:
    kind, data, metadata = C.payload(rng)
    return NewEvent(kind, data, metadata, id=uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Variant:
    case: str  # "stream" or "all"
    level: str  # "full", "wire", "server"
    side: str  # "pyes" or "plain"
    label: str
    run: Callable[[], int]  # returns the number of events read
    backend: int | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def median_rate(self) -> float:
        return C.median([r["events_per_s"] for r in self.rounds])


def measure(v: Variant, expected: int) -> dict[str, Any]:
    gc.collect()
    s0 = C.backend_cpu(v.backend)
    c0 = process_time()
    t0 = perf_counter()
    events = v.run()
    t1 = perf_counter()
    c1 = process_time()
    s1 = C.backend_cpu(v.backend)
    if events != expected:
        raise AssertionError(f"{v.case}/{v.level}/{v.side}: read {events} events, expected {expected}")
    seconds = t1 - t0
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "client_cpu_seconds": c1 - c0,
        "server_backend_cpu_seconds": s1 - s0 if s0 is not None and s1 is not None else None,
    }


def wire_rows(conn: psycopg.Connection[Any], query: bytes, params: list[bytes | None]) -> int:
    """Run ``query`` through libpq alone (text results, nothing decoded in Python)."""
    res = conn.pgconn.exec_params(query, params, result_format=0)
    if res.status != psycopg.pq.ExecStatus.TUPLES_OK:
        raise RuntimeError(f"{query[:60]!r}: {res.error_message.decode(errors='replace')}")
    n = res.ntuples
    res.clear()
    return n


def build(store: EventStore, rng: random.Random) -> tuple[str, int]:
    """Append EVENTS_PER_STREAM events to each of N_STREAMS streams in batches of BATCH,
    round-robin (so the global order interleaves the streams), then the long stream."""
    streams = C.stream_ids(rng, N_STREAMS)
    total = 0
    for _ in range(EVENTS_PER_STREAM // BATCH):
        for first in range(0, N_STREAMS, APPENDS_PER_TX):
            with store.connection() as conn:
                for s in streams[first : first + APPENDS_PER_TX]:
                    store.append(s, [make_event(rng) for _ in range(BATCH)], conn=conn)
                    total += BATCH
    long_stream = f"ledger-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    for _ in range(LONG_STREAM_EVENTS // BATCH):
        store.append(long_stream, [make_event(rng) for _ in range(BATCH)])
        total += BATCH
    return long_stream, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--stream-reads", type=int, default=40, help="1,000-event stream reads per measurement")
    parser.add_argument("--pages", type=int, default=50, help="pages of 1,000 per read_all measurement")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "reads.json")
    parser.add_argument("--seed", type=int, default=20251127)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.stream_reads < 1 or args.pages < 1:
        parser.error("--rounds, --stream-reads and --pages must be >= 1")

    started = perf_counter()
    result: dict[str, Any] = {
        "benchmark": "reads",
        "timestamp": C.now_iso(),
        "machine": C.machine_info(),
        "repo": C.repo_info(),
        "config": {
            "rounds": args.rounds,
            "stream_reads_per_measurement": args.stream_reads,
            "read_all_pages_per_measurement": args.pages,
            "streams": N_STREAMS,
            "events_per_stream": EVENTS_PER_STREAM,
            "append_batch": BATCH,
            "long_stream_events": LONG_STREAM_EVENTS,
            "page": PAGE,
            "seed": args.seed,
        },
        "statements": {
            "pyes_read_stream": "EventStore.read_stream(stream, max_count=1000)",
            "plain_read_stream": PLAIN_STREAM,
            "pyes_read_all": f"EventStore.read_all(after=checkpoint, max_count={PAGE})",
            "plain_read_all": PLAIN_PAGE,
            "wire": [
                WIRE_PYES_STREAM.decode(),
                WIRE_PLAIN_STREAM.decode(),
                WIRE_PYES_PAGE.decode(),
                WIRE_PLAIN_PAGE.decode(),
            ],
            "server": [COUNT_PYES_STREAM, COUNT_PLAIN_STREAM, COUNT_PYES_PAGE, COUNT_PLAIN_PAGE],
        },
        "note": "The plain side selects the columns pyes returns minus the computed checkpoint text.",
    }
    rng = random.Random(args.seed)
    result["machine"]["load_average_at_start"] = C.load_average()

    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_reads") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
        upgrade(dsn)
        srv = result["server"]
        s = srv["settings"]
        m = result["machine"]
        print(f"pyes reads benchmark  {result['timestamp']}")
        print(f"server: {srv['version']}")
        print(f"        {source}, {srv['connection']}")
        print(f"        shared_buffers={s['shared_buffers']} jit={s['jit']} autovacuum={s['autovacuum']}")
        print(
            f"client: {m['cpu_count']} CPUs, Python {m['python']}, psycopg {m['psycopg']} ({m['psycopg_impl']}), libpq {m['libpq']}"
        )

        with EventStore(dsn, min_size=1, max_size=1) as store, psycopg.connect(dsn, autocommit=True) as plain:
            jsonio.configure(plain)  # the plain side decodes json with the same function as pyes
            t0 = perf_counter()
            long_stream, total = build(store, rng)
            result["build_seconds"] = perf_counter() - t0
            result["events_total"] = total
            print(f"\nbuilt {total:,} events in {result['build_seconds']:.1f} s", flush=True)
            plain.execute("VACUUM (ANALYZE) pyes.events, pyes.streams")
            try:
                plain.execute("CHECKPOINT")
                result["checkpoint_before_rounds"] = True
            except psycopg.errors.InsufficientPrivilege:
                result["checkpoint_before_rounds"] = False
            row = plain.execute("SELECT count(*) FROM pyes.events").fetchone()
            if row is None or row[0] != total:
                raise AssertionError(f"pyes.events holds {row}, expected {total}")

            # -- the page keys and the checks, outside the timed region ---------------------
            got = store.read_stream(long_stream, max_count=LONG_STREAM_EVENTS)
            ref = plain.execute(PLAIN_STREAM, (long_stream,)).fetchall()
            if [tuple(getattr(e, f) for f in e.__slots__[:-1]) for e in got] != ref or len(ref) != LONG_STREAM_EVENTS:
                raise AssertionError("read_stream and the plain SELECT disagree")
            checkpoints: list[str | None] = [None]
            pyes_positions: list[int] = []
            while True:
                page = store.read_all(after=checkpoints[-1], max_count=PAGE)
                if not page:
                    break
                pyes_positions += [e.position for e in page]
                checkpoints.append(page[-1].checkpoint)
            positions: list[int] = [0]
            plain_positions: list[int] = []
            while True:
                keyset = plain.execute(PLAIN_PAGE, (positions[-1],)).fetchall()
                if not keyset:
                    break
                plain_positions += [r[0] for r in keyset]
                positions.append(keyset[-1][0])
            if pyes_positions != plain_positions or len(plain_positions) != total:
                raise AssertionError("read_all pages and the plain keyset pages disagree")
            result["checks"] = {
                "read_stream_equals_plain": True,
                "read_all_same_events_same_order": True,
                "pages": len(checkpoints) - 1,
            }
            checkpoints.pop()  # the last key gives an empty page
            positions.pop()
            n_pages = len(positions)
            pages = min(args.pages, n_pages)
            page_sizes = [min(PAGE, total - i * PAGE) for i in range(n_pages)]
            # Each round's read_all measurements read the same `pages` pages on both sides,
            # starting at a page that moves from round to round across the whole table.
            window = {"start": 0}

            # -- the variants ----------------------------------------------------------------
            stream_b = long_stream.encode()

            def full_pyes_stream() -> int:
                return sum(len(store.read_stream(long_stream, max_count=1000)) for _ in range(args.stream_reads))

            def full_plain_stream() -> int:
                return sum(
                    len(plain.execute(PLAIN_STREAM, (long_stream,)).fetchall()) for _ in range(args.stream_reads)
                )

            def full_pyes_all() -> int:
                n, after = 0, checkpoints[window["start"]]
                for _ in range(pages):
                    page = store.read_all(after=after, max_count=PAGE)
                    n += len(page)
                    after = page[-1].checkpoint
                return n

            def full_plain_all() -> int:
                n, after = 0, positions[window["start"]]
                for _ in range(pages):
                    rows = plain.execute(PLAIN_PAGE, (after,)).fetchall()
                    n += len(rows)
                    after = rows[-1][0]
                return n

            def window_keys(keys: list[Any]) -> list[Any]:
                return keys[window["start"] : window["start"] + pages]

            with store.pool.connection() as pconn:
                pyes_backend = C.local_backend(pconn)
                pyes_raw = pconn  # the pool holds one connection: the same one store uses
            plain_backend = C.local_backend(plain)

            def wire_pyes_stream() -> int:
                params: list[bytes | None] = [stream_b, None, b"1000", b"forward"]
                return sum(wire_rows(pyes_raw, WIRE_PYES_STREAM, params) for _ in range(args.stream_reads))

            def wire_plain_stream() -> int:
                return sum(wire_rows(plain, WIRE_PLAIN_STREAM, [stream_b]) for _ in range(args.stream_reads))

            def wire_pyes_all() -> int:
                limit = str(PAGE).encode()
                return sum(
                    wire_rows(pyes_raw, WIRE_PYES_PAGE, [c.encode() if c else None, limit, None])
                    for c in window_keys(checkpoints)
                )

            def wire_plain_all() -> int:
                return sum(wire_rows(plain, WIRE_PLAIN_PAGE, [str(p).encode()]) for p in window_keys(positions))

            def count(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> int:
                r = conn.execute(query, params).fetchone()
                assert r is not None
                return int(r[0])

            def server_pyes_stream() -> int:
                return sum(count(pyes_raw, COUNT_PYES_STREAM, (long_stream,)) for _ in range(args.stream_reads))

            def server_plain_stream() -> int:
                return sum(count(plain, COUNT_PLAIN_STREAM, (long_stream,)) for _ in range(args.stream_reads))

            def server_pyes_all() -> int:
                return sum(count(pyes_raw, COUNT_PYES_PAGE, (c,)) for c in window_keys(checkpoints))

            def server_plain_all() -> int:
                return sum(count(plain, COUNT_PLAIN_PAGE, (p,)) for p in window_keys(positions))

            def all_expected() -> int:
                return sum(page_sizes[window["start"] : window["start"] + pages])

            pairs: list[tuple[Variant, Variant, float | None, Callable[[], int]]] = []
            stream_events = args.stream_reads * LONG_STREAM_EVENTS

            def stream_expected() -> int:
                return int(stream_events)

            for case, level, fp, fr, expected, target in (
                ("stream", "full", full_pyes_stream, full_plain_stream, stream_expected, None),
                ("stream", "wire", wire_pyes_stream, wire_plain_stream, stream_expected, None),
                ("stream", "server", server_pyes_stream, server_plain_stream, stream_expected, None),
                ("all", "full", full_pyes_all, full_plain_all, all_expected, TARGET_ALL),
                ("all", "wire", wire_pyes_all, wire_plain_all, all_expected, None),
                ("all", "server", server_pyes_all, server_plain_all, all_expected, None),
            ):
                pairs.append(
                    (
                        Variant(case, level, "pyes", f"pyes {case}", fp, pyes_backend),
                        Variant(case, level, "plain", f"plain {case}", fr, plain_backend),
                        target,
                        expected,
                    )
                )
            result["server_cpu_measured"] = pyes_backend is not None and plain_backend is not None

            # Warm-up: psycopg prepares a statement after its 5th execution, on both sides;
            # this runs every statement more often than that and warms the caches.
            print("warming up ...", flush=True)
            for p, r, _, expected in pairs:
                for _ in range(6 if p.case == "stream" else 1):
                    measure(p, expected())
                    measure(r, expected())
            for rnd in range(args.rounds):
                window["start"] = (rnd * pages) % (n_pages - pages + 1)
                line = []
                for p, r, _, expected in pairs:
                    order = (p, r) if (rnd + (p.level == "wire")) % 2 == 0 else (r, p)
                    for position, v in enumerate(order):
                        v.rounds.append(
                            {
                                "round": rnd + 1,
                                "position": position + 1,
                                "first_page": window["start"],
                                **measure(v, expected()),
                            }
                        )
                    line.append(f"{p.case}/{p.level} {p.rounds[-1]['events_per_s'] / r.rounds[-1]['events_per_s']:.2f}")
                print(f"  round {rnd + 1}/{args.rounds}  pyes/plain: " + "  ".join(line), flush=True)
            result["prepared_statements"] = {
                "pyes": pyes_raw.execute(
                    "SELECT left(statement, 90) FROM pg_prepared_statements ORDER BY 1"
                ).fetchall(),
                "plain": plain.execute("SELECT left(statement, 90) FROM pg_prepared_statements ORDER BY 1").fetchall(),
            }

    # -- report ----------------------------------------------------------------------------
    rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []
    misses: list[str] = []
    result["comparisons"] = []
    for p, r, target, _ in pairs:
        ratio = p.median_rate() / r.median_rate()
        per_round = [a["events_per_s"] / b["events_per_s"] for a, b in zip(p.rounds, r.rounds)]
        if target is None:
            verdict = "report"
        elif ratio >= target:
            verdict = "PASS"
        else:
            verdict = "MISSED"
            misses.append(f"{p.case}/{p.level}: pyes / plain = {ratio:.2f} < {target}")
        variants = {}
        for v in (p, r):
            per_k = [1000 / rd["events"] for rd in v.rounds]
            wall = C.median([1e3 * rd["seconds"] * k for rd, k in zip(v.rounds, per_k)])
            client = C.median([1e3 * rd["client_cpu_seconds"] * k for rd, k in zip(v.rounds, per_k)])
            server = (
                C.median([1e3 * rd["server_backend_cpu_seconds"] * k for rd, k in zip(v.rounds, per_k)])
                if all(rd["server_backend_cpu_seconds"] is not None for rd in v.rounds)
                else None
            )
            variants[v.side] = {
                "median_events_per_s": v.median_rate(),
                "median_ms_per_1000_events": {"wall": wall, "client_cpu": client, "server_backend_cpu": server},
                "rounds": v.rounds,
            }
            cpu_rows.append(
                [
                    f"{v.case}/{v.level}",
                    v.side,
                    f"{wall:.2f}",
                    f"{client:.2f}",
                    f"{server:.2f}" if server is not None else "n/a",
                ]
            )
        result["comparisons"].append(
            {
                "case": p.case,
                "level": p.level,
                "variants": variants,
                "ratio": ratio,
                "per_round_ratios": per_round,
                "target": target,
                "result": verdict,
            }
        )
        rows.append(
            [
                p.case,
                p.level,
                f"{p.median_rate():,.0f}",
                f"{r.median_rate():,.0f}",
                f"{ratio:.2f}",
                f"{min(per_round):.2f}-{max(per_round):.2f}",
                f">= {target}" if target is not None else "-",
                verdict,
            ]
        )
    result["misses"] = misses
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    C.write_json(args.output, result)

    print()
    print(
        C.table(
            ["case", "level", "pyes ev/s", "plain ev/s", "ratio", "rounds", "target", "result"],
            rows,
            [False, False, True, True, True, True, False, False],
        )
    )
    print(
        f"\nstream: read_stream of a 1,000-event stream; all: read_all, {pages} pages of 1,000 per measurement, of "
        f"{result['events_total']:,} events.\nfull: into Python objects; wire: libpq only, no Python decoding; "
        "server: SELECT count(*) of each page.\nevents/s: median of the rounds; ratio: pyes / plain; "
        "rounds: range of the per-round ratios. The plain side lacks only the checkpoint column."
    )
    print("\nWhere the time goes, ms per 1,000 events (medians of the rounds):")
    print(
        C.table(["case/level", "side", "wall", "client CPU", "server CPU"], cpu_rows, [False, False, True, True, True])
    )
    print("client CPU: this process; server CPU: the connection's backend (/proc, a local server only).")
    for miss in misses:
        print(f"MISSED  {miss}")
    print(f"\nchecks passed; {time.strftime('%H:%M:%S')}, {result['total_seconds']:.0f} s in all")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
