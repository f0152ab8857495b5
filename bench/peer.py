"""pyes against the `eventsourcing` package (PyPI) with its PostgreSQL persistence, and both
against plain SQL, in one run on one server.

    python bench/peer.py                # make bench
    PYES_DATABASE_URL=postgresql://... python bench/peer.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it for pyes, lets `eventsourcing` create its tables
in it (its Application with PERSISTENCE_MODULE=eventsourcing.postgres and the POSTGRES_*
settings of the same server and database), and drops it at the end.

Both sides run their domain layer, the way an application uses them: an aggregate whose
command raises a "Deposited" event with the same six fields (the payload of
bench/_common.py), saved by its repository.

  save1     one event per save, over 100 aggregates in turn. pyes: Repository.save (with no
            snapshot due, one EventStore.append in autocommit: one statement, one round
            trip); eventsourcing: Application.save.
            reference: one INSERT of one row in autocommit into a copy of pyes.events.
  save100   100 events per save, over 10 aggregates in turn. reference: executemany of 100
            INSERTs, COMMIT.
  replay    load one aggregate of 1,000 events, no snapshots, no cache. pyes:
            Repository.load(use_snapshots=False); eventsourcing: app.repository.get.
            reference: plain SELECT of the 1,000 rows' data by version, fetched into Python.
            Both save shapes also run pyes without its Repository (report only): the
            aggregate's pending events, made NewEvents by the registry, given to
            EventStore.append, which shows what the Repository itself costs.
  writers4  4 writer processes, one event per save, each to its own 10 aggregates, for a
            fixed time; pyes and eventsourcing.

Every measurement runs for about --seconds; a round runs every variant of a shape in an
order that rotates; a figure is the median of the rounds. Targets (pyes / eventsourcing):
save1 >= 3, save100 >= 1.5, replay >= 3, writers4 >= 3; a miss is printed as MISSED and is
not a failure. The run fails (non-zero exit) if any side raises or if the tables do not hold
exactly the events written. Writes bench/results/peer.json.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import queue
import random
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes import Aggregate, EventStore, Repository, handles, jsonio
from pyes.migrate import upgrade
from pyes.typed import EventRegistry

N_AGGREGATES = 100
N_AGG_100 = 10
REPLAY_EVENTS = 1000
WRITERS = 4
TARGETS = {"save1": 3.0, "save100": 1.5, "replay": 3.0, "writers4": 3.0}

REF_COLUMNS = "event_id, stream_id, category, version, type, schema_version, data, metadata"
INSERT_ONE = f"INSERT INTO bench_raw.events ({REF_COLUMNS}) VALUES ({', '.join(['%s'] * 8)})"
SETUP_SQL = """
CREATE SCHEMA bench_raw;
CREATE TABLE bench_raw.events (LIKE pyes.events INCLUDING ALL);
"""

# -- pyes domain ---------------------------------------------------------------------------

peer_registry = EventRegistry()


@peer_registry.event("Deposited")
@dataclass(frozen=True)
class Deposited:
    amount: int
    currency: str
    reference: str
    channel: str
    booked_on: str
    note: str


class PeerAccount(Aggregate):
    category = "peeraccount"
    balance: int = 0

    def deposit(self, **fields: Any) -> None:
        self.raise_event(Deposited(**fields))

    @handles(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount


# -- eventsourcing domain (imported lazily: the module is an optional dependency) -----------


@functools.cache
def es_classes() -> tuple[Any, Any]:
    """eventsourcing's aggregate and application classes, defined once per process."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate as EsAggregate
    from eventsourcing.domain import event as es_event

    class EsAccount(EsAggregate):  # type: ignore[misc]
        def __init__(self, owner: str) -> None:
            self.owner = owner
            self.balance = 0

        @es_event("Deposited")
        def deposit(self, amount: int, currency: str, reference: str, channel: str, booked_on: str,
                    note: str) -> None:
            self.balance += amount

    class PeerBank(Application):  # type: ignore[misc]
        pass

    return EsAccount, PeerBank


