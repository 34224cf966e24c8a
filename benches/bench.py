#!/usr/bin/env python3
"""Measure vane against direct baselines and print the report (Python 3.11+ standard library only).

Called by benches/run.sh, which builds vane, makes the temp dir and generates the DAGs:

    python3 benches/bench.py --vane target/release/vane --dags-root TMP/dags --tmp TMP [--reps 5]

Every figure is timed against its baseline in the same process, alternating vane and baseline
repetitions so that drift in machine load hits both alike, after one untimed warm-up of each.
Exit status: 0 when the report was printed (targets met or not), 2 when something broke.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

FANOUT_TASKS = 1_000
CHAIN_TASKS = 200
BIG_TASKS = 10_000
MARK_COMMAND = 'date +%s%N >> "$VANE_WORK/marks"; true; date +%s%N >> "$VANE_WORK/marks"'

CHECK_ROWS = 1_000_000
# Issue 14's targets (every transition durable, `synchronous = FULL`); the README's table
# gives the same ones. Issue 10 set 1.5x for the fan-out and 2 ms per edge before it.
TARGET_FANOUT_RATIO = 1.2
TARGET_FANOUT_RATIO_PG = 1.5
TARGET_EDGE_ADDED_MS = 0.5


class Broke(Exception):
    """Something failed that a benchmark cannot report around."""


# ---------------------------------------------------------------- helpers


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    s = sorted(xs)
    k = max(0, -(-95 * len(s) // 100) - 1)
    return s[k]


def fmt_list(xs: list[float], fmt: str) -> str:
    return " ".join(format(x, fmt) for x in xs)


def run(argv: list[str], *, log: Path, env: dict[str, str] | None = None, what: str) -> float:
    """Run argv to completion with stdout+stderr to `log`; return wall seconds. Raise on failure."""
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        t1 = time.perf_counter()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise Broke(f"{what} exited {proc.returncode}: {' '.join(argv)}\n  " + "\n  ".join(tail))
    return t1 - t0


def peak_rss_kib(argv: list[str], *, log: Path, what: str) -> int:
    """Max RSS of a process (and the children it waited for) in KiB: /usr/bin/time -v when it
    exists, else wait4()'s rusage, which is what /usr/bin/time reads anyway."""
    gnu_time = Path("/usr/bin/time")
    if gnu_time.exists():
        report = log.with_suffix(".time")
        run([str(gnu_time), "-v", "-o", str(report), *argv], log=log, what=what)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        if not m:
            raise Broke(f"/usr/bin/time -v printed no maximum resident set size for {what}")
        return int(m.group(1))
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise Broke(f"{what} exited {proc.returncode}: {' '.join(argv)}")
    return usage.ru_maxrss  # KiB on Linux


def rss_method() -> str:
    return "/usr/bin/time -v" if Path("/usr/bin/time").exists() else "wait4() rusage (no /usr/bin/time)"


_US = datetime.resolution  # timedelta(microseconds=1)


def ts_us(text: str) -> int:
    """RFC 3339 text from the attempts table -> microseconds since the epoch, exactly."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // _US


def db_last_run(db: Path) -> list[tuple[str, str, str | None, str | None]]:
    """(task_id, state, started_at, ended_at) of the first attempt of every task in the newest run."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (run_id,) = con.execute("SELECT MAX(run_id) FROM attempts").fetchone()
        return con.execute(
            "SELECT task_id, state, started_at, ended_at FROM attempts"
            " WHERE run_id = ? AND attempt = 1 ORDER BY task_id",
            (run_id,),
        ).fetchall()
    finally:
        con.close()


class SqliteDb:
    """A SQLite database as the benchmarks see it: the `--db` argument and read-only queries."""

    def __init__(self, path: Path):
        self.url = str(path)

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """The rows of a query, every value as text (None as ''), like `PgDatabase.rows`."""
        con = sqlite3.connect(f"file:{self.url}?mode=ro", uri=True)
        try:
            return [tuple("" if v is None else str(v) for v in r) for r in con.execute(sql)]
        finally:
            con.close()

    def drop(self) -> None:
        pass  # the file goes with the temp dir

    @staticmethod
    def epoch(column: str) -> str:
        """SQL for an RFC 3339 text column as seconds since the epoch."""
        return f"((julianday({column}) - 2440587.5) * 86400.0)"


