"""Loading an aggregate with and without snapshots, against the raw read of the same events.

    python bench/snapshots.py
    PYES_DATABASE_URL=postgresql://... python bench/snapshots.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it (pyes.migrate.upgrade), and drops it at the end.

Streams: one BankAccount (examples/bank.py) per size, of 10, 100, 1,000, 10,000 and 100,000
events: an AccountOpened, then deposits. They are appended in batches of up to 1,000 events
(pyes.EventStore.append of NewEvents from pyes.typed.registry.to_new_event), each batch in one
transaction with the snapshots that fall in it: one every 100 events, as
Repository(snapshot_every=100) writes them (pyes.EventStore.save_snapshot of the state at
that version, computed while building). One more stream of 100,099 events is the worst case of
a snapshot every 100: its latest snapshot is at 100,000, so loading it replays 99 events.

Measured on each stream, on one connection (a store with a pool of one), interleaved in an
order shuffled every round:

  snap  Repository(store, BankAccount).load(id)                      (use_snapshots=True)
  full  Repository(store, BankAccount).load(id, use_snapshots=False) (replays every event)
  read  the store reads that full makes, without decoding or applying: in one transaction,
        EventStore.read_stream(stream, from_version=..., max_count=1000) page after page
  raw   SELECT data FROM pyes.events WHERE stream_id = %s ORDER BY version, fetchall, as one
        autocommit statement: the raw read cost of the same events

A warm-up runs every case (psycopg prepares a statement after its 5th run) and sets how many
calls one measurement makes (about --batch-seconds, 1 to 100). Each call is timed on its own
(gc stays on: collections are part of the cost, but gc.collect() runs before each
measurement); a case's figure is the median of all its calls over all rounds. The JSON keeps
each round's median, min, max and mean, and the CPU time of this process and of the server
backend (from /proc, a local server only) over each measurement. Every timed load is
checked (version and balance) after its clock stops; at the end, loading with and without
snapshots must give identical snapshot_state() for every stream, equal to the state computed
while building, and the snapshot path must replay only the events after the latest snapshot.

Writes every figure to bench/results/snapshots.json. Exits non-zero if anything fails.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes import Aggregate, EventStore, Repository
from pyes.migrate import upgrade
from pyes.typed import registry

# The demo's bank domain. examples/ is no package: put it on the path and import it by name
# (importlib, so that the type checker need not find it).
sys.path.insert(0, str(C.REPO / "examples"))
_bank = importlib.import_module("bank")
BankAccount: type[Aggregate] = _bank.BankAccount
AccountOpened: Any = _bank.AccountOpened
AccountBalanceDeposited: Any = _bank.AccountBalanceDeposited

SIZES = (10, 100, 1_000, 10_000, 100_000)
SNAPSHOT_EVERY = 100
WORST_CASE = 100_000 + SNAPSHOT_EVERY - 1  # the latest snapshot 99 events behind the head
BATCH = 1_000  # events per append, and the page size of Repository.load
RAW_SQL = "SELECT data FROM pyes.events WHERE stream_id = %s ORDER BY version"

VARIANTS = ("snap", "full", "read", "raw")
VARIANT_LABELS = {
    "snap": "Repository.load(id)",
    "full": "Repository.load(id, use_snapshots=False)",
    "read": "EventStore.read_stream pages of 1000 in one transaction, no decoding",
    "raw": "SELECT data FROM pyes.events WHERE stream_id = %s ORDER BY version",
}


@dataclass
class Stream:
    events: int
    aggregate_id: str
    stream_id: str
    snapshots: int = 0
    latest_snapshot: int = 0
    expected_state: dict[str, Any] = field(default_factory=dict)
    expected_balance: Decimal = Decimal(0)

    @property
    def label(self) -> str:
        return f"{self.events:,}"


@dataclass
class Case:
    stream: Stream
    variant: str
    calls: int = 1  # timed calls per measurement, set by the warm-up
    seconds: list[float] = field(default_factory=list)  # every timed call, all rounds
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def median(self) -> float:
        return C.median(self.seconds)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def balance_of(account: Aggregate) -> Decimal:
    """A BankAccount's balance (the attribute that the base class does not declare)."""
    balance = vars(account)["balance"]
    assert isinstance(balance, Decimal)
    return balance


def deposit(version: int) -> Any:
    """The deposit that is event ``version`` of a stream: 0.01 to 9.97, varying."""
    return AccountBalanceDeposited(Decimal(version % 997 + 1) / 100)


