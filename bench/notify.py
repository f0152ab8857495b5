"""What NOTIFY costs appenders, measured with pgbench (no Python in the loop).

    python bench/notify.py              # make bench
    PYES_DATABASE_URL=postgresql://... python bench/notify.py

Same server rules as the other scripts (PYES_DATABASE_URL, else a throwaway embedded
PostgreSQL 18). Two scratch databases on that server, both migrated: in one every append
notifies (pyes.notify = 'on', as while a worker listens through pyes.listen()); in the other
nobody listens and the setting is the default 'auto', so appends do not notify
(sql/functions/130_append_trigger.sql). pgbench (-M prepared) runs one
transaction per call of pyes.append with one event, each client on its own 10 streams of one
category, against:

  notify_on    pyes.append, notifying (a listener is registered)
  notify_off   pyes.append, nobody listening (no NOTIFY)
  insert       plain INSERT of the same row into bench_raw.events (LIKE pyes.events INCLUDING
               ALL), in the notifying database; versions from a sequence

with 1 and 4 clients, --seconds each, in rounds whose order rotates; figures are medians.
PostgreSQL serialises the commits of transactions that sent a notification (a cluster-wide
lock taken before commit and released after the commit record is flushed), so notifying
mostly costs concurrent writers the sharing of WAL flushes (group commit).

pgbench comes from the server's own installation (the embedded one's bin/, else PATH, else
/usr/lib/postgresql/*/bin). The run fails if pgbench fails or reports failed transactions.
Writes bench/results/notify.json.
"""

from __future__ import annotations

import argparse
import glob
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from pyes.migrate import upgrade

CLIENTS = (1, 4)
VARIANTS = ("notify_on", "notify_off", "insert")
DATA = ('{"amount": 123456, "currency": "EUR", "reference": "INV-2025-123456", "channel": "card", '
        '"booked_on": "2025-03-12", "note": "monthly fee"}')
META = '{"user_id": "u-12345", "source": "api", "request_id": "0123456789abcdef"}'
APPEND_SCRIPT = f"""\\set s random(1, 10)
SELECT * FROM pyes.append('account-' || :client_id || '-' || :s, jsonb_build_array(jsonb_build_object('id', gen_random_uuid()::text, 'type', 'Deposited', 'schema_version', 1, 'data', '{DATA}'::jsonb, 'metadata', '{META}'::jsonb)), 'any');
"""
INSERT_SCRIPT = f"""\\set s random(1, 10)
INSERT INTO bench_raw.events (event_id, stream_id, category, version, type, schema_version, data, metadata) VALUES (gen_random_uuid(), 'account-' || :client_id || '-' || :s, 'account', nextval('bench_raw.versions'), 'Deposited', 1, '{DATA}'::jsonb, '{META}'::jsonb);
"""
SETUP_SQL = """
CREATE SCHEMA bench_raw;
CREATE TABLE bench_raw.events (LIKE pyes.events INCLUDING ALL);
CREATE SEQUENCE bench_raw.versions;
"""
# The group-commit target (4 writers >= 1.5 x 1 writer) holds appends as they ship: nobody
# listening, no NOTIFY. With a listener registered every appending transaction commits alone;
# that scaling is reported, not targeted.
TARGETS = {"notify_off_4_over_1": 1.5}


def find_pgbench() -> str:
    bin_dir = C.embedded_bin()
    if bin_dir is not None and (bin_dir / "pgbench").exists():
        return str(bin_dir / "pgbench")
    found = shutil.which("pgbench") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))[::-1]), None)
    if not found:
        raise SystemExit("bench/notify.py: pgbench not found (it ships with PostgreSQL's client tools)")
    return found