def es_env(dsn: str) -> dict[str, str]:
    p = conninfo_to_dict(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(p.get("dbname", "postgres")),
        "POSTGRES_HOST": str(p.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(p.get("port") or "5432"),
        "POSTGRES_USER": str(p.get("user") or os.environ.get("USER", "postgres")),
        "POSTGRES_PASSWORD": str(p.get("password") or ""),
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "0",
    }


def payloads(rng: random.Random, n: int) -> list[dict[str, Any]]:
    return [C.payload(rng)[1] for _ in range(n)]


# -- the sides of one process --------------------------------------------------------------


class Sides:
    """pyes, eventsourcing and plain SQL in one process, with their aggregates."""

    def __init__(self, dsn: str, tag: str, n_aggregates: int, *, create_tables: bool = True) -> None:
        self.store = EventStore(dsn, min_size=1, max_size=1)
        self.store.pool.wait()
        self.repo = Repository(self.store, PeerAccount, registry=peer_registry)
        EsAccount, PeerBank = es_classes()
        self.EsAccount = EsAccount
        # Writer processes start together: only the parent creates eventsourcing's tables (its
        # CREATE TABLE IF NOT EXISTS, run by several processes at once, fails with
        # "tuple concurrently updated").
        self.app = PeerBank(env={**es_env(dsn), "CREATE_TABLE": "y" if create_tables else "n"})
        self.ref = psycopg.connect(dsn, autocommit=True)
        self.ref_tx = psycopg.connect(dsn)
        for conn in (self.ref, self.ref_tx):  # plain SQL decodes json as pyes does
            jsonio.configure(conn)
        self.ref_ids = [f"account-{tag}-{i}" for i in range(n_aggregates)]
        self.ref_versions = [0] * n_aggregates
        self.pyes_aggs = [PeerAccount(f"{tag}-{i}") for i in range(n_aggregates)]
        self.es_aggs = []
        for _ in range(n_aggregates):
            agg = EsAccount(owner=tag)
            self.app.save(agg)
            self.es_aggs.append(agg)
        self.written = {"pyes": 0, "eventsourcing": n_aggregates, "reference": 0}

    def close(self) -> None:
        self.store.close()
        self.app.close()
        self.ref.close()
        self.ref_tx.close()

    def run(self, side: str, batch: int, pays: list[dict[str, Any]], deadline: float) -> int:
        """Save batches of ``batch`` events over the aggregates until ``deadline``; return the
        number of events written."""
        n, i, k, npay = 0, 0, 0, len(pays)
        if side == "pyes":
            aggs, save = self.pyes_aggs, self.repo.save
            while time.perf_counter() < deadline:
                agg = aggs[i % len(aggs)]
                for _ in range(batch):
                    agg.deposit(**pays[k % npay])
                    k += 1
                save(agg)
                n += batch
                i += 1
        elif side == "pyes_append":
            # What Repository.save does when no snapshot is due, without the Repository:
            # one EventStore.append in autocommit.
            aggs, append, to_new = self.pyes_aggs, self.store.append, peer_registry.to_new_event
            while time.perf_counter() < deadline:
                agg = aggs[i % len(aggs)]
                for _ in range(batch):
                    agg.deposit(**pays[k % npay])
                    k += 1
                r = append(agg.stream_id, [to_new(e) for e in agg.pending_events], agg.version)
                agg.version = r.stream_version
                agg._pending.clear()
                n += batch
                i += 1
        elif side == "eventsourcing":
            aggs, esave = self.es_aggs, self.app.save
            while time.perf_counter() < deadline:
                agg = aggs[i % len(aggs)]
                for _ in range(batch):
                    agg.deposit(**pays[k % npay])
                    k += 1
                esave(agg)
                n += batch
                i += 1
        else:
            ids, versions = self.ref_ids, self.ref_versions
            while time.perf_counter() < deadline:
                s = i % len(ids)
                rows = []
                for _ in range(batch):
                    versions[s] += 1
                    rows.append((uuid.uuid4(), ids[s], "account", versions[s], "Deposited", 1,
                                 C.jsonb(pays[k % npay]), C.jsonb({})))
                    k += 1
                if batch == 1:
                    self.ref.execute(INSERT_ONE, rows[0])
                else:
                    self.ref_tx.cursor().executemany(INSERT_ONE, rows)
                    self.ref_tx.commit()
                n += batch
                i += 1
        self.written["pyes" if side.startswith("pyes") else side] += n
        return n


def writer_main(dsn: str, side: str, tag: str, seconds: float, start_at: float, seed: int,
                out: Any) -> None:
    try:
        sides = Sides(dsn, tag, 10, create_tables=False)
        pays = payloads(random.Random(seed), 200)
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.perf_counter()
        n = sides.run(side, 1, pays, t0 + seconds)
        out.put({"tag": tag, "events": n, "seconds": time.perf_counter() - t0, "written": sides.written})
        sides.close()
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put({"tag": tag, "error": traceback.format_exc()})


def run_writers(ctx: Any, dsn: str, side: str, rnd: int, seconds: float) -> dict[str, Any]:
    out = ctx.Queue()
    start_at = time.time() + 3.0  # every writer builds its app and aggregates before
    procs = [ctx.Process(target=writer_main, args=(dsn, side, f"w{rnd}{side[0]}{w}", seconds, start_at,
                                                   rnd * 100 + w, out)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    results = []
    for _ in procs:
        try:
            results.append(out.get(timeout=60 + seconds))
        except queue.Empty:
            raise RuntimeError(f"a {side} writer did not report within {60 + seconds:.0f} s") from None
    for p in procs:
        p.join(30)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"{side} writer failed:\n" + errors[0])
    if time.time() - start_at < 0:
        raise RuntimeError("writers did not start together")
    events = sum(r["events"] for r in results)
    wall = max(r["seconds"] for r in results)
    return {"events": events, "seconds": wall, "events_per_s": events / wall,
            "written": {k: sum(r["written"][k] for r in results) for k in ("pyes", "eventsourcing", "reference")}}


def replay_setup(sides: Sides, dsn: str) -> tuple[str, Any, str]:
    """One aggregate of REPLAY_EVENTS events on each side (and the same rows in the reference
    table); returns (pyes aggregate id, eventsourcing aggregate id, reference stream id)."""
    pays = payloads(random.Random(7), REPLAY_EVENTS)
    agg = PeerAccount("replay")
    for p in pays:
        agg.deposit(**p)
    sides.repo.save(agg)
    es = sides.EsAccount(owner="replay")
    for p in pays:
        es.deposit(**p)
    sides.app.save(es)
    ref_id = "account-replay"
    rows = [(uuid.uuid4(), ref_id, "account", v + 1, "Deposited", 1, C.jsonb(p), C.jsonb({})) for v, p in enumerate(pays)]
    with psycopg.connect(dsn) as c:
        c.cursor().executemany(INSERT_ONE, rows)
    sides.written["pyes"] += REPLAY_EVENTS
    sides.written["eventsourcing"] += REPLAY_EVENTS + 1
    sides.written["reference"] += REPLAY_EVENTS
    return agg.id, es.id, ref_id


def run_replay(sides: Sides, side: str, ids: tuple[str, Any, str], deadline: float) -> int:
    """Load the aggregate until ``deadline``; return the number of events replayed."""
    n = 0
    pyes_id, es_id, ref_id = ids
    while time.perf_counter() < deadline:
        if side == "pyes":
            agg = sides.repo.load(pyes_id, use_snapshots=False)
            if agg.version != REPLAY_EVENTS:
                raise AssertionError(f"pyes replay: version {agg.version}")
        elif side == "eventsourcing":
            es = sides.app.repository.get(es_id)
            if es.version != REPLAY_EVENTS + 1:  # its creation event, then the deposits
                raise AssertionError(f"eventsourcing replay: version {es.version}")
        else:
            rows = sides.ref.execute(
                "SELECT version, data FROM bench_raw.events WHERE stream_id = %s ORDER BY version", (ref_id,)
            ).fetchall()
            if len(rows) != REPLAY_EVENTS:
                raise AssertionError(f"reference replay: {len(rows)} rows")
        n += REPLAY_EVENTS
    return n


def rotate(items: list[str], rnd: int) -> list[str]:
    k = rnd % len(items)
    out = items[k:] + items[:k]
    return out[::-1] if rnd % 2 else out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of one measurement (default 1.0)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "peer.json")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    try:
        import eventsourcing
    except ImportError:
        print("peer.py needs the eventsourcing package: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    started = perf_counter()
    result: dict[str, Any] = {
        "benchmark": "peer",
        "timestamp": C.now_iso(),
        "machine": {**C.machine_info(), "load_average_at_start": C.load_average()},
        "repo": C.repo_info(),
        "peer": {"package": "eventsourcing", "version": getattr(eventsourcing, "__version__", None)},
        "config": {"rounds": args.rounds, "seconds_per_measurement": args.seconds, "writers": WRITERS,
                   "replay_events": REPLAY_EVENTS},
    }
    from importlib.metadata import version

    result["peer"]["version"] = version("eventsourcing")
    shapes: dict[str, dict[str, list[dict[str, Any]]]] = {
        "save1": {"pyes": [], "eventsourcing": [], "reference": [], "pyes_append": []},
        "save100": {"pyes": [], "eventsourcing": [], "reference": [], "pyes_append": []},
        "replay": {"pyes": [], "eventsourcing": [], "reference": []},
        "writers4": {"pyes": [], "eventsourcing": []},
    }
    ctx = mp.get_context("spawn")
    written = {"pyes": 0, "eventsourcing": 0, "reference": 0}
    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_peer") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
        print(f"pyes against eventsourcing {result['peer']['version']}  {result['timestamp']}")
        print(f"server: {result['server']['version']}\n        {source}, {result['server']['connection']}")
        load = result["machine"]["load_average_at_start"]
        if load is not None and load[0] > 0.5 * (os.cpu_count() or 1):
            print(f"WARNING: load average {load[0]:.2f} on {os.cpu_count()} CPUs before the run: figures are noisy")
        sides = Sides(dsn, "main", N_AGGREGATES)
        sides100 = Sides(dsn, "main100", N_AGG_100)
        try:
            ids = replay_setup(sides, dsn)
            pays = payloads(random.Random(1), 1000)
            # Warm-up: prepares statements, fills caches, creates the streams.
            for side in ("pyes", "eventsourcing", "reference", "pyes_append"):
                sides.run(side, 1, pays, time.perf_counter() + 0.3)
                sides100.run(side, 100, pays, time.perf_counter() + 0.3)
                if side != "pyes_append":
                    run_replay(sides, side, ids, time.perf_counter() + 0.2)
            for rnd in range(args.rounds):
                for side in rotate(["pyes", "eventsourcing", "reference", "pyes_append"], rnd):
                    t0 = time.perf_counter()
                    n = sides.run(side, 1, pays, t0 + args.seconds)
                    dt = time.perf_counter() - t0
                    shapes["save1"][side].append({"round": rnd + 1, "events": n, "seconds": dt, "events_per_s": n / dt})
                for side in rotate(["pyes", "eventsourcing", "reference", "pyes_append"], rnd):
                    t0 = time.perf_counter()
                    n = sides100.run(side, 100, pays, t0 + args.seconds)
                    dt = time.perf_counter() - t0
                    shapes["save100"][side].append({"round": rnd + 1, "events": n, "seconds": dt, "events_per_s": n / dt})
                for side in rotate(["pyes", "eventsourcing", "reference"], rnd):
                    t0 = time.perf_counter()
                    n = run_replay(sides, side, ids, t0 + args.seconds)
                    dt = time.perf_counter() - t0
                    shapes["replay"][side].append({"round": rnd + 1, "events": n, "seconds": dt, "events_per_s": n / dt})
                for side in rotate(["pyes", "eventsourcing"], rnd):
                    r = run_writers(ctx, dsn, side, rnd, args.seconds)
                    for k, v in r.pop("written").items():
                        written[k] += v
                    shapes["writers4"][side].append({"round": rnd + 1, **r})
                print(f"  round {rnd + 1}/{args.rounds}  " + "  ".join(
                    f"{s}: " + " ".join(f"{side}={v[-1]['events_per_s']:,.0f}" for side, v in d.items())
                    for s, d in shapes.items()), flush=True)
            for k in written:
                written[k] += sides.written[k] + sides100.written[k]
        finally:
            sides.close()
            sides100.close()

        # Checks: every side holds exactly the events it wrote.
        with psycopg.connect(dsn) as conn:
            es_table = conn.execute(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables "
                "WHERE table_name LIKE '%%peerbank%%events%%'"
            ).fetchall()
            if len(es_table) != 1:
                raise AssertionError(f"cannot find eventsourcing's events table: {es_table}")
            counts = {
                "pyes": conn.execute("SELECT count(*) FROM pyes.events").fetchone()[0],  # type: ignore[index]
                "eventsourcing": conn.execute(f"SELECT count(*) FROM {es_table[0][0]}").fetchone()[0],  # type: ignore[index]
                "reference": conn.execute("SELECT count(*) FROM bench_raw.events").fetchone()[0],  # type: ignore[index]
            }
            for name, fn_counts in (("pyes", "pyes.events"), ("reference", "bench_raw.events")):
                bad = conn.execute(
                    f"SELECT count(*) FROM (SELECT stream_id FROM {fn_counts} GROUP BY stream_id "
                    "HAVING max(version) <> count(*) OR min(version) <> 1) x").fetchone()
                if bad is None or bad[0]:
                    raise AssertionError(f"{name}: streams with gaps")
        result["checks"] = {"rows": counts, "expected": written}
        if counts != written:
            raise AssertionError(f"rows stored {counts} differ from rows written {written}")

    # -- figures ---------------------------------------------------------------------------
    out_shapes: dict[str, Any] = {}
    rows, misses, extra = [], [], []
    labels = {
        "save1": "1 event / save, 100 aggregates",
        "save100": "100 events / save, 10 aggregates",
        "replay": f"replay of a {REPLAY_EVENTS:,}-event aggregate",
        "writers4": f"{WRITERS} writer processes, 1 event / save",
    }
    for name, by_side in shapes.items():
        med = {side: C.median([r["events_per_s"] for r in rs]) for side, rs in by_side.items()}
        per_round = [a["events_per_s"] / b["events_per_s"] for a, b in zip(by_side["pyes"], by_side["eventsourcing"])]
        ratio = med["pyes"] / med["eventsourcing"]
        verdict = "PASS" if ratio >= TARGETS[name] else "MISSED"
        if verdict == "MISSED":
            misses.append(f"{labels[name]}: pyes / eventsourcing = {ratio:.2f} < {TARGETS[name]}")
        out_shapes[name] = {
            "label": labels[name],
            "median_events_per_s": med,
            "rounds": by_side,
            "pyes_over_eventsourcing": ratio,
            "per_round_ratios": per_round,
            "target": TARGETS[name],
            "result": verdict,
            "pyes_over_reference": med["pyes"] / med["reference"] if "reference" in med else None,
            "eventsourcing_over_reference": med["eventsourcing"] / med["reference"] if "reference" in med else None,
            "pyes_append_over_eventsourcing": med["pyes_append"] / med["eventsourcing"] if "pyes_append" in med else None,
        }
        if "pyes_append" in med:
            extra.append(f"{labels[name]}: pyes EventStore.append in autocommit {med['pyes_append']:,.0f} events/s, "
                         f"{med['pyes_append'] / med['eventsourcing']:.2f} x eventsourcing, "
                         f"{med['pyes_append'] / med['reference']:.2f} x plain SQL")
        rows.append([
            labels[name], f"{med['pyes']:,.0f}", f"{med['eventsourcing']:,.0f}",
            f"{med['reference']:,.0f}" if "reference" in med else "-",
            f"{ratio:.2f}", f"{min(per_round):.2f}-{max(per_round):.2f}",
            f"{med['pyes'] / med['reference']:.2f}" if "reference" in med else "-",
            f"{med['eventsourcing'] / med['reference']:.2f}" if "reference" in med else "-",
            f">= {TARGETS[name]}", verdict,
        ])
    result["shapes"] = out_shapes
    result["misses"] = misses
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    C.write_json(args.output, result)
    print()
    print(C.table(["shape", "pyes ev/s", "eventsourcing ev/s", "plain SQL ev/s", "pyes/es", "rounds",
                   "pyes/SQL", "es/SQL", "target", "result"], rows,
                  [False, True, True, True, True, True, True, True, False, False]))
    print("\nplain SQL: one INSERT in autocommit (1 / save), executemany + COMMIT (100 / save), "
          "SELECT by version (replay).")
    for line in extra:
        print(line)
    for miss in misses:
        print(f"MISSED  {miss}")
    print(f"\nchecks passed: every table holds exactly the events written; {result['total_seconds']:.0f} s in all")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