def build(store: EventStore, stream: Stream) -> float:
    """Append the stream's events in batches of up to BATCH, each in one transaction with its
    snapshots; record the expected final state. Returns the seconds it took."""
    started = perf_counter()
    state = BankAccount(stream.aggregate_id)  # the state, kept up to date event by event
    version = 0
    while version < stream.events:
        events, snapshots = [], []
        for _ in range(min(BATCH, stream.events - version)):
            version += 1
            event = AccountOpened("bench", "EUR") if version == 1 else deposit(version)
            state.apply(event)
            events.append(registry.to_new_event(event))
            if version % SNAPSHOT_EVERY == 0:
                snapshots.append((version, state.snapshot_state()))
        with store.connection() as conn:
            result = store.append(stream.stream_id, events, version - len(events), conn=conn)
            if result.stream_version != version:
                raise AssertionError(f"{stream.stream_id}: appended up to {result.stream_version}, expected {version}")
            for at, snapshot in snapshots:
                store.save_snapshot(stream.stream_id, BankAccount.aggregate_type, BankAccount.snapshot_schema_version,
                                    at, snapshot, conn=conn)
        stream.snapshots += len(snapshots)
        if snapshots:
            stream.latest_snapshot = snapshots[-1][0]
    state.version = version
    stream.expected_state = state.snapshot_state()
    stream.expected_balance = balance_of(state)
    return perf_counter() - started


class Bench:
    def __init__(self, dsn: str) -> None:
        # One connection for everything, so that every case runs on the same backend with
        # the same prepared statements and caches.
        self.store = EventStore(dsn, min_size=1, max_size=1)
        self.repo: Repository[Aggregate] = Repository(self.store, BankAccount)

    def close(self) -> None:
        self.store.close()

    def runner(self, case: Case) -> Callable[[], Callable[[], None]]:
        """A function that makes one timed call and returns the (untimed) check of its result."""
        stream, repo, store = case.stream, self.repo, self.store

        def check_aggregate(agg: Aggregate) -> Callable[[], None]:
            def check() -> None:
                if agg.version != stream.events or balance_of(agg) != stream.expected_balance:
                    raise AssertionError(f"{case.variant} {stream.stream_id}: version {agg.version}, "
                                         f"balance {balance_of(agg)}; expected {stream.events}, "
                                         f"{stream.expected_balance}")
            return check

        def check_count(n: int) -> Callable[[], None]:
            def check() -> None:
                if n != stream.events:
                    raise AssertionError(f"{case.variant} {stream.stream_id}: read {n} events, expected {stream.events}")
            return check

        if case.variant == "snap":
            return lambda: check_aggregate(repo.load(stream.aggregate_id))
        if case.variant == "full":
            return lambda: check_aggregate(repo.load(stream.aggregate_id, use_snapshots=False))
        if case.variant == "read":
            def read() -> Callable[[], None]:
                n = 0
                with store.connection() as conn:
                    while True:
                        page = store.read_stream(stream.stream_id, from_version=n + 1, max_count=BATCH, conn=conn)
                        n += len(page)
                        if len(page) < BATCH:
                            break
                return check_count(n)
            return read
        if case.variant == "raw":
            def raw() -> Callable[[], None]:
                with store.pool.connection() as conn:
                    rows = conn.execute(RAW_SQL, (stream.stream_id,)).fetchall()
                return check_count(len(rows))
            return raw
        raise ValueError(case.variant)


def measure(case: Case, run: Callable[[], Callable[[], None]], backend: int | None) -> dict[str, Any]:
    """``case.calls`` timed calls; each call's result is checked after its clock stops."""
    gc.collect()
    s0 = C.backend_cpu(backend)
    c0 = time.process_time()
    times = []
    for _ in range(case.calls):
        t0 = perf_counter()
        check = run()
        times.append(perf_counter() - t0)
        check()
    client = time.process_time() - c0
    s1 = C.backend_cpu(backend)
    case.seconds.extend(times)
    return {
        "calls": case.calls,
        "median_seconds": C.median(times),
        "min_seconds": min(times),
        "max_seconds": max(times),
        "mean_seconds": sum(times) / len(times),
        # Over the whole measurement (checks included, a negligible part); /proc counts in ticks.
        "client_cpu_seconds": client,
        "server_backend_cpu_seconds": s1 - s0 if s0 is not None and s1 is not None else None,
    }