def pgbench(exe: str, dsn: str, script: Path, clients: int, seconds: float) -> dict[str, Any]:
    cmd = [exe, "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients), "-T", str(seconds),
           "-f", str(script), dsn]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120 + seconds)
    text = out.stdout + out.stderr
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    failed = re.search(r"number of failed transactions: ([0-9]+)", text)
    done = re.search(r"number of transactions actually processed: ([0-9]+)", text)
    if out.returncode != 0 or not tps or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench failed (exit {out.returncode}):\n{text[-2000:]}")
    return {"tps": float(tps.group(1)), "transactions": int(done.group(1)) if done else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=2, help="seconds of one pgbench run (default 2)")
    parser.add_argument("--output", type=Path, default=C.RESULTS / "notify.json")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be >= 1")
    exe = find_pgbench()
    started = perf_counter()
    version = subprocess.run([exe, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {
        "benchmark": "notify",
        "timestamp": C.now_iso(),
        "machine": {**C.machine_info(), "load_average_at_start": C.load_average()},
        "repo": C.repo_info(),
        "config": {"rounds": args.rounds, "seconds_per_run": args.seconds, "clients": list(CLIENTS),
                   "pgbench": version, "append_script": APPEND_SCRIPT, "insert_script": INSERT_SCRIPT},
    }
    runs: dict[str, dict[int, list[float]]] = {v: {c: [] for c in CLIENTS} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, C.bench_server() as (admin_dsn, source), \
            C.scratch_database(admin_dsn, "pyes_bench_notify_on") as dsn_on, \
            C.scratch_database(admin_dsn, "pyes_bench_notify_off") as dsn_off:
        append_f, insert_f = Path(tmp) / "append.sql", Path(tmp) / "insert.sql"
        append_f.write_text(APPEND_SCRIPT)
        insert_f.write_text(INSERT_SCRIPT)
        for dsn in (dsn_on, dsn_off):
            upgrade(dsn)
        with psycopg.connect(dsn_on, autocommit=True) as conn:
            result["server"] = {"source": source, **C.server_info(conn)}
            conn.execute(SETUP_SQL)
            conn.execute(f"ALTER DATABASE {conn.info.dbname} SET pyes.notify = 'on'")
        print(f"pyes NOTIFY benchmark (pgbench)  {result['timestamp']}")
        print(f"server: {result['server']['version']}\n        {source}, {result['server']['connection']}")
        plan = {"notify_on": (dsn_on, append_f), "notify_off": (dsn_off, append_f), "insert": (dsn_on, insert_f)}
        for v, (dsn, f) in plan.items():  # warm-up: creates the streams, fills the caches
            pgbench(exe, dsn, f, 4, 1)
        for rnd in range(args.rounds):
            line = []
            for c in CLIENTS:
                order = list(VARIANTS[rnd % 3:] + VARIANTS[: rnd % 3])
                for v in order if rnd % 2 == 0 else order[::-1]:
                    r = pgbench(exe, plan[v][0], plan[v][1], c, args.seconds)
                    runs[v][c].append(r["tps"])
                    line.append(f"{v}/{c}={r['tps']:,.0f}")
            print(f"  round {rnd + 1}/{args.rounds}  " + " ".join(line), flush=True)
        with psycopg.connect(dsn_off, autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM pyes.listeners").fetchone() != (0,):
                raise AssertionError("a session listened in the notify_off database")
        with psycopg.connect(dsn_on, autocommit=True) as conn:
            if conn.execute("SELECT current_setting('pyes.notify', true)").fetchone() != ("on",):
                raise AssertionError("the notify_on database does not notify")

    med = {v: {c: C.median(runs[v][c]) for c in CLIENTS} for v in VARIANTS}
    comparisons = []

    def cmp(what: str, a: list[float], b: list[float], target: float | None = None) -> None:
        ratio = C.median(a) / C.median(b)
        comparisons.append({"label": what, "ratio": ratio, "per_round_ratios": [x / y for x, y in zip(a, b)],
                            "pyes_median_events_per_s": C.median(a), "reference_median_events_per_s": C.median(b),
                            "target": target,
                            "result": "report" if target is None else ("PASS" if ratio >= target else "MISSED")})

    for c in CLIENTS:
        cmp(f"{c} clients: pyes.append notifying / not", runs["notify_on"][c], runs["notify_off"][c])
        cmp(f"{c} clients: pyes.append (notifying) / plain INSERT", runs["notify_on"][c], runs["insert"][c])
        cmp(f"{c} clients: pyes.append (not notifying) / plain INSERT", runs["notify_off"][c], runs["insert"][c])
    hi, lo = CLIENTS[-1], CLIENTS[0]
    for v in VARIANTS:
        cmp(f"{v}: {hi} clients / {lo} client (group commit)", runs[v][hi], runs[v][lo],
            TARGETS.get(f"{v}_{hi}_over_{lo}"))
    result["median_tps"] = med
    result["runs"] = runs
    result["comparisons"] = comparisons
    result["misses"] = [c["label"] for c in comparisons if c["result"] == "MISSED"]
    result["machine"]["load_average_at_end"] = C.load_average()
    result["total_seconds"] = perf_counter() - started
    C.write_json(args.output, result)
    print()
    print(C.table(["comparison", "ratio", "rounds"],
                  [[c["label"], f"{c['ratio']:.2f}", f"{min(c['per_round_ratios']):.2f}-{max(c['per_round_ratios']):.2f}"]
                   for c in comparisons], [False, True, True]))
    print("\ntransactions/s (medians): " + "; ".join(
        f"{v} " + ", ".join(f"{c}: {med[v][c]:,.0f}" for c in CLIENTS) for v in VARIANTS))
    print(f"{result['total_seconds']:.0f} s in all; results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