class PgDatabase:
    """A throw-away PostgreSQL database for one benchmark run, dropped at the end; `tag` tells
    apart several made by one process."""

    def __init__(self, server: str, tag: str = ""):
        self.server = server.rstrip("/")
        self.name = f"vane_bench_{os.getpid()}{'_' + tag if tag else ''}"
        self.url = f"{self.server}/{self.name}"
        self._psql(f"DROP DATABASE IF EXISTS {self.name}")
        self._psql(f"CREATE DATABASE {self.name}")

    def _psql(self, sql: str) -> None:
        r = subprocess.run(["psql", "-X", "-q", "-d", f"{self.server}/postgres", "-c", sql],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Broke(f"PostgreSQL at {self.server} (set VANE_BENCH_PG_URL, or VANE_BENCH_PG=0 to skip): "
                        f"{r.stderr.strip()}")

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """The rows of a query on this database, every value as text (NULL as '')."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.url, "-c", sql], capture_output=True, text=True)
        if r.returncode != 0:
            raise Broke(f"psql on {self.url}: {r.stderr.strip()}\n  query: {sql}")
        return [tuple(line.split("\t")) for line in r.stdout.splitlines() if line]

    def drop(self) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    @staticmethod
    def epoch(column: str) -> str:
        """SQL for a timestamptz column as seconds since the epoch."""
        return f"extract(epoch from {column})"


def check_run_succeeded(vane_base: list[str], n: int, what: str) -> None:
    """The newest run's tasks all succeeded, read through `vane`: works on every backend."""
    runs = json.loads(subprocess.run(vane_base + ["runs", "--json", "--limit", "1"], check=True,
                                     capture_output=True, text=True).stdout)
    show = json.loads(subprocess.run(vane_base + ["show", str(runs[0]["id"]), "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    ok = sum(1 for t in show["tasks"] if t["state"] == "success")
    if len(show["tasks"]) != n or ok != n:
        raise Broke(f"{what}: the database records {ok}/{len(show['tasks'])} successful tasks, expected {n}")


def check_all_succeeded(db: Path, n: int, what: str) -> None:
    rows = db_last_run(db)
    ok = sum(1 for r in rows if r[1] == "success")
    if len(rows) != n or ok != n:
        raise Broke(f"{what}: the database records {ok}/{len(rows)} successful attempts, expected {n}")


# ---------------------------------------------------------------- figures


def fig_fanout(a, out: dict) -> None:
    dags = a.dags_root / "fanout"
    db = a.tmp / "fanout-db" / "vane.db"
    vane = [str(a.vane), "--dags", str(dags), "--db", str(db), "run", "fanout"]
    direct = ["sh", "-c", f"seq {FANOUT_TASKS} | xargs -P2 -I{{}} sh -c true"]
    log = a.tmp / "fanout.log"

    # The same run on PostgreSQL, interleaved with the others so all three see the same machine.
    pg = PgDatabase(a.pg) if a.pg else None
    try:
        vane_pg = None
        if pg:
            pg_base = [str(a.vane), "--dags", str(dags), "--db", pg.url,
                       "--state-dir", str(a.tmp / "fanout-pg-state")]
            vane_pg = pg_base + ["run", "fanout"]
            run(vane_pg, log=log, what="vane run fanout on PostgreSQL (warm-up)")
        run(vane, log=log, what="vane run fanout (warm-up)")
        run(direct, log=log, what="direct xargs (warm-up)")
        tv, tp, td = [], [], []
        for _ in range(a.reps):
            tv.append(run(vane, log=log, what="vane run fanout"))
            check_all_succeeded(db, FANOUT_TASKS, "vane run fanout")
            if vane_pg:
                tp.append(run(vane_pg, log=log, what="vane run fanout on PostgreSQL"))
                check_run_succeeded(pg_base, FANOUT_TASKS, "vane run fanout on PostgreSQL")
            td.append(run(direct, log=log, what="direct xargs"))
    finally:
        if pg:
            pg.drop()
    mv, md = median(tv), median(td)
    ratio = mv / md
    print(f"[1] Fan-out overhead: {FANOUT_TASKS} independent `true` tasks, 2 at a time")
    print(f"    vane run (SQLite)           raw s: {fmt_list(tv, '.3f')}   median {mv:.3f} s")
    if tp:
        mp = median(tp)
        print(f"    vane run (PostgreSQL)       raw s: {fmt_list(tp, '.3f')}   median {mp:.3f} s")
    print(f"    direct `xargs -P2 sh -c`    raw s: {fmt_list(td, '.3f')}   median {md:.3f} s")
    print(f"    ratio vane/direct: SQLite {ratio:.2f}   (target <= {TARGET_FANOUT_RATIO})")
    print(f"    vane's cost per task beyond the direct spawn: SQLite {(mv - md) / FANOUT_TASKS * 1e3:.3f} ms")
    if tp:
        print(f"    ratio vane/direct: PostgreSQL {mp / md:.2f}   (target <= {TARGET_FANOUT_RATIO_PG})")
        print(f"    vane's cost per task beyond the direct spawn: PostgreSQL "
              f"{(mp - md) / FANOUT_TASKS * 1e3:.3f} ms")
        out["fanout_pg"] = (mp / md, mp, md)
    print()
    out["fanout"] = (ratio, mv, md)


def marks_gaps_ms(marks: Path) -> tuple[list[int], list[int], list[float]]:
    """(starts, ends, gaps in ms) from a marks file: start/end pairs, one task after the other."""
    ns = [int(line) for line in marks.read_text().split()]
    if len(ns) != 2 * CHAIN_TASKS:
        raise Broke(f"{marks}: {len(ns)} marks, expected {2 * CHAIN_TASKS}")
    starts, ends = ns[0::2], ns[1::2]
    gaps = [(starts[i + 1] - ends[i]) / 1e6 for i in range(CHAIN_TASKS - 1)]
    if min(gaps) < 0:
        raise Broke(f"{marks}: a task started before the previous one ended: the chain overlapped")
    return starts, ends, gaps


def fig_chain(a, out: dict) -> None:
    dags = a.dags_root / "chain"
    db = a.tmp / "chain-db" / "vane.db"
    log = a.tmp / "chain.log"
    loop = f'for i in $(seq {CHAIN_TASKS}); do sh -c "$MARK_COMMAND"; done'

    def vane_once(tag: str) -> Path:
        work = a.tmp / f"chain-work-{tag}"
        work.mkdir(parents=True)
        run([str(a.vane), "--dags", str(dags), "--db", str(db), "--work", str(work), "run", "chain"],
            log=log, what="vane run chain")
        return work / "marks"

    def direct_once(tag: str) -> Path:
        work = a.tmp / f"chain-direct-{tag}"
        work.mkdir(parents=True)
        env = dict(os.environ, VANE_WORK=str(work), MARK_COMMAND=MARK_COMMAND)
        run(["bash", "-c", loop], log=log, env=env, what="direct shell loop")
        return work / "marks"

    # The same chain on PostgreSQL, interleaved with the others.
    pg = PgDatabase(a.pg, "chain") if a.pg else None
    pg_base = [str(a.vane), "--dags", str(dags), "--db", pg.url,
               "--state-dir", str(a.tmp / "chain-pg-state")] if pg else []

    def vane_pg_once(tag: str) -> Path:
        work = a.tmp / f"chain-pg-work-{tag}"
        work.mkdir(parents=True)
        run(pg_base + ["--work", str(work), "run", "chain"], log=log, what="vane run chain on PostgreSQL")
        check_run_succeeded(pg_base, CHAIN_TASKS, "vane run chain on PostgreSQL")
        return work / "marks"

    try:
        _fig_chain(a, out, vane_once, direct_once, vane_pg_once if pg else None, db)
    finally:
        if pg:
            pg.drop()


def _fig_chain(a, out: dict, vane_once, direct_once, vane_pg_once, db: Path) -> None:
    vane_once("warmup")
    direct_once("warmup")
    if vane_pg_once:
        vane_pg_once("warmup")
    v_med, v_p95, d_med, d_p95, p_med = [], [], [], [], []
    # Where vane's gap goes, from its own records (both clocks are CLOCK_REALTIME on this host):
    #   task end mark(i) -> ended_at(i)         vane notices the exit (reaping) and stamps it
    #   ended_at(i)      -> started_at(i+1)     state machine, job setup
    #   started_at(i+1)  -> task start mark(i+1) commit (fsync) + spawn + shell and `date` start
    split = {"exit->ended_at": [], "ended_at->started_at": [], "started_at->start mark": []}
    for r in range(a.reps):
        marks = vane_once(str(r))
        starts, ends, gaps = marks_gaps_ms(marks)
        check_all_succeeded(db, CHAIN_TASKS, "vane run chain")
        v_med.append(median(gaps))
        v_p95.append(p95(gaps))
        rows = db_last_run(db)  # ordered by task id = chain order (zero-padded ids)
        st = [ts_us(x[2]) for x in rows]
        en = [ts_us(x[3]) for x in rows]
        a1 = [(en[i] * 1000 - ends[i]) / 1e6 for i in range(CHAIN_TASKS - 1)]
        a2 = [(st[i + 1] - en[i]) / 1e3 for i in range(CHAIN_TASKS - 1)]
        a3 = [(starts[i + 1] - st[i + 1] * 1000) / 1e6 for i in range(CHAIN_TASKS - 1)]
        split["exit->ended_at"].append(median(a1))
        split["ended_at->started_at"].append(median(a2))
        split["started_at->start mark"].append(median(a3))

        if vane_pg_once:
            _, _, pgaps = marks_gaps_ms(vane_pg_once(str(r)))
            p_med.append(median(pgaps))

        _, _, dgaps = marks_gaps_ms(direct_once(str(r)))
        d_med.append(median(dgaps))
        d_p95.append(p95(dgaps))
    vm, vp, dm, dp = median(v_med), median(v_p95), median(d_med), median(d_p95)
    added = vm - dm
    print(f"[2] Per-edge latency: chain of {CHAIN_TASKS} `true` tasks; gap = start(i+1) - end(i),"
          " stamped by the tasks (date +%s%N)")
    print(f"    vane   median gap per run  raw ms: {fmt_list(v_med, '.3f')}   median {vm:.3f} ms")
    print(f"    vane   p95 gap per run     raw ms: {fmt_list(v_p95, '.3f')}   median {vp:.3f} ms")
    print(f"    direct median gap per run  raw ms: {fmt_list(d_med, '.3f')}   median {dm:.3f} ms")
    print(f"    direct p95 gap per run     raw ms: {fmt_list(d_p95, '.3f')}   median {dp:.3f} ms")
    print(f"    added latency per edge (vane median - direct median): {added:.3f} ms"
          f"   (target < {TARGET_EDGE_ADDED_MS} ms)")
    if p_med:
        pm = median(p_med)
        print(f"    vane on PostgreSQL, median gap per run  raw ms: {fmt_list(p_med, '.3f')}   median {pm:.3f} ms")
        print(f"    added latency per edge on PostgreSQL: {pm - dm:.3f} ms   (reported beside SQLite's;"
              " no target of its own)")
        out["chain_pg"] = (pm - dm, pm)
    print("    where vane's gap goes (medians, from the attempts table; µs-resolution stamps):")
    for k, xs in split.items():
        print(f"      {k:<24} raw ms: {fmt_list(xs, '.3f')}   median {median(xs):.3f} ms")
    print()
    out["chain"] = (added, vm, vp, dm)


def fig_validate(a, out: dict) -> None:
    big = a.dags_root / "big" / "big.toml"
    log = a.tmp / "validate.log"
    vane = [str(a.vane), "--dags", str(big.parent), "--db", str(a.tmp / "validate-db" / "vane.db"),
            "validate", str(big)]
    py = [sys.executable, "-c", 'import tomllib,sys; tomllib.load(open(sys.argv[1],"rb"))', str(big)]
    run(vane, log=log, what="vane validate (warm-up)")
    if f"{BIG_TASKS} tasks" not in log.read_text():
        raise Broke(f"vane validate did not report {BIG_TASKS} tasks:\n{log.read_text()}")
    run(py, log=log, what="python tomllib (warm-up)")
    tv, tp = [], []
    for _ in range(max(5, a.reps)):
        tv.append(run(vane, log=log, what="vane validate"))
        tp.append(run(py, log=log, what="python tomllib"))
    mv, mp = median(tv), median(tp)
    size = big.stat().st_size / 2**20
    print(f"[3] Validation speed: one DAG file of {BIG_TASKS} tasks ({size:.1f} MiB), wall clock per process")
    print(f"    vane validate               raw s: {fmt_list(tv, '.4f')}   median {mv:.4f} s")
    print(f"    python3 tomllib.load only   raw s: {fmt_list(tp, '.4f')}   median {mp:.4f} s")
    print(f"    vane is {mp / mv:.1f}x faster than merely loading the TOML in Python   (target: vane faster)")
    print()
    out["validate"] = (mv, mp)


def fig_memory(a, out: dict) -> None:
    dags = a.dags_root / "fanout"
    db = a.tmp / "memory-db" / "vane.db"
    log = a.tmp / "memory.log"
    vane_run = [str(a.vane), "--dags", str(dags), "--db", str(db), "run", "fanout"]
    vane_val = [str(a.vane), "--dags", str(dags), "--db", str(db), "validate", str(dags / "fanout.toml")]
    direct = ["sh", "-c", f"seq {FANOUT_TASKS} | xargs -P2 -I{{}} sh -c true"]
    reps = max(3, min(a.reps, 5))
    run(vane_run, log=log, what="vane run fanout (warm-up)")
    rr, rv, rd = [], [], []
    for _ in range(reps):
        rr.append(peak_rss_kib(vane_run, log=log, what="vane run fanout") / 1024)
        rv.append(peak_rss_kib(vane_val, log=log, what="vane validate fanout") / 1024)
        rd.append(peak_rss_kib(direct, log=log, what="direct xargs") / 1024)
    mr, mv, md = median(rr), median(rv), median(rd)
    print(f"[4] Peak memory (max RSS, {rss_method()}) with {FANOUT_TASKS} tasks")
    print(f"    vane run fanout             raw MiB: {fmt_list(rr, '.1f')}   median {mr:.1f} MiB")
    print(f"    vane validate same DAG      raw MiB: {fmt_list(rv, '.1f')}   median {mv:.1f} MiB   (binary + DAG, no run)")
    print(f"    direct xargs                raw MiB: {fmt_list(rd, '.1f')}   median {md:.1f} MiB")
    print(f"    what running adds over loading: {mr - mv:.1f} MiB")
    print()
    out["memory"] = (mr, mv)


CHECKS_DAG = """
[tasks.check]
kind = "validate"
dataset = "{data}"
rows = {{ min = 1 }}
[tasks.check.columns.id]
type = "integer"
unique = true
[tasks.check.columns.age]
type = "integer"
min = 0
max = 125
[tasks.check.columns.plan]
allowed = ["basic", "standard", "premium"]
[tasks.check.columns.country]
distinct = 7
[tasks.check.columns.amount]
type = "number"
min = 0
mean = {{ min = 0, max = 1000 }}
[tasks.check.columns.tenure]
completeness = 0.95
"""

# The same checks, hand-written in one pass over the file: what a team writes without vane.
CHECKS_BASELINE = r"""
import csv, sys
rows = 0; ids = set(); bad = 0; plans = {"basic", "standard", "premium"}; countries = set()
amount_sum = 0.0; tenure_missing = 0
with open(sys.argv[1], newline="") as f:
    for r in csv.DictReader(f):
        rows += 1
        i = int(r["id"])
        if i in ids: bad += 1
        ids.add(i)
        age = int(r["age"])
        if not 0 <= age <= 125: bad += 1
        if r["plan"] not in plans: bad += 1
        countries.add(r["country"])
        a = float(r["amount"])
        if a < 0: bad += 1
        amount_sum += a
        if r["tenure"] == "": tenure_missing += 1
ok = bad == 0 and len(countries) == 7 and 0 <= amount_sum / rows <= 1000 and tenure_missing / rows <= 0.05
sys.exit(0 if ok else 1)
"""


def write_check_data(path: Path) -> None:
    import random
    rng = random.Random(7)
    plans = ["basic", "standard", "premium"]
    countries = ["US", "GB", "DE", "FR", "IN", "BR", "JP"]
    with open(path, "w") as f:
        f.write("id,age,plan,country,amount,tenure\n")
        for i in range(CHECK_ROWS):
            tenure = "" if rng.random() < 0.01 else str(rng.randrange(3650))
            f.write(f"{i},{rng.randrange(18, 95)},{rng.choice(plans)},{rng.choice(countries)},"
                    f"{rng.random() * 200:.2f},{tenure}\n")


def fig_checks(a, out: dict) -> None:
    dags = a.tmp / "checks-dags"
    dags.mkdir(exist_ok=True)
    data = a.tmp / "checks.csv"
    write_check_data(data)
    (dags / "checks.toml").write_text(CHECKS_DAG.format(data=data))
    db = a.tmp / "checks-db" / "vane.db"
    log = a.tmp / "checks.log"
    vane = [str(a.vane), "--dags", str(dags), "--db", str(db), "run", "checks"]
    py = [sys.executable, "-c", CHECKS_BASELINE, str(data)]
    run(vane, log=log, what="vane run checks (warm-up)")
    run(py, log=log, what="python checks (warm-up)")
    tv, tp = [], []
    for _ in range(a.reps):
        tv.append(run(vane, log=log, what="vane run checks"))
        tp.append(run(py, log=log, what="python checks"))
    rss = peak_rss_kib(vane, log=log, what="vane run checks") / 1024
    mv, mp = median(tv), median(tp)
    size = data.stat().st_size / 2**20
    print(f"[5] Data checks: {CHECK_ROWS:,} rows x 6 columns of CSV ({size:.0f} MiB), 10 checks, wall clock")
    print(f"    vane run (validate task)    raw s: {fmt_list(tv, '.3f')}   median {mv:.3f} s"
          f"   ({CHECK_ROWS / mv / 1e6:.2f} M rows/s)")
    print(f"    python3 csv, same checks    raw s: {fmt_list(tp, '.3f')}   median {mp:.3f} s")
    print(f"    peak RSS of the validate task's vane run: {rss:.0f} MiB")
    print()
    out["checks"] = (mv, mp, rss)


# ---------------------------------------------------------------- main


def summary(out: dict) -> None:
    rows = [("figure", "value", "baseline", "target", "result")]
    ratio, mv, md = out["fanout"]
    rows.append(("1 fan-out, vane/direct", f"{ratio:.2f}x ({mv:.3f} s)", f"{md:.3f} s direct",
                 f"<= {TARGET_FANOUT_RATIO}x", "PASS" if ratio <= TARGET_FANOUT_RATIO else "MISS"))
    if "fanout_pg" in out:
        ratio_pg, mp, md = out["fanout_pg"]
        rows.append(("1 fan-out, PostgreSQL", f"{ratio_pg:.2f}x ({mp:.3f} s)", f"{md:.3f} s direct",
                     f"<= {TARGET_FANOUT_RATIO_PG}x", "PASS" if ratio_pg <= TARGET_FANOUT_RATIO_PG else "MISS"))
    added, vm, vp, dm = out["chain"]
    rows.append(("2 per-edge added latency", f"{added:.3f} ms (gap {vm:.3f}, p95 {vp:.3f})",
                 f"{dm:.3f} ms shell loop", f"< {TARGET_EDGE_ADDED_MS} ms",
                 "PASS" if added < TARGET_EDGE_ADDED_MS else "MISS"))
    if "chain_pg" in out:
        added_pg, pm = out["chain_pg"]
        rows.append(("2 per-edge added latency, PostgreSQL", f"{added_pg:.3f} ms (gap {pm:.3f})",
                     f"{dm:.3f} ms shell loop", "none set", "INFO"))
    v, p = out["validate"]
    rows.append(("3 validate 10k tasks", f"{v:.4f} s", f"{p:.4f} s tomllib", "vane faster",
                 "PASS" if v < p else "MISS"))
    r, val = out["memory"]
    rows.append(("4 peak RSS, run 1k tasks", f"{r:.1f} MiB", f"{val:.1f} MiB validate", "none set", "INFO"))
    cv, cp, crss = out["checks"]
    rows.append((f"5 data checks, {CHECK_ROWS // 1000}k rows", f"{cv:.3f} s, {crss:.0f} MiB RSS",
                 f"{cp:.3f} s python csv", "none set", "INFO"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    print("Summary (medians)")
    for n, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vane", type=Path, required=True)
    ap.add_argument("--dags-root", type=Path, required=True)
    ap.add_argument("--tmp", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", choices=["fanout", "chain", "validate", "memory", "checks"], action="append",
                    help="run only these figures (repeatable); the summary needs all five")
    ap.add_argument("--pg", default=None,
                    help="PostgreSQL server URL without a database (e.g. postgres://root@127.0.0.1:5432); "
                         "the fan-out and the chain are measured there too, in databases created and dropped for them")
    a = ap.parse_args()
    a.vane = a.vane.resolve()
    for tool in ("sh", "bash", "seq", "xargs", "date"):
        if shutil.which(tool) is None:
            print(f"bench: `{tool}` not found", file=sys.stderr)
            return 2
    out: dict = {}
    figures = {"fanout": fig_fanout, "chain": fig_chain, "validate": fig_validate, "memory": fig_memory,
               "checks": fig_checks}
    try:
        for name, fig in figures.items():
            if not a.only or name in a.only:
                fig(a, out)
    except Broke as e:
        print(f"bench: BROKE: {e}", file=sys.stderr)
        return 2
    # Every figure's own key there: the PostgreSQL ones come on top, and counting keys missed
    # the summary whenever they did.
    if all(name in out for name in figures):
        summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