class CountingRepository(Repository[Aggregate]):
    """A repository that counts the events its loads apply (for the checks, not timed)."""

    applied = 0

    def _apply(self, aggregate: Any, row: tuple[Any, ...], use_snapshots: bool, conn: Any) -> None:
        self.applied += 1
        super()._apply(aggregate, row, use_snapshots, conn)


def verify(dsn: str, streams: list[Stream]) -> dict[str, Any]:
    """Raises unless every stream holds what was built, and loading with and without snapshots
    gives the same state, the one computed while building, replaying what it should."""
    checks: dict[str, Any] = {}
    with EventStore(dsn, min_size=1, max_size=2) as store, store.pool.connection() as conn:
        repo = CountingRepository(store, BankAccount)
        for s in streams:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pyes.events WHERE stream_id = %(s)s),"
                " (SELECT min(version) FROM pyes.events WHERE stream_id = %(s)s),"
                " (SELECT max(version) FROM pyes.events WHERE stream_id = %(s)s),"
                " (SELECT version FROM pyes.streams WHERE stream_id = %(s)s),"
                " (SELECT count(*) FROM pyes.snapshots WHERE stream_id = %(s)s),"
                " (SELECT max(version) FROM pyes.snapshots WHERE stream_id = %(s)s),"
                " (SELECT count(*) FROM pyes.snapshots WHERE stream_id = %(s)s AND version %% %(every)s <> 0)",
                {"s": s.stream_id, "every": SNAPSHOT_EVERY},
            ).fetchone()
            assert row is not None
            repo.applied = 0
            with_snap = repo.load(s.aggregate_id)
            replayed_snap = repo.applied
            repo.applied = 0
            without = repo.load(s.aggregate_id, use_snapshots=False)
            replayed_full = repo.applied
            expected_replay = s.events - s.latest_snapshot
            check = {
                "events": row[0],
                "versions": [row[1], row[2]],
                "streams_version": row[3],
                "snapshots": row[4],
                "latest_snapshot": row[5],
                "snapshots_off_grid": row[6],
                "replayed_with_snapshots": replayed_snap,
                "replayed_without_snapshots": replayed_full,
                "state_with_snapshots": with_snap.snapshot_state(),
                "state_without_snapshots": without.snapshot_state(),
            }
            checks[s.stream_id] = check
            ok = (
                row[0] == s.events and row[1] == 1 and row[2] == s.events and row[3] == s.events
                and row[4] == s.events // SNAPSHOT_EVERY and row[4] == s.snapshots
                and (row[5] or 0) == s.latest_snapshot and row[6] == 0
                and with_snap.version == without.version == s.events
                and with_snap.snapshot_state() == without.snapshot_state() == s.expected_state
                and replayed_snap == expected_replay and replayed_full == s.events
            )
            if not ok:
                raise AssertionError(f"{s.stream_id}: {check}, expected {s.events} events, state {s.expected_state}, "
                                     f"{expected_replay} replayed with snapshots")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--batch-seconds", type=float, default=0.08,
                        help="target duration of one measurement of one case (default 0.08)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "snapshots.json")
    parser.add_argument("--seed", type=int, default=20251126)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.batch_seconds <= 0:
        parser.error("--rounds must be >= 1 and --batch-seconds > 0")

    started = perf_counter()
    if BankAccount.aggregate_type != "BankAccount" or BankAccount.snapshot_schema_version != 1:
        raise AssertionError("BankAccount's snapshot kind is not (BankAccount, 1)")
    result: dict[str, Any] = {
        "benchmark": "snapshots",
        "timestamp": C.now_iso(),
        "machine": C.machine_info(),
        "repo": C.repo_info(),
        "config": {
            "sizes": list(SIZES),
            "worst_case_stream": WORST_CASE,
            "snapshot_every": SNAPSHOT_EVERY,
            "append_batch": BATCH,
            "rounds": args.rounds,
            "target_seconds_per_measurement": args.batch_seconds,
            "seed": args.seed,
            "variants": VARIANT_LABELS,
        },
    }
    rng = random.Random(args.seed)
    streams = [Stream(n, f"n{n}", f"{BankAccount.category}-n{n}") for n in (*SIZES, WORST_CASE)]
    worst = streams[-1]

    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_snapshots") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
        upgrade(dsn)

        srv, m = result["server"], result["machine"]
        s = srv["settings"]
        print(f"pyes snapshot benchmark  {result['timestamp']}")
        print(f"server: {srv['version']}")
        print(f"        {source}, {srv['connection']}")
        print(f"        shared_buffers={s['shared_buffers']} jit={s['jit']} fsync={s['fsync']} "
              f"synchronous_commit={s['synchronous_commit']}")
        print(f"client: {m['cpu_count']} CPUs, Python {m['python']}, psycopg {m['psycopg']} ({m['psycopg_impl']}), "
              f"libpq {m['libpq']}")
        load = C.load_average()
        result["machine"]["load_average_at_start"] = load
        if load is not None and load[0] > 0.5 * (os.cpu_count() or 1):
            print(f"WARNING: load average {load[0]:.2f} on {os.cpu_count()} CPUs before the run: other work on this "
                  "machine makes the figures noisy (the cases interleave, so all of them share the noise)")

        bench = Bench(dsn)
        try:
            print("\nbuilding streams (batches of 1,000 events, a snapshot every 100) ...", flush=True)
            result["build"] = {}
            for st in streams:
                seconds = build(bench.store, st)
                result["build"][st.stream_id] = {"events": st.events, "snapshots": st.snapshots, "seconds": seconds,
                                                 "events_per_s": st.events / seconds}
                print(f"  {st.label:>7} events, {st.snapshots:>5,} snapshots: {seconds:6.2f} s "
                      f"({st.events / seconds:,.0f} events/s)", flush=True)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) pyes.events, pyes.streams, pyes.snapshots")
                try:
                    conn.execute("CHECKPOINT")
                    result["checkpoint_before_rounds"] = True
                except psycopg.errors.InsufficientPrivilege:
                    result["checkpoint_before_rounds"] = False
                sizes = conn.execute(
                    "SELECT pg_total_relation_size('pyes.events'), pg_total_relation_size('pyes.snapshots')"
                ).fetchone()
                assert sizes is not None
                result["relation_bytes"] = {"pyes.events": sizes[0], "pyes.snapshots": sizes[1]}

            cases = [Case(st, v) for st in streams for v in VARIANTS if st is not worst or v == "snap"]
            runners = {id(c): bench.runner(c) for c in cases}
            with bench.store.pool.connection() as conn:
                backend = C.local_backend(conn)
            result["server_cpu_measured"] = backend is not None

            # Warm-up: every case 6 times, or for 0.5 s and at least twice (all cases share
            # the statements, so each runs past psycopg's prepare threshold of 5), then the
            # number of calls per measurement from the median of its runs after the first.
            print("\nwarming up and calibrating ...", flush=True)
            calibration: dict[str, float] = {}
            for case in cases:
                begun = perf_counter()
                runs: list[float] = []
                while len(runs) < 6 and (len(runs) < 2 or perf_counter() - begun < 0.5):
                    t0 = perf_counter()
                    runners[id(case)]()()
                    runs.append(perf_counter() - t0)
                typical = C.median(runs[1:])
                case.calls = max(1, min(100, round(args.batch_seconds / typical)))
                calibration[f"{case.stream.events} {case.variant}"] = typical
            result["calibration_seconds_per_call"] = calibration
            estimate = args.rounds * sum(c.calls * calibration[f"{c.stream.events} {c.variant}"] for c in cases)
            print(f"  {len(cases)} cases, about {estimate:.0f} s of measurements in {args.rounds} rounds", flush=True)

            for rnd in range(args.rounds):
                order = list(cases)
                rng.shuffle(order)
                for position, case in enumerate(order):
                    figures = measure(case, runners[id(case)], backend)
                    figures.update({"round": rnd + 1, "position": position + 1})
                    case.rounds.append(figures)
                by = {(c.stream.events, c.variant): c for c in cases}
                print(f"  round {rnd + 1}/{args.rounds}: load 100,000 with snapshots "
                      f"{1e3 * by[(100_000, 'snap')].rounds[-1]['median_seconds']:.2f} ms, without "
                      f"{1e3 * by[(100_000, 'full')].rounds[-1]['median_seconds']:,.0f} ms; "
                      f"load 100 without {1e3 * by[(100, 'full')].rounds[-1]['median_seconds']:.2f} ms", flush=True)

            result["checks"] = verify(dsn, streams)
            with bench.store.pool.connection() as conn:
                result["prepared_statements"] = [
                    dict(zip(("statement", "generic_plans", "custom_plans"), r)) for r in conn.execute(
                        "SELECT left(regexp_replace(statement, '\\s+', ' ', 'g'), 90)"
                        + (", generic_plans, custom_plans" if conn.info.server_version >= 140000 else "")
                        + " FROM pg_prepared_statements ORDER BY 1").fetchall()
                ]
        finally:
            bench.close()

    # -- report ------------------------------------------------------------------------------
    by = {(c.stream.events, c.variant): c for c in cases}

    def ms(n: int, v: str) -> float:
        return 1e3 * by[(n, v)].median()

    def per_round_ratios(a: Case, b: Case) -> list[float]:
        return [x["median_seconds"] / y["median_seconds"] for x, y in zip(a.rounds, b.rounds)]

    out_cases = []
    for c in cases:
        n = c.stream.events
        server = [r["server_backend_cpu_seconds"] for r in c.rounds]
        calls = sum(r["calls"] for r in c.rounds)
        out_cases.append({
            "stream_events": n,
            "variant": c.variant,
            "label": VARIANT_LABELS[c.variant],
            "calls_per_measurement": c.calls,
            "timed_calls": len(c.seconds),
            "median_seconds": c.median(),
            "p10_seconds": quantile(c.seconds, 0.1),
            "p90_seconds": quantile(c.seconds, 0.9),
            "min_seconds": min(c.seconds),
            "max_seconds": max(c.seconds),
            "median_events_per_s": n / c.median(),
            "per_round_median_seconds": [r["median_seconds"] for r in c.rounds],
            "client_cpu_seconds_per_call": sum(r["client_cpu_seconds"] for r in c.rounds) / calls,
            "server_backend_cpu_seconds_per_call": sum(server) / calls if None not in server else None,
            "rounds": c.rounds,
        })
    result["cases"] = out_cases

    rows = []
    for n in SIZES:
        st = next(x for x in streams if x.events == n)
        rows.append([
            f"{n:,}",
            f"{st.snapshots:,}",
            f"{n - st.latest_snapshot:,}",
            f"{ms(n, 'snap'):,.2f}",
            f"{ms(n, 'full'):,.2f}",
            f"{1e3 * ms(n, 'full') / n:,.1f}",
            f"{n / ms(n, 'full') * 1e3:,.0f}",
            f"{ms(n, 'read'):,.2f}",
            f"{ms(n, 'raw'):,.2f}",
            f"{n / ms(n, 'raw') * 1e3:,.0f}",
            f"{ms(n, 'full') / ms(n, 'raw'):.1f}",
            f"{ms(n, 'full') / ms(n, 'snap'):,.1f}",
        ])
    rows.append([f"{worst.events:,}", f"{worst.snapshots:,}", f"{worst.events - worst.latest_snapshot:,}",
                 f"{ms(worst.events, 'snap'):,.2f}"] + ["-"] * 8)

    snap_big, full_100, snap_100, snap_worst = (by[(100_000, "snap")], by[(100, "full")], by[(100, "snap")],
                                                by[(WORST_CASE, "snap")])
    headline: dict[str, Any] = {
        "load_100000_with_snapshots_ms": ms(100_000, "snap"),
        "load_100099_with_snapshots_ms": ms(WORST_CASE, "snap"),
        "load_100_without_snapshots_ms": ms(100, "full"),
        "load_100_with_snapshots_ms": ms(100, "snap"),
        "ratio_100000_snap_to_100_full": ms(100_000, "snap") / ms(100, "full"),
        "ratio_100099_snap_to_100_full": ms(WORST_CASE, "snap") / ms(100, "full"),
        "ratio_100000_snap_to_100_snap": ms(100_000, "snap") / ms(100, "snap"),
        "per_round_ratio_100000_snap_to_100_full": per_round_ratios(snap_big, full_100),
        "per_round_ratio_100099_snap_to_100_full": per_round_ratios(snap_worst, full_100),
        "per_round_ratio_100000_snap_to_100_snap": per_round_ratios(snap_big, snap_100),
    }
    result["headline"] = headline
    # Growth without snapshots: time per event at each size, and a straight line through the
    # two largest sizes (per-event slope, and the fixed cost it leaves).
    slope = (ms(100_000, "full") - ms(10_000, "full")) / 90_000
    result["growth_without_snapshots"] = {
        "per_size": {str(n): {"median_ms": ms(n, "full"), "us_per_event": 1e3 * ms(n, "full") / n,
                              "events_per_s": n / ms(n, "full") * 1e3,
                              "ratio_to_raw_read": ms(n, "full") / ms(n, "raw"),
                              "ratio_to_read_stream": ms(n, "full") / ms(n, "read")} for n in SIZES},
        "time_ratio_per_tenfold": {f"{a}->{b}": ms(b, "full") / ms(a, "full") for a, b in itertools.pairwise(SIZES)},
        "us_per_event_slope_10000_to_100000": 1e3 * slope,
        "fixed_ms_at_that_slope": ms(100_000, "full") - slope * 100_000,
    }
    cpu_rows = []
    for v in VARIANTS:
        oc = next(o for o in out_cases if o["stream_events"] == 100_000 and o["variant"] == v)
        server_cpu = oc["server_backend_cpu_seconds_per_call"]
        cpu_rows.append([v, VARIANT_LABELS[v], f"{1e3 * oc['median_seconds']:,.2f}",
                         f"{1e3 * oc['client_cpu_seconds_per_call']:,.2f}",
                         f"{1e3 * server_cpu:,.2f}" if server_cpu is not None else "n/a",
                         f"{1e6 * oc['median_seconds'] / 100_000:.2f}" if v != "snap" else "-"])
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    C.write_json(args.output, result)

    print()
    print(C.table(
        ["events", "snapshots", "replay", "load+snap ms", "load ms", "us/event", "load ev/s", "read_stream ms",
         "raw ms", "raw ev/s", "load/raw", "snap speedup"],
        rows, [True] * 12))
    print("\nload+snap: Repository.load(id); load: Repository.load(id, use_snapshots=False); replay: events after "
          "the latest snapshot;\nread_stream: the store reads of that load, no decoding; raw: SELECT data ... ORDER BY "
          "version, one statement.\nMedians of every timed call over all rounds.")

    def rng_of(xs: list[float]) -> str:
        return f"rounds {min(xs):.2f}-{max(xs):.2f}"

    h = headline
    print("\nSnapshots (one every 100):")
    print(f"  load 100,000 events (snapshot at 100,000, 0 to replay)   {h['load_100000_with_snapshots_ms']:7.2f} ms")
    print(f"  load 100,099 events (snapshot at 100,000, 99 to replay)  {h['load_100099_with_snapshots_ms']:7.2f} ms")
    print(f"  load a 100-event stream without snapshots (100 replayed) {h['load_100_without_snapshots_ms']:7.2f} ms")
    print(f"  load a 100-event stream with its snapshot (0 replayed)   {h['load_100_with_snapshots_ms']:7.2f} ms")
    print(f"  ratio 100,000 with snapshots / 100 without: {h['ratio_100000_snap_to_100_full']:.2f} "
          f"({rng_of(h['per_round_ratio_100000_snap_to_100_full'])})  target: about 1")
    print(f"  ratio 100,099 with snapshots / 100 without: {h['ratio_100099_snap_to_100_full']:.2f} "
          f"({rng_of(h['per_round_ratio_100099_snap_to_100_full'])})  worst case of a snapshot every 100")
    print(f"  ratio 100,000 with snapshots / 100 with snapshots: {h['ratio_100000_snap_to_100_snap']:.2f} "
          f"({rng_of(h['per_round_ratio_100000_snap_to_100_snap'])})")
    g = result["growth_without_snapshots"]
    print("\nWithout snapshots: time x" + ", x".join(f"{r:.1f}" for r in g["time_ratio_per_tenfold"].values())
          + " for each tenfold of events; "
          f"{g['us_per_event_slope_10000_to_100000']:.1f} us per event from 10,000 to 100,000 events")
    print("\nWhere the time goes on the 100,000-event stream, ms per call (wall: median; CPU: mean over all calls,"
          " /proc)")
    print(C.table(["case", "what", "wall ms", "client CPU ms", "server CPU ms", "wall us/event"], cpu_rows,
                  [False, False, True, True, True, True]))
    print("client CPU: this Python process (psycopg's row decoding included); server CPU: the connection's backend.")
    print(f"\nchecks passed: every stream holds its events and snapshots, loads with and without snapshots give the "
          f"same state;\n{time.strftime('%H:%M:%S')}, {result['total_seconds']:.0f} s in all")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
