"""Gathers every benchmark's JSON in bench/results/ into one report.

    python bench/report.py          # the last step of make bench

Reads bench/results/*.json (every file a benchmark script wrote; latest.json itself aside),
so that a new script's results join the report without changes here, and writes:

  bench/results/latest.json   every benchmark's figures as written, the ratios against their
                              references with targets and results, the server (version and
                              settings) and the machine (CPU model and count, memory, load
                              average of each run)
  bench/results/latest.md     the same as tables a person can read
  bench/results/append.png    throughput against batch size and against writers: pyes beside
                              plain SQL and beside the peer (needs matplotlib; without it the
                              report says so and the run fails)

No figure is written here: all come from the JSON files. The run fails (non-zero exit) if a
results file cannot be read or the plot cannot be drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

ORDER = ("append", "instructions", "concurrency", "concurrency_notify", "notify", "reads", "snapshots", "peer")
KEY_SETTINGS = ("fsync", "synchronous_commit", "wal_level", "shared_buffers", "full_page_writes",
                "wal_sync_method", "commit_delay", "jit")

# Why a target can stay missed: the design reasons, to be read with the measured ratio.
WHY = {
    ("append", "1 event / tx"): (
        "A plain INSERT is the floor of a plain-SQL client. An append that is a function call has floors of "
        "its own, measured in the same run (the 'plpgsql function' lines): a function that only INSERTs the "
        "event, and one that also updates the stream's row as pyes does. Over the second, pyes.append "
        "validates the batch, checks that its ids are new (idempotent retries), checks the expected version "
        "and the writers' transaction order, fires the statement trigger after appends "
        "(130_append_trigger.sql), and its client borrows a pooled connection (server and client CPU per "
        "call: the CPU table of append.json; the server's instructions, counted: the instructions section). "
        "The round trip and the WAL flush at commit are the same on all sides."),
    ("append", "100 events / tx"): (
        "executemany pipelines its INSERTs, so pyes saves no round trip there. The floor lines show what one "
        "function call with one INSERT ... SELECT of the batch costs; what pyes adds to that is per-event "
        "work in the database: five jsonb tests per event, the lists of types, schema versions and ids checked "
        "by one regex each, and one index probe per id (idempotent retries)."),
    ("instructions", "*"): (
        "Counted, not timed: the instructions the server executes for the statement (callgrind; the "
        "commit and the parsing of the input excluded), which repeat to within about 1% where the timed "
        "ratios swing by 20%. A function call costs the server more than its statements: PL/pgSQL prepares "
        "each expression and statement of a function anew in every transaction, and its pinned search_path "
        "is set and reset on every call; that is the gap between the INSERT and the floors. What pyes.append "
        "adds to the stream-row floor is its input checks, the id probe of idempotent retries, the expected "
        "version and transaction order checks, and the statement trigger after appends. With 100 events the "
        "fixed costs spread and the per-event checks remain."),
    ("concurrency", "scaling"): (
        "On 2 CPUs the writer processes compete with the server for the CPUs, and each append costs the "
        "server about twice the CPU of an INSERT (see append), so the CPUs run out first. (Nobody listens "
        "in this run, so appends do not notify; a notifying transaction commits alone, which bench/notify.py "
        "measures.)"),
    ("capture", "*"): (
        "A captured UPDATE is the UPDATE plus what its trigger (pyes.capture_row) appends: the changed "
        "columns worked out from the row as JSON, the compare-and-set of the stream's row, and the event's "
        "INSERT with its five index entries. Counted, the server does about eight times the work of the "
        "plain UPDATE (the instructions section); timed, the round trip and, at one UPDATE per "
        "transaction, the commit's WAL flush are the same on both sides, so the factor is smaller, and it "
        "grows when 100 UPDATEs share one commit."),
    ("projections", "*"): (
        "A per-event handler costs one PL/pgSQL call and one upsert statement, with its executor start-up, "
        "per event; the reference computes the whole table in one pass. A batch handler (taking "
        "pyes.events[]) gets each batch in one call and writes it set-based: its lines show what the "
        "per-event form leaves on the table."),
    ("peer", "*"): (
        "eventsourcing is measured through its Application and repository, pyes through its Repository: both "
        "pay their Python domain layer, which narrows the gap their SQL leaves."),
}


def machine_description() -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"cpu_model": cpu_model, "cpu_count": os.cpu_count(), "memory": mem, "platform": platform.platform(),
            "python": sys.version.split()[0]}


def fmt(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def rng(values: list[float] | None) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


# -- the ratios of each benchmark: (benchmark, what, pyes figure, reference, ratio, target, result, spread)


def ratios_append(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for shape in d.get("shapes", []):
        for c in shape["comparisons"]:
            v = shape["variants"]
            out.append({"group": shape["name"], "what": f"{v[c['pyes']]['label']} / {v[c['reference']]['label']}",
                        "pyes": c["pyes_median_events_per_s"], "reference": c["reference_median_events_per_s"],
                        "unit": "events/s", "ratio": c["ratio"], "target": c["target"], "result": c["result"],
                        "per_round": c.get("per_round_ratios")})
    return out


def ratios_instructions(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    labels = d.get("labels", {})
    for shape in d.get("shapes", []):
        own = shape["instructions_per_call"]
        for c in shape["comparisons"]:
            out.append({"group": shape["name"],
                        "what": f"{labels.get(c['pyes'], c['pyes'])} / {labels.get(c['reference'], c['reference'])}",
                        "pyes": own[c["pyes"]], "reference": own[c["reference"]],
                        "unit": "server instructions/call", "ratio": c["ratio"], "target": None, "result": "report",
                        "per_round": None})
    return out


def ratios_concurrency(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in d.get("summary", []):
        w = s["writers"]
        out.append({"group": f"{w} writers", "what": "pyes / plain INSERT, same writers",
                    "pyes": s["pyes_median_events_per_s"], "reference": s["reference_median_events_per_s"],
                    "unit": "events/s", "ratio": s["ratio"], "target": 0.9 if w == 4 else None,
                    "result": None, "per_round": s.get("per_round_ratios")})
        if w != 1:
            out.append({"group": "scaling", "what": f"pyes {w} writers / 1 writer (plain INSERT: "
                        f"{s['scaling_reference']:.2f})", "pyes": s["pyes_median_events_per_s"], "reference": None,
                        "unit": "events/s", "ratio": s["scaling_pyes"], "target": 1.5 if w == 4 else None,
                        "result": None, "per_round": s.get("per_round_scaling_pyes")})
    for r in out:
        if r["target"] is not None:
            r["result"] = "PASS" if r["ratio"] >= r["target"] else "MISSED"
        else:
            r["result"] = "report"
    return out


def ratios_reads(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in d.get("comparisons", []):
        v = c.get("variants", {})
        p, r = v.get("pyes", {}), v.get("plain", {})
        out.append({"group": f"{c.get('case')} ({c.get('level')})", "what": "pyes / plain SELECT",
                    "pyes": p.get("median_events_per_s"), "reference": r.get("median_events_per_s"),
                    "unit": "events/s", "ratio": c["ratio"], "target": c.get("target"),
                    "result": c.get("result"), "per_round": c.get("per_round_ratios")})
    return out


def ratios_snapshots(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    cases = {(c["stream_events"], c["variant"]): c for c in d.get("cases", [])}
    for n in sorted({k[0] for k in cases}):
        snap, full, raw = cases.get((n, "snap")), cases.get((n, "full")), cases.get((n, "raw"))
        if snap and full:
            out.append({"group": f"{n:,} events", "what": "load with snapshots / without (speed-up)",
                        "pyes": 1000 * snap["median_seconds"], "reference": 1000 * full["median_seconds"],
                        "unit": "ms per load", "ratio": full["median_seconds"] / snap["median_seconds"],
                        "target": None, "result": "report", "per_round": None})
        if full and raw:
            out.append({"group": f"{n:,} events", "what": "load without snapshots / plain SELECT of the data",
                        "pyes": 1000 * full["median_seconds"], "reference": 1000 * raw["median_seconds"],
                        "unit": "ms per load", "ratio": raw["median_seconds"] / full["median_seconds"],
                        "target": None, "result": "report", "per_round": None})
    return out


def ratios_peer(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in d.get("shapes", {}).values():
        m = s["median_events_per_s"]
        out.append({"group": s["label"], "what": "pyes / eventsourcing", "pyes": m["pyes"],
                    "reference": m["eventsourcing"], "unit": "events/s", "ratio": s["pyes_over_eventsourcing"],
                    "target": s["target"], "result": s["result"], "per_round": s.get("per_round_ratios")})
        if m.get("pyes_append"):
            out.append({"group": s["label"], "what": "pyes EventStore.append of the pending events, without "
                        "the Repository / eventsourcing", "pyes": m["pyes_append"], "reference": m["eventsourcing"],
                        "unit": "events/s", "ratio": m["pyes_append"] / m["eventsourcing"], "target": None,
                        "result": "report", "per_round": [a["events_per_s"] / b["events_per_s"] for a, b in zip(
                            s["rounds"]["pyes_append"], s["rounds"]["eventsourcing"])]})
        if m.get("reference"):
            out.append({"group": s["label"], "what": "pyes / plain SQL (eventsourcing / plain SQL: "
                        f"{s['eventsourcing_over_reference']:.2f})", "pyes": m["pyes"], "reference": m["reference"],
                        "unit": "events/s", "ratio": s["pyes_over_reference"], "target": None, "result": "report",
                        "per_round": None})
    return out


def ratios_notify(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"group": "pgbench", "what": c["label"], "pyes": c["pyes_median_events_per_s"],
             "reference": c["reference_median_events_per_s"], "unit": "transactions/s", "ratio": c["ratio"],
             "target": c["target"], "result": c["result"], "per_round": c["per_round_ratios"]}
            for c in d.get("comparisons", [])]


def ratios_generic(d: Any, path: str = "") -> list[dict[str, Any]]:
    """Any object with a numeric "ratio" in a benchmark this script does not know."""
    out: list[dict[str, Any]] = []
    if isinstance(d, dict):
        if isinstance(d.get("ratio"), (int, float)):
            what = " / ".join(str(d[k]) for k in ("pyes", "reference") if isinstance(d.get(k), str)) or path
            out.append({"group": path or "-", "what": d.get("label") or d.get("note") or what,
                        "pyes": d.get("pyes_median_events_per_s"), "reference": d.get("reference_median_events_per_s"),
                        "unit": "events/s", "ratio": d["ratio"], "target": d.get("target"),
                        "result": d.get("result") or "report", "per_round": d.get("per_round_ratios")})
        for k, v in d.items():
            if k not in ("rounds", "machine", "server", "repo", "config"):
                out += ratios_generic(v, f"{path}.{k}" if path else k)
    elif isinstance(d, list):
        for i, v in enumerate(d):
            label = v.get("name") or v.get("label") if isinstance(v, dict) else None
            out += ratios_generic(v, f"{path}[{label or i}]")
    return out


RATIOS = {"append": ratios_append, "instructions": ratios_instructions, "concurrency": ratios_concurrency, "concurrency_notify": ratios_concurrency,
          "notify": ratios_notify, "reads": ratios_reads,
          "snapshots": ratios_snapshots, "peer": ratios_peer}


def plot(benchmarks: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no plot drawn"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    app = benchmarks.get("append")
    if app:
        lines: dict[str, dict[int, float]] = {}
        names = {"pyes": "pyes append", "insert_ac": "plain INSERT (1 row, autocommit)",
                 "executemany": "plain executemany", "multirow": "plain multi-row INSERT", "copy": "plain COPY"}
        for shape in app["shapes"]:
            for key, v in shape["variants"].items():
                label = names.get(key)
                if label:
                    lines.setdefault(label, {})[shape["batch"]] = v["median_events_per_s"]
        # a single INSERT is all of executemany, multi-row INSERT and COPY at batch 1
        single = lines.get(names["insert_ac"], {}).get(1)
        for k in ("executemany", "multirow", "copy"):
            if single is not None and names[k] in lines:
                lines[names[k]][1] = single
        lines.pop(names["insert_ac"], None)
        for label, pts in lines.items():
            xs = sorted(pts)
            ax1.plot(xs, [pts[x] for x in xs], marker="o", label=label,
                     linewidth=2.5 if label.startswith("pyes") else 1.2)
    peer = benchmarks.get("peer")
    if peer:
        sh = peer["shapes"]
        xs = [b for b, k in ((1, "save1"), (100, "save100")) if k in sh]
        ax1.plot(xs, [sh[k]["median_events_per_s"]["eventsourcing"] for k in ("save1", "save100") if k in sh],
                 marker="s", linestyle="--", label="eventsourcing save")
        ax1.plot(xs, [sh[k]["median_events_per_s"]["pyes"] for k in ("save1", "save100") if k in sh],
                 marker="s", linestyle=":", label="pyes Repository.save (same run as eventsourcing)")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("events per call (transaction)")
    ax1.set_ylabel("events/s")
    ax1.set_title("Throughput against batch size")
    ax1.legend(fontsize=7)
    ax1.grid(True, which="both", alpha=0.3)
    conc = benchmarks.get("concurrency")
    if conc:
        ws = [s["writers"] for s in conc["summary"]]
        ax2.plot(ws, [s["pyes_median_events_per_s"] for s in conc["summary"]], marker="o", linewidth=2.5,
                 label="pyes append")
        ax2.plot(ws, [s["reference_median_events_per_s"] for s in conc["summary"]], marker="o",
                 label="plain INSERT")
    if peer and "writers4" in peer["shapes"]:
        w4 = peer["shapes"]["writers4"]["median_events_per_s"]
        s1 = peer["shapes"].get("save1", {}).get("median_events_per_s", {})
        ax2.plot([1, 4] if s1 else [4], ([s1["eventsourcing"]] if s1 else []) + [w4["eventsourcing"]],
                 marker="s", linestyle="--", label="eventsourcing save")
        ax2.plot([1, 4] if s1 else [4], ([s1["pyes"]] if s1 else []) + [w4["pyes"]],
                 marker="s", linestyle=":", label="pyes Repository.save (same run as eventsourcing)")
    ax2.set_xlabel("writer processes (1 event per transaction)")
    ax2.set_ylabel("events/s")
    ax2.set_title("Throughput against writers")
    ax2.set_xticks([1, 2, 4, 8])
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=7)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(f"pyes benchmarks, {machine_description()['cpu_count']} CPUs; medians of interleaved rounds",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=C.RESULTS)
    args = parser.parse_args(argv)
    files = sorted(p for p in args.results.glob("*.json") if p.name != "latest.json")
    if not files:
        print(f"no results in {args.results}: run the benchmarks first", file=sys.stderr)
        return 1
    benchmarks: dict[str, Any] = {}
    for p in files:
        data = json.loads(p.read_text())  # a file that does not parse fails the run
        benchmarks[str(data.get("benchmark") or p.stem)] = data
    names = [n for n in ORDER if n in benchmarks] + sorted(n for n in benchmarks if n not in ORDER)

    ratios: dict[str, list[dict[str, Any]]] = {}
    for n in names:
        try:
            ratios[n] = RATIOS.get(n, ratios_generic)(benchmarks[n])
        except (KeyError, TypeError, ZeroDivisionError) as e:
            raise SystemExit(f"bench/report.py: cannot read the figures of {n}: {e!r}") from e

    servers = {n: benchmarks[n].get("server", {}) for n in names}
    versions = {s.get("version") for s in servers.values() if s.get("version")}
    latest: dict[str, Any] = {
        "generated": C.now_iso(),
        "machine": {**machine_description(), "load_average_now": C.load_average()},
        "server": {n: {"version": s.get("version"), "source": s.get("source"), "connection": s.get("connection"),
                       "settings": {k: s.get("settings", {}).get(k) for k in KEY_SETTINGS}}
                   for n, s in servers.items()},
        "same_server_version": len(versions) <= 1,
        "runs": {n: {"timestamp": benchmarks[n].get("timestamp"),
                     "load_average_at_start": benchmarks[n].get("machine", {}).get("load_average_at_start"),
                     "load_average_at_end": benchmarks[n].get("machine", {}).get("load_average_at_end"),
                     "total_seconds": benchmarks[n].get("total_seconds"),
                     "commit": benchmarks[n].get("repo", {}).get("commit")} for n in names},
        "ratios": ratios,
        "missed": [{"benchmark": n, **r} for n in names for r in ratios[n] if r["result"] == "MISSED"],
        "benchmarks": benchmarks,
    }

    # -- markdown ----------------------------------------------------------------------------
    m = latest["machine"]
    md = ["# pyes benchmarks: latest results", ""]
    md.append(f"Generated {latest['generated']} by `make bench` (bench/report.py from bench/results/*.json). "
              "Every figure is a median of interleaved rounds; every ratio compares two figures measured "
              "side by side in the same run on the same server. The machine is shared, so absolute rates are "
              "noisy; the ratios are what count, and the per-round range says how far to trust each.")
    md.append("")
    md.append(f"**Machine:** {m['cpu_model'] or 'unknown CPU'}, {m['cpu_count']} CPUs, {m['memory'] or '?'} "
              f"memory; {m['platform']}; Python {m['python']}.")
    md.append("")
    srows = []
    for n in names:
        s = latest["server"][n]
        st = s["settings"]
        run = latest["runs"][n]
        la = run["load_average_at_start"]
        srows.append([n, fmt(run["timestamp"]), (s["version"] or "?").split(" on ")[0],
                      fmt(s["source"]), ", ".join(f"{k}={st[k]}" for k in KEY_SETTINGS if st.get(k) is not None),
                      f"{la[0]:.2f}" if la else "-", fmt(run["total_seconds"])])
    md.append(md_table(["benchmark", "run at", "server", "source", "settings", "load avg at start", "seconds"],
                       srows))
    if not latest["same_server_version"]:
        md.append("\n**Warning:** these results come from different server versions.")
    md.append("")
    md.append("## Targets")
    md.append("")
    trows = []
    for n in names:
        for r in ratios[n]:
            if r["target"] is not None:
                trows.append([n, r["group"], r["what"], f"{r['ratio']:.2f}", rng(r["per_round"]),
                              f">= {r['target']}", r["result"] or "-"])
    md.append(md_table(["benchmark", "case", "ratio of", "ratio", "per-round range", "target", "result"], trows)
              if trows else "No benchmark states a target.")
    md.append("")
    for n in names:
        md.append(f"## {n}")
        md.append("")
        doc = "bench/concurrency.py --with-notify" if n == "concurrency_notify" else f"bench/{n}.py"
        md.append(f"From `{doc}`; every figure in `bench/results/{n}.json`.")
        md.append("")
        rows = [[r["group"], r["what"], fmt(r["pyes"], 1 if r["unit"].startswith("ms") else 0),
                 fmt(r["reference"], 1 if r["unit"].startswith("ms") else 0), r["unit"], f"{r['ratio']:.2f}",
                 rng(r["per_round"]), f">= {r['target']}" if r["target"] is not None else "-", r["result"] or "-"]
                for r in ratios[n]]
        md.append(md_table(["case", "ratio of", "pyes", "reference", "unit", "ratio", "per-round range", "target",
                            "result"], rows) if rows else "(no ratio found in this file)")
        md.append("")
        whys = [text for (b, g), text in WHY.items() if b == n and (g == "*" or any(
            r["group"] == g and r["result"] == "MISSED" for r in ratios[n]))]
        for text in whys:
            md.append(f"*Why:* {text}")
            md.append("")
    missed = latest["missed"]
    md.append("## Missed targets")
    md.append("")
    if missed:
        for r in missed:
            md.append(f"- {r['benchmark']}, {r['group']}: {r['what']} = {r['ratio']:.2f} (target {r['target']})")
    else:
        md.append("None.")
    md.append("")
    note = plot(benchmarks, args.results / "append.png")
    if note is None:
        md.append("![throughput against batch size and writers](append.png)")
    else:
        md.append(f"*No plot:* {note}.")
    md.append("")
    C.write_json(args.results / "latest.json", latest)
    (args.results / "latest.md").write_text("\n".join(md))
    print("\n".join(md[: 12 + len(srows) + len(trows)]))
    print(f"\nwrote {args.results / 'latest.json'}, {args.results / 'latest.md'}"
          + (f", {args.results / 'append.png'}" if note is None else f"; {note}"))
    return 0 if note is None else 1


if __name__ == "__main__":
    sys.exit(main())
