"""Concurrent writers: pyes.append against plain INSERTs with 1, 2, 4 and 8 writers, one run, one server.

    python bench/concurrency.py
    PYES_DATABASE_URL=postgresql://... python bench/concurrency.py

The server is PYES_DATABASE_URL if set, else a throwaway embedded PostgreSQL 18. The run
creates a database of its own, migrates it (pyes.migrate.upgrade), and drops it at the end.

Writers are processes, not threads: each one is a separate Python process with its own
connection(s), so the client's Python work (building the JSON, psycopg's encoding) is not
serialised by one GIL. The script records how much CPU the writers use (client cores in the
table); on a 2-CPU machine the writers share the CPUs with the server's backends, and the
machine-wide busy share is reported too.

Every writer writes one event per transaction to its own streams of one category,
account-<writer>-<n> (n = 0..9, round-robin), so writers never wait on each other's rows:
what they share is the WAL and its flush at commit (group commit).

  pyes       EventStore.append(stream, [NewEvent]) through the writer's store, whose pool of
             one connection is in autocommit: one prepared SELECT pyes.append(...), one
             statement, one transaction, one round trip.
  reference  one prepared INSERT of one row into bench_raw.events (LIKE pyes.events INCLUDING
             ALL, as in bench/append.py) on an autocommit connection of the same writer; the
             writer computes the versions.

A measurement runs N writers (the first N of 8 started processes) for a fixed duration: every
writer builds its inputs (untimed), reports ready, and then all start at the same monotonic
instant and stop at the same deadline; events/s is all events over the time from the start
to the last writer's end. Every round measures all 8 combinations (4 writer counts x 2 sides)
in an order that changes from round to round; a figure is the median of its rounds.

Targets: pyes with 4 writers >= 1.5 x pyes with 1 writer (group commit), and pyes >= 0.9 x
plain INSERTs with 4 writers. At the end both tables must hold exactly the events written,
versions 1..n per stream, pyes.streams must agree with pyes.events, and no writer may have
reported an error; otherwise the run fails. A missed target is printed as MISSED and is not a
failure. Writes every figure to bench/results/concurrency.json.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import queue
import random
import sys
import time
import traceback
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
from append import INSERT_ONE, make_event

from pyes import EventStore, NewEvent
from pyes.migrate import upgrade

WRITERS = (1, 2, 4, 8)
SIDES = ("pyes", "reference")
STREAMS_PER_WRITER = 10
CATEGORY = "account"
PAYLOADS = 1000  # payload dicts per writer, reused cyclically (each event still gets its own id)
TARGET_SCALING = 1.5  # pyes, 4 writers / 1 writer
TARGET_RATIO = 0.9  # pyes / reference, 4 writers
SETUP_SQL = """
CREATE SCHEMA bench_raw;
CREATE TABLE bench_raw.events (LIKE pyes.events INCLUDING ALL);
"""


# -- writer process --------------------------------------------------------------------------


class Writer:
    def __init__(self, index: int, dsn: str, seed: int) -> None:
        self.index = index
        self.streams = [f"{CATEGORY}-{index}-{n}" for n in range(STREAMS_PER_WRITER)]
        rng = random.Random(seed * 1000 + index)
        self.payloads = [make_event(rng) for _ in range(PAYLOADS)]
        self.store = EventStore(dsn, min_size=1, max_size=1)
        self.store.pool.wait()
        self.ref = psycopg.connect(dsn, autocommit=True)
        with self.store.pool.connection() as conn:
            pyes_pid = C.local_backend(conn)
        self.backends = {"pyes": pyes_pid, "reference": C.local_backend(self.ref)}
        self.next = {"pyes": 0, "reference": 0}  # next stream index per side
        self.versions = [0] * STREAMS_PER_WRITER  # reference side: last version per stream
        self.written = {"pyes": 0, "reference": 0}
        self.payload_at = 0
        self.inputs: list[Any] = []
        self.side = ""

    def build(self, side: str, n: int) -> None:
        """Untimed: n transactions' inputs for ``side``. Stream and version counters are only
        advanced by what a run actually writes (see ``advance``)."""
        s, versions = self.next[side], list(self.versions)
        out: list[Any] = []
        for _ in range(n):
            t, d, m = self.payloads[self.payload_at]
            self.payload_at = (self.payload_at + 1) % PAYLOADS
            if side == "pyes":
                out.append((self.streams[s], [NewEvent(type=t, data=d, metadata=m)]))
            else:
                versions[s] += 1
                out.append((uuid.uuid4(), self.streams[s], CATEGORY, versions[s], t, 1, C.jsonb(d), C.jsonb(m)))
            s = (s + 1) % STREAMS_PER_WRITER
        self.side, self.inputs = side, out

    def advance(self, side: str, done: int) -> None:
        for _ in range(done):
            s = self.next[side]
            if side == "reference":
                self.versions[s] += 1
            self.next[side] = (s + 1) % STREAMS_PER_WRITER
        self.written[side] += done

    def run(self, start_at: float, end_at: float) -> dict[str, Any]:
        side, inputs, cap = self.side, self.inputs, len(self.inputs)
        pid = self.backends[side]
        delay = start_at - monotonic()
        if delay > 0:
            time.sleep(delay)
        late = monotonic() - start_at
        cpu0, srv0 = time.process_time(), C.backend_cpu(pid)
        i = 0
        # The timed region: only the calls, the loop and the clock.
        if side == "pyes":
            append = self.store.append
            while i < cap and monotonic() < end_at:
                stream, events = inputs[i]
                append(stream, events)
                i += 1
        else:
            execute = self.ref.execute
            while i < cap and monotonic() < end_at:
                execute(INSERT_ONE, inputs[i], prepare=True)
                i += 1
        end = monotonic()
        cpu1, srv1 = time.process_time(), C.backend_cpu(pid)
        self.advance(side, i)
        self.inputs = []
        return {
            "writer": self.index,
            "transactions": i,
            "seconds": end - start_at,
            "late_start_seconds": late,
            "exhausted": i == cap,
            "client_cpu_seconds": cpu1 - cpu0,
            "server_backend_cpu_seconds": srv1 - srv0 if srv0 is not None and srv1 is not None else None,
        }

    def close(self) -> None:
        self.store.close()
        self.ref.close()


def writer_main(index: int, dsn: str, seed: int, commands: Any, results: Any) -> None:
    """A writer process: obeys commands from its queue, answers on the shared result queue."""
    try:
        writer = Writer(index, dsn, seed)
        results.put(("ready", index, writer.backends))
        while True:
            cmd = commands.get()
            if cmd[0] == "build":
                writer.build(cmd[1], cmd[2])
                results.put(("built", index, None))
            elif cmd[0] == "go":
                results.put(("done", index, writer.run(cmd[1], cmd[2])))
            elif cmd[0] == "stop":
                writer.close()
                results.put(("stopped", index, writer.written))
                return
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
        raise


# -- parent ----------------------------------------------------------------------------------


def machine_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, None if unknown."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


class Pool:
    """The writer processes (spawned, so they inherit no connection of the parent)."""

    def __init__(self, dsn: str, n: int, seed: int) -> None:
        ctx = mp.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.commands: list[Any] = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(target=writer_main, args=(i, dsn, seed, self.commands[i], self.results), daemon=True)
            for i in range(n)
        ]
        for p in self.procs:
            p.start()
        self.backends = self.collect("ready", range(n), 120)

    def collect(self, kind: str, writers: range, timeout: float) -> dict[int, Any]:
        got: dict[int, Any] = {}
        deadline = monotonic() + timeout
        while len(got) < len(writers):
            left = deadline - monotonic()
            if left <= 0:
                raise RuntimeError(f"writers {sorted(set(writers) - set(got))} did not answer {kind!r} in time")
            try:
                msg, index, payload = self.results.get(timeout=min(left, 1.0))
            except queue.Empty:
                for i, p in enumerate(self.procs):
                    if not p.is_alive() and p.exitcode not in (0, None) and i in writers:
                        raise RuntimeError(f"writer {i} died with exit code {p.exitcode}") from None
                continue
            if msg == "error":
                raise RuntimeError(f"writer {index} failed:\n{payload}")
            if msg != kind:
                raise RuntimeError(f"writer {index}: expected {kind!r}, got {msg!r}")
            got[index] = payload
        return got

    def measure(self, side: str, n: int, seconds: float, capacity: int) -> dict[str, Any]:
        writers = range(n)
        for i in writers:
            self.commands[i].put(("build", side, capacity))
        self.collect("built", writers, 120)
        cpu0 = machine_cpu()
        start_at = monotonic() + 0.05
        end_at = start_at + seconds
        for i in writers:
            self.commands[i].put(("go", start_at, end_at))
        per_writer = self.collect("done", writers, seconds + 120)
        cpu1 = machine_cpu()
        ws = [per_writer[i] for i in writers]
        wall = max(w["seconds"] for w in ws)
        tx = sum(w["transactions"] for w in ws)
        srv = [w["server_backend_cpu_seconds"] for w in ws]
        busy = None
        if cpu0 is not None and cpu1 is not None and cpu1[1] > cpu0[1]:
            busy = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
        return {
            "side": side,
            "writers": n,
            "events": tx,
            "seconds": wall,
            "events_per_s": tx / wall,
            "client_cpu_seconds": sum(w["client_cpu_seconds"] for w in ws),
            "server_backend_cpu_seconds": sum(s for s in srv if s is not None) if None not in srv else None,
            "machine_cpu_busy_share": busy,
            "max_writer_events_per_s": max(w["transactions"] / w["seconds"] for w in ws),
            "min_writer_events_per_s": min(w["transactions"] / w["seconds"] for w in ws),
            "max_late_start_seconds": max(w["late_start_seconds"] for w in ws),
            "inputs_exhausted": any(w["exhausted"] for w in ws),
            "per_writer": ws,
        }

    def stop(self) -> dict[int, Any]:
        for q in self.commands:
            q.put(("stop",))
        written = self.collect("stopped", range(len(self.procs)), 60)
        for p in self.procs:
            p.join(10)
        return written

    def kill(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(5)


def order_of(rnd: int) -> list[tuple[str, int]]:
    """Round ``rnd``'s order of the 8 measurements: the writer counts rotate (and reverse on odd
    rounds); each pair pyes/reference is adjacent, and which side goes first alternates."""
    ns = list(WRITERS[rnd % 4 :] + WRITERS[: rnd % 4])
    if rnd % 2:
        ns.reverse()
    out = []
    for k, n in enumerate(ns):
        sides = SIDES if (rnd + k) % 2 == 0 else SIDES[::-1]
        out += [(side, n) for side in sides]
    return out


def verify(conn: psycopg.Connection[Any], written: dict[str, int]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for side, table in (("pyes", "pyes.events"), ("reference", "bench_raw.events")):
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT stream_id), count(*) FILTER (WHERE version < 1), "
            f"count(*) FILTER (WHERE category <> %s) FROM {table}",
            (CATEGORY,),
        ).fetchone()
        bad = conn.execute(
            f"SELECT count(*) FROM (SELECT stream_id FROM {table} GROUP BY stream_id "
            f"HAVING max(version) <> count(*) OR min(version) <> 1 OR count(DISTINCT version) <> count(*)) x"
        ).fetchone()
        assert row is not None and bad is not None
        checks[table] = {
            "rows": row[0],
            "expected": written[side],
            "streams": row[1],
            "streams_with_gaps": bad[0],
            "other_category": row[3],
        }
        if row[0] != written[side] or bad[0] or row[2] or row[3]:
            raise AssertionError(f"{table}: {checks[table]}")
    C.check_streams_agree(conn, "pyes.streams", "pyes.events")
    checks["pyes.streams_consistent"] = True
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all 8 measurements (default 5)")
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of one measurement (default 1.5)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "concurrency.json")
    parser.add_argument("--seed", type=int, default=20251126)
    parser.add_argument(
        "--with-notify",
        action="store_true",
        help="make every append notify (pyes.notify = 'on' in the scratch database, as when a worker listens "
        "through pyes.listen()), to measure what NOTIFY costs; writes bench/results/concurrency_notify.json "
        "unless --output is given. Without it nobody listens, so appends do not notify (the default 'auto').",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    if args.with_notify and args.output == C.RESULTS / "concurrency.json":
        args.output = C.RESULTS / "concurrency_notify.json"

    started = monotonic()
    result: dict[str, Any] = {
        "benchmark": "concurrency_notify" if args.with_notify else "concurrency",
        "notify": "on" if args.with_notify else "auto (nobody listens: no NOTIFY)",
        "timestamp": C.now_iso(),
        "machine": C.machine_info(),
        "repo": C.repo_info(),
        "config": {
            "rounds": args.rounds,
            "seconds_per_measurement": args.seconds,
            "writers": list(WRITERS),
            "streams_per_writer": STREAMS_PER_WRITER,
            "events_per_transaction": 1,
            "client": "one process per writer (multiprocessing, spawn), one connection per side each",
            "seed": args.seed,
        },
    }
    rounds: list[dict[str, Any]] = []
    with C.bench_server() as (admin_dsn, source), C.scratch_database(admin_dsn, "pyes_bench_concurrency") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
            if args.with_notify:  # this scratch database only; read by every new connection
                conn.execute(f"ALTER DATABASE {conn.info.dbname} SET pyes.notify = 'on'")

        srv, m = result["server"], result["machine"]
        s = srv["settings"]
        print(f"pyes concurrency benchmark  {result['timestamp']}")
        print(f"server: {srv['version']}")
        print(f"        {source}, {srv['connection']}")
        print(
            f"        fsync={s['fsync']} synchronous_commit={s['synchronous_commit']} "
            f"commit_delay={s['commit_delay']} wal_sync_method={s['wal_sync_method']} "
            f"shared_buffers={s['shared_buffers']}"
        )
        print(f"client: {m['cpu_count']} CPUs, Python {m['python']}, psycopg {m['psycopg']} ({m['psycopg_impl']})")
        load = C.load_average()
        m["load_average_at_start"] = load
        if load is not None and load[0] > 0.5 * (os.cpu_count() or 1):
            print(f"WARNING: load average {load[0]:.2f} on {os.cpu_count()} CPUs before the run: figures will be noisy")
        print(
            f"writers: processes, {STREAMS_PER_WRITER} streams each ({CATEGORY}-<writer>-<n>), 1 event / transaction, "
            f"autocommit on both sides"
        )

        pool = Pool(dsn, max(WRITERS), args.seed)
        try:
            result["server_cpu_measured"] = all(v is not None for b in pool.backends.values() for v in b.values())
            # Warm-up: every combination once, short. Creates the streams, prepares the
            # statements, and gives the fastest per-writer rate, from which the inputs of a
            # measurement are sized (2.5 times what the fastest writer could use).
            print("\nwarming up ...", flush=True)
            fastest = 2000.0
            warm = []
            for side, n in order_of(0):
                r = pool.measure(side, n, min(0.5, args.seconds), math.ceil(3 * fastest))
                fastest = max(fastest, r["max_writer_events_per_s"])
                warm.append({k: v for k, v in r.items() if k != "per_writer"})
            result["warmup"] = warm
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) pyes.events, pyes.streams, bench_raw.events")
                try:
                    conn.execute("CHECKPOINT")
                    result["checkpoint_before_rounds"] = True
                except psycopg.errors.InsufficientPrivilege:
                    result["checkpoint_before_rounds"] = False
            print(f"  fastest writer {fastest:,.0f} events/s; {args.rounds} rounds of 8 x {args.seconds} s", flush=True)

            for rnd in range(args.rounds):
                line = []
                for position, (side, n) in enumerate(order_of(rnd)):
                    capacity = math.ceil(2.5 * fastest * args.seconds) + 200
                    r = pool.measure(side, n, args.seconds, capacity)
                    fastest = max(fastest, r["max_writer_events_per_s"])
                    if r["inputs_exhausted"]:
                        print(f"  warning: a writer used up its inputs ({side}, {n} writers); the next are larger")
                    rounds.append({"round": rnd + 1, "position": position + 1, **r})
                    line.append(f"{'p' if side == 'pyes' else 'r'}{n}={r['events_per_s']:,.0f}")
                print(f"  round {rnd + 1}/{args.rounds}  " + " ".join(line), flush=True)
            written_by = pool.stop()
        except BaseException:
            pool.kill()
            raise
        written = {side: sum(w[side] for w in written_by.values()) for side in SIDES}
        counted = {side: sum(r["events"] for r in rounds + result["warmup"] if r["side"] == side) for side in SIDES}
        if written != counted:
            raise AssertionError(f"writers report {written} events written, the measurements {counted}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["checks"] = verify(conn, written)
            result["checks"]["writer_errors"] = 0

    # -- report ------------------------------------------------------------------------------
    def of(side: str, n: int) -> list[dict[str, Any]]:
        return [r for r in rounds if r["side"] == side and r["writers"] == n]

    def med(side: str, n: int) -> float:
        return C.median([r["events_per_s"] for r in of(side, n)])

    def per_round(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
        return [x["events_per_s"] / y["events_per_s"] for x, y in zip(a, b)]

    rows, cpu_rows, summary = [], [], []
    for n in WRITERS:
        ratios = per_round(of("pyes", n), of("reference", n))
        entry: dict[str, Any] = {
            "writers": n,
            "pyes_median_events_per_s": med("pyes", n),
            "reference_median_events_per_s": med("reference", n),
            "ratio": med("pyes", n) / med("reference", n),
            "per_round_ratios": ratios,
            "scaling_pyes": med("pyes", n) / med("pyes", 1),
            "scaling_reference": med("reference", n) / med("reference", 1),
            "per_round_scaling_pyes": per_round(of("pyes", n), of("pyes", 1)),
            "per_round_scaling_reference": per_round(of("reference", n), of("reference", 1)),
        }
        for side in SIDES:
            rs = of(side, n)
            client_cores = C.median([r["client_cpu_seconds"] / r["seconds"] for r in rs])
            client_us = C.median([1e6 * r["client_cpu_seconds"] / r["events"] for r in rs])
            server_us = (
                C.median([1e6 * r["server_backend_cpu_seconds"] / r["events"] for r in rs])
                if all(r["server_backend_cpu_seconds"] is not None for r in rs)
                else None
            )
            busy = [r["machine_cpu_busy_share"] for r in rs]
            busy_med = C.median(busy) if None not in busy else None
            entry[side] = {
                "client_cpu_cores": client_cores,
                "client_cpu_us_per_event": client_us,
                "server_backend_cpu_us_per_event": server_us,
                "machine_cpu_busy_share": busy_med,
                "wall_us_per_event_per_writer": C.median([1e6 * n * r["seconds"] / r["events"] for r in rs]),
            }
            cpu_rows.append(
                [
                    str(n),
                    side,
                    f"{entry[side]['wall_us_per_event_per_writer']:,.0f}",
                    f"{client_us:,.0f}",
                    f"{server_us:,.0f}" if server_us is not None else "n/a",
                    f"{client_cores:.2f}",
                    f"{100 * busy_med:.0f}%" if busy_med is not None else "n/a",
                ]
            )
        summary.append(entry)
        rows.append(
            [
                str(n),
                f"{entry['pyes_median_events_per_s']:,.0f}",
                f"{entry['reference_median_events_per_s']:,.0f}",
                f"{entry['ratio']:.2f}",
                f"{min(ratios):.2f}-{max(ratios):.2f}",
                f"{entry['scaling_pyes']:.2f}",
                f"{entry['scaling_reference']:.2f}",
            ]
        )
    four = summary[WRITERS.index(4)]
    targets = [
        {
            "name": "pyes 4 writers / 1 writer (group commit)",
            "value": four["scaling_pyes"],
            "target": TARGET_SCALING,
            "per_round": four["per_round_scaling_pyes"],
        },
        {
            "name": "pyes / plain INSERT, 4 writers",
            "value": four["ratio"],
            "target": TARGET_RATIO,
            "per_round": four["per_round_ratios"],
        },
    ]
    misses = []
    for t in targets:
        t["result"] = "PASS" if t["value"] >= t["target"] else "MISSED"
        if t["result"] == "MISSED":
            misses.append(f"{t['name']} = {t['value']:.2f} < {t['target']}")
    result.update({"summary": summary, "targets": targets, "misses": misses, "rounds": rounds})
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = monotonic() - started
    C.write_json(args.output, result)

    print()
    print(
        C.table(
            ["writers", "pyes ev/s", "INSERT ev/s", "pyes/INSERT", "rounds", "pyes N/1", "INSERT N/1"],
            rows,
            [True, True, True, True, True, True, True],
        )
    )
    print(
        "ev/s: all writers' events per second, median of the rounds; pyes/INSERT: ratio of the medians;\n"
        "rounds: range of the per-round ratios; N/1: median with N writers / median with 1 writer."
    )
    print("\nWhere the time goes (medians of the rounds):")
    print(
        C.table(
            [
                "writers",
                "side",
                "wall us/event/writer",
                "client CPU us/event",
                "server CPU us/event",
                "client cores",
                "machine busy",
            ],
            cpu_rows,
            [True, False, True, True, True, True, True],
        )
    )
    print(
        "client CPU: the writer processes; server CPU: their backends (from /proc, a local server only);\n"
        "client cores: client CPU seconds per second; machine busy: all CPUs, from /proc/stat."
    )
    print()
    for t in targets:
        pr = t["per_round"]
        print(
            f"{t['result']:<6}  {t['name']}: {t['value']:.2f} (target >= {t['target']}, "
            f"rounds {min(pr):.2f}-{max(pr):.2f})"
        )
    print(
        f"\nchecks passed: no writer errors, every table holds exactly the events written, versions 1..n per "
        f"stream; {time.strftime('%H:%M:%S')}, {result['total_seconds']:.0f} s in all"
    )
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
