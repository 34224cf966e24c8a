#!/usr/bin/env python3
"""vane at scale: many DAGs, a long history, a year-long backfill (Python 3.11+ standard library only).

Called by benches/scale.sh, which builds vane and makes the temp dir:

    python3 benches/scale.py --vane target/release/vane --tmp TMP [--reps 3] [--only scheduler]

Figures, each against a baseline measured in the same run:

  1. the scheduler daemon with 1,000 DAGs, each on its own cron: pass time, idle CPU, max RSS
     (baseline: the same daemon with one DAG);
  2. a database holding 1,000,000 task attempts: `vane runs DAG --limit 20` and the scheduler's
     pass time (baseline: the same on an empty database);
  3. a backfill of 365 daily runs of a 5-task DAG of `true` (baseline: the same 1,825 commands
     spawned two at a time by `xargs -P2`), on SQLite and, with --pg, on PostgreSQL beside it.

Every DAG, database, log and work folder lives under --tmp. Exit status: 0 when the report was
printed (targets met or not), 2 when something broke (a vane command failed, a run did not
succeed, the database schema is not what the history generator knows how to fill).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.dont_write_bytecode = True  # importing bench.py must leave no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Broke, PgDatabase, SqliteDb, fmt_list, median, p95, run  # noqa: E402  (benches/bench.py's helpers)

# ---------------------------------------------------------------- parameters

MANY_DAGS = 1_000
EVERY_MINUTE_DAGS = 5  # of the 1,000: the rest run once a day
MANY_WINDOW_S = 20.0
ONE_DAG_WINDOW_S = 10.0

HIST_RUNS = 200_000
HIST_DAGS = 5  # the history is spread over these DAG ids, hourly, 40,000 runs each
HIST_TASKS = ["extract", "validate", "train", "evaluate", "publish"]  # a chain
HIST_ATTEMPTS = 1_000_000
HIST_FAILED_EVERY = 20  # 5 % of runs failed: `evaluate` failed twice, `publish` upstream_failed
QUIET_DAGS = 5  # loaded beside the history DAGs, with no runs at all
HIST_WINDOW_S = 10.0
RUNS_LIMIT = 20
API_REQUESTS = 30  # per page poll and database, after one warm-up
GRID_RUNS = 25  # runs the UI's grid shows

BACKFILL_FROM, BACKFILL_TO = "2025-01-01", "2025-12-31"
BACKFILL_TICKS = 365
BACKFILL_TASKS = 5
BACKFILL_MAX_ACTIVE = 2

TARGET_PASS_MS = 10.0
TARGET_RSS_MB = 100.0  # MB = 10^6 bytes
TARGET_HISTORY_RATIO = 2.0
TARGET_BACKFILL_RATIO = 1.5  # issue 14 (2x before it)

ADOPT_REPS = 3
SWEEP_S = 5.0  # the scheduler's recovery sweep (RECOVERY_EVERY in crates/vane-daemon)
DEFAULT_TTL_S = 20.0  # DEFAULT_LEASE_TTL in crates/vane-store
SHORT_TTL_S = 6.0
AIRFLOW_ZOMBIE_S = 300.0  # Airflow's [scheduler] zombie threshold default
# A crash falls at any phase of B's sweeps (5 s, checked on 0.5 s passes) and of A's lease
# renewals (every TTL/3: 6.7 s by default): rep n of N kills A (n + 1/2) * 7 s / N after B is up.
ADOPT_PHASE_S = 7.0

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Nothing the user set may point vane at their own setup or change its logging.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in ("VANE_DB", "VANE_DAGS", "VANE_WORK", "VANE_LOG", "RUST_LOG")}


def ts(dt: datetime) -> str:
    """RFC 3339 in UTC with microseconds and Z: what vane writes, so text order is time order."""
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"  # [:-6]: +00:00


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def vane_cmd(a, dags: Path, db: Path | str, *args: str, work: Path | None = None,
             state: Path | None = None) -> list[str]:
    """`vane` on `db` (a SQLite path or a PostgreSQL URL); with PostgreSQL, give `state` (logs,
    work), which would otherwise be `.vane` in the current directory."""
    argv = [str(a.vane), "--dags", str(dags), "--db", str(db)]
    if work is not None:
        argv += ["--work", str(work)]
    if state is not None:
        argv += ["--state-dir", str(state)]
    return argv + list(args)


def ms(us: float) -> float:
    return us / 1000.0


# ---------------------------------------------------------------- the scheduler, observed


@dataclass
class Window:
    """One scheduler process, observed from its first pass to just before SIGTERM."""
    passes_us: list[int] = field(default_factory=list)  # in log order, the first included
    tick_passes_us: list[int] = field(default_factory=list)  # passes that created runs
    runs_created: int = 0
    dags: int = 0
    startup_s: float = 0.0  # process spawned -> first pass logged (open db, load, recover, pass)
    load_ms: float = 0.0  # "Scheduler starting." -> first pass logged, from the log's own stamps
    window_s: float = 0.0
    cpu_pct: float = 0.0  # utime+stime from /proc/PID/stat, clock ticks
    cpu_pct_ns: float | None = None  # same from /proc/PID/task/*/schedstat (ns resolution)
    hwm_mib: float = 0.0
    rss_mib: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def steady_us(self) -> list[int]:
        return self.passes_us[1:]


def proc_cpu_ticks(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2:].split()  # fields from 3 (state) on
    return int(rest[11]) + int(rest[12])  # utime (14), stime (15)


def proc_cpu_ns(pid: int) -> int | None:
    total = 0
    try:
        for t in Path(f"/proc/{pid}/task").iterdir():
            total += int((t / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise Broke(f"/proc/{pid}/status has no {key}")


def read_log(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"fields": {"message": line}, "level": "RAW"})
    return out


def message(rec: dict) -> str:
    return rec.get("fields", {}).get("message", "")


def observe_scheduler(a, dags: Path, db: Path | str, work: Path, log: Path, seconds: float,
                      expect_dags: int, *, wait_for_boundary: bool = False,
                      state: Path | None = None) -> Window:
    """Start `vane scheduler`, wait for its first pass, watch it `seconds`, SIGTERM it, parse its log.

    With `wait_for_boundary`, first waits (if needed) so that a minute boundary, where the
    every-minute DAGs tick, falls well inside the window: every run then measures the same mix."""
    if wait_for_boundary:
        s = time.time() % 60
        # Window starts ~0.5 s after spawn; want the boundary 3 s after its start at the earliest
        # and 3 s before its end at the latest.
        if not (60 - seconds + 3 - 0.5 <= s <= 60 - 3 - 0.5):
            wait = (60 - seconds / 2 - 0.5 - s) % 60
            print(f"[1] (waiting {wait:.0f} s so that the window holds a minute boundary, where the"
                  " every-minute DAGs tick)", flush=True)
            time.sleep(wait)
    env = dict(CLEAN_ENV, VANE_LOG="debug")
    argv = vane_cmd(a, dags, db, "scheduler", "--log-format", "json", "--grace", "10", work=work, state=state)
    w = Window()
    with log.open("wb") as out:
        t_spawn = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        try:
            # Ready: the first "Scheduler pass." line is in the log.
            deadline = time.perf_counter() + 120
            while True:
                if proc.poll() is not None:
                    raise Broke(f"vane scheduler exited {proc.returncode} before its first pass:\n"
                                + log.read_text(errors="replace")[-3000:])
                if b'"Scheduler pass."' in log.read_bytes():
                    break
                if time.perf_counter() > deadline:
                    raise Broke("vane scheduler logged no pass within 120 s")
                time.sleep(0.01)
            t0 = time.perf_counter()
            w.startup_s = t0 - t_spawn
            c0, n0 = proc_cpu_ticks(proc.pid), proc_cpu_ns(proc.pid)
            time.sleep(seconds)
            c1, n1 = proc_cpu_ticks(proc.pid), proc_cpu_ns(proc.pid)
            w.hwm_mib = proc_status_kib(proc.pid, "VmHWM") / 1024
            w.rss_mib = proc_status_kib(proc.pid, "VmRSS") / 1024
            t1 = time.perf_counter()
            w.window_s = t1 - t0
            w.cpu_pct = (c1 - c0) / CLK_TCK / w.window_s * 100
            if n0 is not None and n1 is not None:
                w.cpu_pct_ns = (n1 - n0) / 1e9 / w.window_s * 100
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise Broke("vane scheduler did not stop within 60 s of SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc != 0:
        raise Broke(f"vane scheduler exited {rc} after SIGTERM:\n" + log.read_text(errors="replace")[-3000:])

    records = read_log(log)
    started = None
    created_since_pass = 0
    for rec in records:
        msg = message(rec)
        f = rec.get("fields", {})
        if msg == "Scheduler starting.":
            started = parse_ts(rec["timestamp"])
        elif msg == "Run created.":
            created_since_pass += 1
            w.runs_created += 1
        elif msg == "Scheduler pass.":
            if not w.passes_us:
                first_at = parse_ts(rec["timestamp"])
                if started is not None:
                    w.load_ms = (first_at - started).total_seconds() * 1000
                w.dags = int(f["dags"])
            w.passes_us.append(int(f["pass_us"]))
            if created_since_pass and len(w.passes_us) > 1:
                w.tick_passes_us.append(int(f["pass_us"]))
            created_since_pass = 0
        if rec.get("level") in ("ERROR", "RAW") and msg:
            w.errors.append(msg)
    if w.dags != expect_dags:
        raise Broke(f"the scheduler loaded {w.dags} DAGs, expected {expect_dags} (log: {log})")
    if len(w.passes_us) < 3:
        raise Broke(f"the scheduler logged only {len(w.passes_us)} passes in {seconds} s (log: {log})")
    if w.errors:
        raise Broke(f"the scheduler logged errors (log: {log}):\n  " + "\n  ".join(w.errors[:10]))
    return w


def check_runs_succeeded(db: SqliteDb | PgDatabase, what: str) -> tuple[int, int]:
    """Every run in `db` succeeded (none failed); returns (runs, successful)."""
    counts = {state: int(n) for state, n in db.rows("SELECT state, COUNT(*) FROM runs GROUP BY state")}
    total = sum(counts.values())
    if counts.get("failed"):
        raise Broke(f"{what}: {counts['failed']} of {total} runs failed ({db.url})")
    return total, counts.get("success", 0)


# ---------------------------------------------------------------- 1. 1,000 DAGs


TIMEZONES = ["UTC"] * 6 + ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London"]


def many_dag(i: int, rng: random.Random, dag_id: str | None = None) -> tuple[str, str]:
    """A small DAG (3 tasks of `true`, chained) on its own cron; the first few every minute."""
    dag_id = dag_id or f"d{i:04d}"
    if i < EVERY_MINUTE_DAGS:
        schedule, tz = "* * * * *", "UTC"
    else:
        schedule, tz = f"{rng.randrange(60)} {rng.randrange(24)} * * *", rng.choice(TIMEZONES)
    text = "\n".join([
        "# Generated by benches/scale.py: one of many DAGs, each on its own cron.",
        "[dag]",
        f'id = "{dag_id}"',
        f'schedule = "{schedule}"',
        f'timezone = "{tz}"',
        "",
        "[tasks.extract]",
        'command = "true"',
        "",
        "[tasks.transform]",
        'command = "true"',
        'depends_on = ["extract"]',
        "",
        "[tasks.load]",
        'command = "true"',
        'depends_on = ["transform"]',
        "",
    ])
    return dag_id, text


def write_dags(folder: Path, dags: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for dag_id, text in dags:
        path = folder / f"{dag_id}.toml"
        path.write_text(text, encoding="utf-8")
        with path.open("rb") as f:
            tomllib.load(f)  # a generator bug shows up here, not as a strange number


def scheduler_windows(a, backend: str, many: Path, one: Path) -> tuple[Window, Window, tuple[int, int]]:
    """On `backend` ("SQLite" or "PostgreSQL"), each on a fresh database: the baseline window
    with one DAG, then the window with 1,000; the runs the latter created all succeeded."""
    pg = backend == "PostgreSQL"
    windows = []
    for tag, folder, seconds, n in (("one", one, ONE_DAG_WINDOW_S, 1), ("many", many, MANY_WINDOW_S, MANY_DAGS)):
        if pg:
            tag += "-pg"
        db = PgDatabase(a.pg, tag.replace("-", "_")) if pg else SqliteDb(a.tmp / f"{tag}-db" / "vane.db")
        try:
            windows.append(observe_scheduler(a, folder, db.url, a.tmp / f"{tag}-work", a.tmp / f"scheduler-{tag}.log",
                                             seconds, n, wait_for_boundary=n > 1,
                                             state=a.tmp / f"{tag}-state" if pg else None))
            if n > 1:
                counts = check_runs_succeeded(db, f"scheduler with {MANY_DAGS:,} DAGs on {backend}")
        finally:
            db.drop()
    w1, wn = windows
    return wn, w1, counts


def print_windows(backend: str, wn: Window, w1: Window, counts: tuple[int, int]) -> None:
    sn, s1 = wn.steady_us, w1.steady_us
    runs, ok = counts
    print(f"    {backend}, {MANY_DAGS} DAGs: {len(sn)} passes in {wn.window_s:.1f} s after the first;"
          f" pass_us median {ms(median(sn)):.3f} ms, p95 {ms(p95(sn)):.3f} ms, max {ms(max(sn)):.3f} ms")
    print(f"      raw pass_us (log order): {fmt_list(sn, 'd')}")
    print(f"      first pass {ms(wn.passes_us[0]):.3f} ms (excluded above); load, from \"Scheduler starting.\""
          f" to the first pass logged: {wn.load_ms:.1f} ms; spawn to first pass {wn.startup_s * 1000:.0f} ms")
    print(f"      runs created in the window: {wn.runs_created} ({runs} in the database, {ok} succeeded);"
          f" passes that created them: {fmt_list(wn.tick_passes_us, 'd') or '-'} us")
    ns = f" (schedstat {wn.cpu_pct_ns:.2f} %)" if wn.cpu_pct_ns is not None else ""
    print(f"      CPU over the window: {wn.cpu_pct:.2f} %{ns}; VmHWM {wn.hwm_mib:.1f} MiB, VmRSS {wn.rss_mib:.1f} MiB")
    print(f"    {backend}, baseline 1 DAG: {len(s1)} passes in {w1.window_s:.1f} s; pass_us median"
          f" {ms(median(s1)):.3f} ms, p95 {ms(p95(s1)):.3f} ms; first pass {ms(w1.passes_us[0]):.3f} ms;"
          f" load {w1.load_ms:.1f} ms")
    ns1 = f" (schedstat {w1.cpu_pct_ns:.2f} %)" if w1.cpu_pct_ns is not None else ""
    print(f"      CPU {w1.cpu_pct:.2f} %{ns1}; VmHWM {w1.hwm_mib:.1f} MiB")
    print(f"    {backend}, cost per loaded DAG per pass: {(median(sn) - median(s1)) / (MANY_DAGS - 1):.2f} us;"
          f" per loaded DAG in memory: {(wn.hwm_mib - w1.hwm_mib) * 1024 / (MANY_DAGS - 1):.1f} KiB")


def fig_scheduler(a, out: dict) -> None:
    rng = random.Random(20251123)
    many = a.tmp / "many-dags"
    write_dags(many, [many_dag(i, rng) for i in range(MANY_DAGS)])
    one = a.tmp / "one-dag"
    write_dags(one, [many_dag(EVERY_MINUTE_DAGS, random.Random(1), "solo")])  # a daily one

    # SQLite, then the same on PostgreSQL (each waits for its own minute boundary).
    backends = {"SQLite": "scheduler"} | ({"PostgreSQL": "scheduler_pg"} if a.pg else {})
    results = {backend: scheduler_windows(a, backend, many, one) for backend in backends}
    print(f"[1] Scheduler with {MANY_DAGS} DAGs, each on its own cron ({EVERY_MINUTE_DAGS} every minute,"
          " the rest daily at spread times); 3 `true` tasks each; baseline: the same daemon with 1 DAG")
    for backend, key in backends.items():
        print_windows(backend, *results[backend])
        out[key] = results[backend][:2]
    if not a.pg:
        print("    PostgreSQL: skipped (VANE_BENCH_PG=0)")
    print(f"    targets: pass < {TARGET_PASS_MS:g} ms (judged on the p95), max RSS < {TARGET_RSS_MB:g} MB"
          f" ({TARGET_RSS_MB * 1e6 / 2**20:.1f} MiB), on each database")
    print()


# ---------------------------------------------------------------- 2. history


def hist_minute(k: int, now: datetime) -> int:
    """Minute of the hour when history DAG k ticks: 12 minutes apart, and the first one at least
    4 minutes after `now`, so that no tick comes while the figure is measured (a tick would add
    a run to one database and not the other)."""
    return (now.minute + 5 + 12 * k) % 60


def hist_dag(k: int, now: datetime) -> tuple[str, str]:
    minute = hist_minute(k, now)
    dag_id = f"hist_{k + 1}"
    lines = [
        "# Generated by benches/scale.py: an hourly pipeline with a long history.",
        "[dag]",
        f'id = "{dag_id}"',
        f'schedule = "{minute} * * * *"',
        "",
    ]
    for i, t in enumerate(HIST_TASKS):
        lines += [f"[tasks.{t}]", f'command = "python3 jobs/{t}.py --date {{{{ ds }}}}"']
        if i:
            lines.append(f'depends_on = ["{HIST_TASKS[i - 1]}"]')
        lines.append("")
    return dag_id, "\n".join(lines)


def quiet_dag(k: int, now: datetime) -> tuple[str, str]:
    dag_id = f"quiet_{k + 1}"
    return dag_id, "\n".join([
        "# Generated by benches/scale.py: a daily DAG that never ran.",
        "[dag]",
        f'id = "{dag_id}"',
        f'schedule = "{11 * k + 3} {(now.hour + 6 + k) % 24} * * *"',  # hours away: no tick now
        "",
        "[tasks.only]",
        'command = "true"',
        "",
    ])


def columns(con: sqlite3.Connection, table: str) -> tuple[set[str], set[str]]:
    """(all columns, NOT NULL columns without a default that are not the rowid) of `table`."""
    info = con.execute(f"PRAGMA table_info({table})").fetchall()
    if not info:
        raise Broke(f"the database vane created has no table `{table}`")
    all_cols = {r[1] for r in info}
    rowid = [r[1] for r in info if r[5]] if sum(1 for r in info if r[5]) == 1 else []
    rowid = [c for c in rowid if next(r[2] for r in info if r[1] == c).upper() == "INTEGER"]
    required = {r[1] for r in info if r[3] and r[4] is None and r[1] not in rowid}
    return all_cols, required


def insert_all(con: sqlite3.Connection, table: str, cols: list[str], rows) -> None:
    have, required = columns(con, table)
    unknown = set(cols) - have
    missing = required - set(cols)
    if unknown or missing:
        raise Broke(f"table `{table}` changed: the history generator fills {sorted(unknown)} that are"
                    f" gone and not {sorted(missing)} that are NOT NULL; update benches/scale.py")
    marks = ", ".join("?" for _ in cols)
    con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)


def build_history(db: Path, dags: list[tuple[str, str]], dag_folder: Path, now: datetime,
                  runs: int = HIST_RUNS) -> dict:
    """Fills a database vane created (schema migrated) with `runs` runs of HIST_DAGS hourly
    DAGs, 5 task instances and 5 attempts per run, and the ticks that decided them. The newest
    run of each DAG is its last tick at or before `now`, so a scheduler started afterwards has
    nothing to catch up. One transaction."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = DELETE")  # one big write; no WAL file of the same size
        con.execute("PRAGMA synchronous = OFF")
        con.execute("BEGIN")
        per_dag = runs // HIST_DAGS
        versions = {}
        vrows = []
        for vid, (dag_id, text) in enumerate(dags, start=1):
            versions[dag_id] = vid
            vrows.append((vid, dag_id, hashlib.sha256(text.encode()).hexdigest(),
                          str(dag_folder / f"{dag_id}.toml"), text,
                          ts(now - timedelta(hours=per_dag + 1))))
        insert_all(con, "dag_versions", ["id", "dag_id", "content_hash", "path", "source", "first_seen"], vrows)

        # Every (logical date, DAG): hourly, newest at or before now.
        plan = []
        for k, (dag_id, _) in enumerate(dags):
            last = now.replace(minute=hist_minute(k, now), second=0, microsecond=0)
            if last > now:
                last -= timedelta(hours=1)
            plan += [(last - timedelta(hours=j), dag_id) for j in range(per_dag)]
        plan.sort()
        host = "ml-prod-1"
        commit = "3f1c9a4be27d5e80c6b1d2a9f0e4c7b8a1d2e3f4"

        def run_rows():
            for rid, (ld, dag_id) in enumerate(plan, start=1):
                failed = rid % HIST_FAILED_EVERY == 0
                yield (rid, dag_id, versions[dag_id], ts(ld), "scheduled", "{}",
                       "failed" if failed else "success",
                       "task `evaluate` failed" if failed else None,
                       commit, 0, host, ts(ld + timedelta(seconds=1)), ts(ld + timedelta(seconds=2)),
                       ts(ld + timedelta(seconds=2 + 60 * len(HIST_TASKS))))

        insert_all(con, "runs", ["id", "dag_id", "dag_version_id", "logical_date", "trigger", "params",
                                 "state", "reason", "git_commit", "git_dirty", "host", "queued_at",
                                 "started_at", "ended_at"], run_rows())

        def tick_rows():
            for rid, (ld, dag_id) in enumerate(plan, start=1):
                yield dag_id, ts(ld), "run", rid, ts(ld + timedelta(seconds=1))

        insert_all(con, "ticks", ["dag_id", "logical_date", "decision", "run_id", "decided_at"], tick_rows())

        def task_states(failed: bool):
            for pos, t in enumerate(HIST_TASKS):
                if not failed or pos < 3:
                    yield pos, t, "success", None
                elif pos == 3:
                    yield pos, t, "failed", "exited with code 1"
                else:
                    yield pos, t, "upstream_failed", "upstream task `evaluate` failed"

        def ti_rows():
            for rid, (ld, _) in enumerate(plan, start=1):
                for pos, t, state, reason in task_states(rid % HIST_FAILED_EVERY == 0):
                    yield rid, t, pos, state, reason, ts(ld + timedelta(seconds=62 + 60 * pos))

        insert_all(con, "task_instances", ["run_id", "task_id", "position", "state", "reason", "updated_at"],
                   ti_rows())

        def attempt_rows():
            for rid, (ld, dag_id) in enumerate(plan, start=1):
                failed = rid % HIST_FAILED_EVERY == 0
                ds = ld.strftime("%Y-%m-%d")
                for pos, t, state, _ in task_states(failed):
                    n = 2 if state == "failed" else 0 if state == "upstream_failed" else 1
                    for att in range(1, n + 1):
                        start = ld + timedelta(seconds=2 + 60 * pos + 30 * (att - 1))
                        yield (rid, t, att, "failed" if state == "failed" else "success",
                               f"python3 jobs/{t}.py --date {ds}", host,
                               f"/srv/ml/.vane/logs/{dag_id}/run-{rid}/{t}.{att}.log",
                               10_000 + (rid * 5 + pos) % 4_000_000, 1_000_000 + rid,
                               1 if state == "failed" else 0,
                               "exited with code 1" if state == "failed" else None,
                               ts(start), ts(start + timedelta(seconds=25)), versions[dag_id])

        insert_all(con, "attempts", ["run_id", "task_id", "attempt", "state", "command", "host", "log_path",
                                     "pid", "pid_start_time", "exit_code", "reason", "started_at",
                                     "ended_at", "dag_version_id"], attempt_rows())
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode = WAL")  # as vane keeps it
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("runs", "task_instances", "attempts", "ticks")}
    finally:
        con.close()
    # Every run has 5 attempts: a failed one retried `evaluate` once and never ran `publish`.
    if counts["runs"] != runs or counts["attempts"] != runs * len(HIST_TASKS):
        raise Broke(f"history database holds {counts}, expected {runs} runs and {runs * len(HIST_TASKS)} attempts")
    return counts


def create_schema(a, folder: Path, db: Path, log: Path) -> None:
    """Has vane create and migrate `db`. Reading commands (`vane runs`) no longer create a missing
    database, so this pauses and unpauses a DAG with no runs, which leaves nothing behind."""
    for verb in ("pause", "unpause"):
        run(vane_cmd(a, folder, db, verb, "quiet_1"), log=log, env=CLEAN_ENV, what=f"vane {verb} (schema)")


def fig_history(a, out: dict) -> None:
    now = datetime.now(timezone.utc)
    dags = [hist_dag(k, now) for k in range(HIST_DAGS)] + [quiet_dag(k, now) for k in range(QUIET_DAGS)]
    folder = a.tmp / "hist-dags"
    write_dags(folder, dags)
    empty_db = a.tmp / "empty-db" / "vane.db"
    full_db = a.tmp / "full-db" / "vane.db"
    log = a.tmp / "history.log"
    env = CLEAN_ENV
    # vane creates and migrates both databases; the history is then written into one of them.
    for db in (empty_db, full_db):
        create_schema(a, folder, db, log)
    t0 = time.perf_counter()
    counts = build_history(full_db, dags[:HIST_DAGS], folder, now)
    build_s = time.perf_counter() - t0
    size_mib = full_db.stat().st_size / 2**20

    hot, quiet = "hist_1", "quiet_1"
    # What is timed: the figure the brief asks for, then two cases where the query matters more.
    commands = {
        f"runs {hot} --limit {RUNS_LIMIT}": (["runs", hot, "--limit", str(RUNS_LIMIT)], "a DAG with history"),
        f"runs {quiet} --limit {RUNS_LIMIT}": (["runs", quiet, "--limit", str(RUNS_LIMIT)], "a DAG with no runs"),
        "dags": (["dags"], f"last run of each of the {len(dags)} DAGs"),
    }

    def timed(db: Path, args: list[str]) -> float:
        return run(vane_cmd(a, folder, db, *args), log=log, env=env, what=f"vane {' '.join(args)}")

    reps = max(5, a.reps)
    results = {}
    for name, (args, _) in commands.items():
        timed(empty_db, args)  # warm-up: binary and database pages in the cache
        timed(full_db, args)
        te, tf = [], []
        for _ in range(reps):
            te.append(timed(empty_db, args))
            tf.append(timed(full_db, args))
        results[name] = (te, tf)
    timed(full_db, ["runs", hot, "--limit", str(RUNS_LIMIT)])
    shown = sum(1 for line in log.read_text().splitlines() if f" {hot} " in f" {line} ")
    if shown != RUNS_LIMIT:
        raise Broke(f"vane runs {hot} --limit {RUNS_LIMIT} printed {shown} runs of {hot}:\n{log.read_text()}")

    we = observe_scheduler(a, folder, empty_db, a.tmp / "empty-work", a.tmp / "scheduler-empty.log",
                           HIST_WINDOW_S, len(dags))
    wf = observe_scheduler(a, folder, full_db, a.tmp / "full-work", a.tmp / "scheduler-full.log",
                           HIST_WINDOW_S, len(dags))

    print(f"[2] History: a database of {counts['runs']:,} runs, {counts['task_instances']:,} task instances,"
          f" {counts['attempts']:,} attempts, {counts['ticks']:,} ticks ({size_mib:.0f} MiB, written in"
          f" {build_s:.1f} s)")
    print(f"    {HIST_DAGS} hourly DAGs share the history (interleaved, {HIST_RUNS // HIST_DAGS:,} runs each);"
          f" {QUIET_DAGS} daily DAGs have no runs")
    for name, (_, label) in commands.items():
        te, tf = results[name]
        print(f"    vane {name} ({label}), wall clock per process")
        print(f"      1M attempts    raw s: {fmt_list(tf, '.4f')}   median {median(tf):.4f} s")
        print(f"      empty database raw s: {fmt_list(te, '.4f')}   median {median(te):.4f} s"
              f"   ratio {median(tf) / median(te):.2f}")
    print(f"    scheduler, {len(dags)} DAGs loaded, {HIST_WINDOW_S:g} s each (first pass excluded)")
    for w, label in ((wf, "1M attempts   "), (we, "empty database")):
        s = w.steady_us
        print(f"      {label} pass_us median {ms(median(s)):.3f} ms, p95 {ms(p95(s)):.3f} ms over {len(s)} passes;"
              f" first pass {ms(w.passes_us[0]):.3f} ms; load {w.load_ms:.1f} ms; runs created {w.runs_created}")
        print(f"        raw pass_us: {fmt_list(s, 'd')}")
    print(f"      ratio of medians {median(wf.steady_us) / median(we.steady_us):.2f}")
    print(f"    target: within {TARGET_HISTORY_RATIO:g}x of the empty database")
    # The UI's baseline holds just the runs its pages show (25 per DAG), so both sides read the
    # same rows and the ratio is what the rest of the history costs.
    small_db = a.tmp / "small-db" / "vane.db"
    create_schema(a, folder, small_db, log)
    build_history(small_db, dags[:HIST_DAGS], folder, now, runs=GRID_RUNS * HIST_DAGS)
    # `vane why` on the latest failed run: against the last good run before it,
    # with the spread of its metrics over up to 20 good runs. The baseline is the same question
    # on the small database, where the DAG has only the runs the UI shows.
    def latest_failed(db: Path) -> int:
        con = sqlite3.connect(db)
        try:
            # Every 20th run failed, and the runs interleave 5 DAGs, so they are all of one DAG.
            row = con.execute("SELECT max(id) FROM runs WHERE state = 'failed'").fetchone()
        finally:
            con.close()
        if row[0] is None:
            raise Broke(f"no failed run in {db}")
        return int(row[0])
    why_args = {db: ["why", str(latest_failed(db))] for db in (full_db, small_db)}
    for db, args in why_args.items():
        timed(db, args)  # warm-up
    wf_why, ws_why = [], []
    for _ in range(reps):
        wf_why.append(timed(full_db, why_args[full_db]))
        ws_why.append(timed(small_db, why_args[small_db]))
    run(vane_cmd(a, folder, full_db, *why_args[full_db]), log=log, env=env, what="vane why")
    if "task `evaluate` failed" not in log.read_text():
        raise Broke(f"vane {' '.join(why_args[full_db])} did not name the failed task:\n{log.read_text()[-2000:]}")
    print("    vane why (the latest failed run: its last good run, the spread of up to 20 good runs)")
    print(f"      1M attempts    raw s: {fmt_list(wf_why, '.4f')}   median {median(wf_why):.4f} s")
    print(f"      {GRID_RUNS} runs/DAG    raw s: {fmt_list(ws_why, '.4f')}   median {median(ws_why):.4f} s"
          f"   ratio {median(wf_why) / median(ws_why):.2f}")
    out["why"] = (wf_why, ws_why)
    pf = time_polls(a, folder, full_db, a.tmp / "serve-full.log")
    pe = time_polls(a, folder, small_db, a.tmp / "serve-small.log")
    print(f"    web UI refresh: the API requests of one page, one after another, {API_REQUESTS} times (vane serve)")
    for name in pf:
        print(f"      {name}: 1M attempts median {median(pf[name]) * 1e3:.2f} ms, p95 {p95(pf[name]) * 1e3:.2f} ms;"
              f" {GRID_RUNS} runs per DAG median {median(pe[name]) * 1e3:.2f} ms")
    print()
    out["history"] = (results, wf, we)
    out["ui"] = (pf, pe)


# What each page of the web UI asks the API for on every refresh (every 5 s while it is open).
UI_POLLS = {
    "DAG list": ["/api/dags", "/api/runs?state=running&limit=0", "/api/alerts",
                 "/api/oncall?turns=1", "/api/status"],
    f"grid of hist_1 ({GRID_RUNS} runs)": [f"/api/dags/hist_1?runs={GRID_RUNS}", "/api/alerts", "/api/oncall?turns=1", "/api/status"],
}


def serve(a, folder: Path, db: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`vane serve` on a free port; the process and its address."""
    out = log.open("wb")
    proc = subprocess.Popen(vane_cmd(a, folder, db, "serve", "--http", "127.0.0.1:0"),
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=CLEAN_ENV)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if "serving the API on http://" in line:
                return proc, line.split("http://", 1)[1].strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise Broke(f"vane serve did not start:\n{log.read_text(errors='replace')}")


def get(addr: str, path: str) -> float:
    """One GET, read to the end; wall seconds. Raise unless 200."""
    host, port = addr.rsplit(":", 1)
    t0 = time.perf_counter()
    con = http.client.HTTPConnection(host, int(port), timeout=60)
    con.request("GET", path)
    resp = con.getresponse()
    body = resp.read()
    t1 = time.perf_counter()
    con.close()
    if resp.status != 200:
        raise Broke(f"GET {path} answered {resp.status}: {body[:300]!r}")
    return t1 - t0


def time_polls(a, folder: Path, db: Path, log: Path) -> dict[str, list[float]]:
    """Per UI page: the wall time of one refresh (its requests one after another), and a
    static file for the HTTP cost alone."""
    proc, addr = serve(a, folder, db, log)
    try:
        pages = dict(UI_POLLS, **{"static /ui/app.js": ["/ui/app.js"]})
        times: dict[str, list[float]] = {}
        for name, paths in pages.items():
            sum(get(addr, p) for p in paths)  # warm-up
            times[name] = [sum(get(addr, p) for p in paths) for _ in range(API_REQUESTS)]
        return times
    finally:
        proc.terminate()
        proc.wait()


# ---------------------------------------------------------------- 3. backfill


def backfill_dag() -> str:
    # A small diamond: a -> (b, c) -> d -> e.
    return "\n".join([
        "# Generated by benches/scale.py: a daily DAG of 5 `true` tasks in a small diamond.",
        "[dag]",
        'id = "yearly"',
        'schedule = "0 2 * * *"',
        'timezone = "UTC"',
        "",
        '[tasks.a]\ncommand = "true"\n',
        '[tasks.b]\ncommand = "true"\ndepends_on = ["a"]\n',
        '[tasks.c]\ncommand = "true"\ndepends_on = ["a"]\n',
        '[tasks.d]\ncommand = "true"\ndepends_on = ["b", "c"]\n',
        '[tasks.e]\ncommand = "true"\ndepends_on = ["d"]\n',
    ])


def check_backfill(a, folder: Path, db, log: Path, ticks: int, state: Path | None = None) -> None:
    """`vane backfills --json` says one backfill, done, `ticks` runs, all succeeded; the database
    (a SqliteDb or a PgDatabase) agrees down to the attempts. Raises Broke otherwise."""
    res = subprocess.run(vane_cmd(a, folder, db.url, "backfills", "--json", state=state),
                         capture_output=True, text=True, env=CLEAN_ENV)
    if res.returncode != 0:
        raise Broke(f"vane backfills --json exited {res.returncode}: {res.stderr}")
    items = json.loads(res.stdout)
    if len(items) != 1:
        raise Broke(f"vane backfills --json lists {len(items)} backfills, expected 1: {res.stdout}")
    b = items[0]
    if not (b["state"] == "done" and b["runs"] == ticks and b["success"] == ticks and b["failed"] == 0):
        raise Broke(f"backfill did not succeed on all {ticks} ticks: {json.dumps(b)} (log: {log})")
    ok_runs = int(db.rows("SELECT COUNT(*) FROM runs WHERE trigger = 'backfill' AND state = 'success'")[0][0])
    ok_att = int(db.rows("SELECT COUNT(*) FROM attempts WHERE state = 'success'")[0][0])
    # Both backends print a date first: `2025-01-01T02:00:00Z`, `2025-01-01 02:00:00+00`.
    days = len({r[0][:10] for r in db.rows("SELECT logical_date FROM runs")})
    if ok_runs != ticks or ok_att != ticks * BACKFILL_TASKS or days != ticks:
        raise Broke(f"the database records {ok_runs} successful backfill runs on {days} days and {ok_att}"
                    f" successful attempts, expected {ticks} and {ticks * BACKFILL_TASKS}")


def backfill_timeline(db) -> dict:
    """Where a backfill's time goes, from its own records (a SqliteDb or a PgDatabase)."""
    if isinstance(db, PgDatabase):
        created = float(db.rows(f"SELECT {db.epoch('created_at')} FROM backfills")[0][0])
        rows = db.rows(f"SELECT {db.epoch('started_at')}, {db.epoch('ended_at')} FROM runs ORDER BY started_at")
        runs = [(float(s), float(e)) for s, e in rows]
    else:
        created = parse_ts(db.rows("SELECT created_at FROM backfills")[0][0]).timestamp()
        rows = db.rows("SELECT started_at, ended_at FROM runs ORDER BY started_at")
        runs = [(parse_ts(s).timestamp(), parse_ts(e).timestamp()) for s, e in rows]
    durations = [(e - s) * 1000 for s, e in runs]
    # A run starts when a slot is free: the gap from the latest end before its start to the start.
    ends = sorted(e for _, e in runs)
    waits = []
    for s, _ in runs[BACKFILL_MAX_ACTIVE:]:
        before = [e for e in ends if e <= s]
        if before:
            waits.append((s - before[-1]) * 1000)
    span = max(ends) - runs[0][0]
    busy = sum(durations) / 1000 / (BACKFILL_MAX_ACTIVE * span)
    return {
        "setup_s": runs[0][0] - created,
        "span_s": span,
        "run_ms": median(durations),
        "wait_ms": median(waits) if waits else float("nan"),
        "wait_p95_ms": p95(waits) if waits else float("nan"),
        "busy": busy,
    }


def print_timeline(tl: dict) -> None:
    print(f"    where the time goes (last rep, from the database): planning and creating the runs"
          f" {tl['setup_s']:.2f} s; first start to last end {tl['span_s']:.2f} s")
    print(f"      one run takes {tl['run_ms']:.1f} ms (median); a run starts {tl['wait_ms']:.1f} ms (median,"
          f" p95 {tl['wait_p95_ms']:.1f}) after a slot frees; the {BACKFILL_MAX_ACTIVE} slots are busy"
          f" {tl['busy'] * 100:.0f} % of the time")


def fig_backfill(a, out: dict) -> None:
    folder = a.tmp / "bf-dags"
    write_dags(folder, [("yearly", backfill_dag())])
    log = a.tmp / "backfill.log"
    direct = ["sh", "-c", f"seq {BACKFILL_TICKS * BACKFILL_TASKS} | xargs -P{BACKFILL_MAX_ACTIVE} -I{{}} sh -c true"]

    def vane_once(tag: str, frm: str, to: str, ticks: int, pg: bool = False) -> tuple[float, object]:
        """One backfill on a fresh database (so exactly `ticks` runs); its time and the database,
        which the caller drops."""
        db = PgDatabase(a.pg, f"bf_{tag}") if pg else SqliteDb(a.tmp / f"bf-db-{tag}" / "vane.db")
        state = a.tmp / f"bf-state-{tag}" if pg else None
        argv = vane_cmd(a, folder, db.url, "backfill", "yearly", "--from", frm, "--to", to,
                        "--max-active", str(BACKFILL_MAX_ACTIVE), work=a.tmp / f"bf-work-{tag}", state=state)
        try:
            t = run(argv, log=log, env=CLEAN_ENV, what="vane backfill" + (" on PostgreSQL" if pg else ""))
            check_backfill(a, folder, db, log, ticks, state)
        except BaseException:
            db.drop()
            raise
        return t, db

    # Warm-up: a week, so that the binary, the file system and the baseline are warm.
    vane_once("warmup", "2024-12-25", "2024-12-31", 7)[1].drop()
    if a.pg:
        vane_once("warmup_pg", "2024-12-25", "2024-12-31", 7, pg=True)[1].drop()
    run(direct, log=log, what="direct xargs (warm-up)")
    # Alternating, as every figure: a change in machine load hits all three alike.
    tv, tp, td = [], [], []
    tl = tl_pg = None
    for r in range(a.reps):
        t, db = vane_once(str(r), BACKFILL_FROM, BACKFILL_TO, BACKFILL_TICKS)
        tv.append(t)
        tl = backfill_timeline(db)
        db.drop()
        if a.pg:
            t, db = vane_once(f"{r}_pg", BACKFILL_FROM, BACKFILL_TO, BACKFILL_TICKS, pg=True)
            tp.append(t)
            tl_pg = backfill_timeline(db)
            db.drop()
        td.append(run(direct, log=log, what="direct xargs"))
    mv, md = median(tv), median(td)
    n = BACKFILL_TICKS * BACKFILL_TASKS
    print(f"[3] Backfill: {BACKFILL_TICKS} daily runs ({BACKFILL_FROM} .. {BACKFILL_TO}) of a 5-task DAG of `true`"
          f" (diamond a -> b, c -> d -> e), --max-active {BACKFILL_MAX_ACTIVE}")
    print(f"    vane backfill (SQLite)      raw s: {fmt_list(tv, '.3f')}   median {mv:.3f} s"
          f"   (every rep: {BACKFILL_TICKS}/{BACKFILL_TICKS} runs succeeded, checked)")
    if tp:
        print(f"    vane backfill (PostgreSQL)  raw s: {fmt_list(tp, '.3f')}   median {median(tp):.3f} s"
              f"   (checked alike)")
    print(f"    direct {n} `sh -c true`, xargs -P{BACKFILL_MAX_ACTIVE}  raw s: {fmt_list(td, '.3f')}   median {md:.3f} s")
    print(f"    ratio vane/direct: SQLite {mv / md:.2f}   (target <= {TARGET_BACKFILL_RATIO:g})")
    print_timeline(tl)
    if tp:
        print(f"    ratio vane/direct: PostgreSQL {median(tp) / md:.2f}   (reported beside SQLite's; no target of its own)")
        print_timeline(tl_pg)
    print()
    out["backfill"] = (mv, md, tl)
    if tp:
        out["backfill_pg"] = (median(tp), md)


# ---------------------------------------------------------------- 4. adoption after kill -9


@dataclass
class AdoptSetup:
    """One way of running two schedulers on one database, A to be killed and B to adopt."""
    label: str
    backend: str  # "SQLite" or "PostgreSQL"
    host_b: str  # VANE_HOST of B; A's is always bench-a
    ttl_s: float | None  # `[scheduler] lease_ttl` in vane.toml; None: not set (the default)
    bound_s: float
    bound: str


def adopt_setups(pg: bool) -> list[AdoptSetup]:
    setups = [AdoptSetup("SQLite, one host", "SQLite", "bench-a", None, SWEEP_S,
                         "one sweep: same host, pid checked")]
    if pg:
        setups += [AdoptSetup(f"PostgreSQL, TTL {ttl:g} s{' (default)' if ttl == DEFAULT_TTL_S else ''}",
                              "PostgreSQL", "bench-b", None if ttl == DEFAULT_TTL_S else ttl, ttl + SWEEP_S,
                              "TTL + one sweep") for ttl in (DEFAULT_TTL_S, SHORT_TTL_S)]
    return setups


def adopt_dag(marker: Path) -> str:
    """One task that sleeps on its first attempt (noting its pid in `marker`) and succeeds at once
    on the retry."""
    return "\n".join([
        "# Generated by benches/scale.py: sleeps on its first attempt, succeeds at once on the retry.",
        "[tasks.train]",
        f"command = \"if [ -e '{marker}' ]; then exit 0; fi; echo $$ > '{marker}'; exec sleep 600\"",
        "retries = 1",
        'retry_delay = "0s"',
        "",
    ])


def wait_until(what: str, seconds: float, probe, *, every: float = 0.05):
    """Polls `probe()` until it returns something truthy, which is returned; Broke after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise Broke(f"waited {seconds:g} s for {what}")
        time.sleep(every)


def start_scheduler(argv: list[str], host: str, log: Path) -> subprocess.Popen:
    """`vane scheduler` as host `host`, in its own session, once its lease is taken."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(CLEAN_ENV, VANE_HOST=host, VANE_LOG="info"), start_new_session=True)

    def ready() -> bool:
        if proc.poll() is not None:
            raise Broke(f"vane scheduler ({host}) exited {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        return b"Lease taken." in log.read_bytes()
    wait_until(f"scheduler {host} to take its lease (log: {log})", 60, ready)
    return proc


def kill_task(pid: int) -> None:
    """SIGKILLs the process group of the task `pid` (a dead host takes its tasks with it), if it
    is still the `sleep` the task exec'd (a pid can be reused)."""
    try:
        if b"sleep" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        pgid = os.getpgid(pid)
        if pgid == os.getpgrp():  # never ours
            os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(pgid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass  # gone already


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def adopt_once(a, setup: AdoptSetup, n: int, delay: float) -> tuple[float, float]:
    """Scheduler A runs the task's first attempt; B is up; `delay` s later A and the task are
    SIGKILLed; seconds from the kill to the attempt recorded lost, and to the retry's success
    (vane's own stamps)."""
    folder = a.tmp / f"adopt-{setup.backend.lower()}-{setup.ttl_s or 'default'}-{n}"
    marker = folder / "work" / "first-attempt.pid"
    write_dags(folder / "dags", [("adopt", adopt_dag(marker))])
    (folder / "work").mkdir()
    config = folder / "vane.toml"
    if setup.ttl_s is not None:
        config.write_text(f'[scheduler]\nlease_ttl = "{setup.ttl_s:g}s"\n')
    pg = setup.backend == "PostgreSQL"
    db = PgDatabase(a.pg, f"adopt{n}") if pg else SqliteDb(folder / "vane.db")
    sched_a = sched_b = None
    task = None

    def vane(*args: str) -> list[str]:
        return vane_cmd(a, folder / "dags", db.url, "--config", str(config), *args,
                        work=folder / "work", state=folder / "state")
    try:
        sched_a = start_scheduler(vane("scheduler"), "bench-a", folder / "scheduler-a.log")
        run(vane("trigger", "adopt"), log=folder / "trigger.log", env=CLEAN_ENV, what="vane trigger adopt")
        task = int(wait_until("the first attempt to start on A", 60,
                              lambda: marker.exists() and marker.read_text().strip()))
        sched_b = start_scheduler(vane("scheduler"), setup.host_b, folder / "scheduler-b.log")
        time.sleep(delay)
        killed_at = time.time()
        sched_a.kill()
        kill_task(task)
        sched_a.wait()
        query = (f"SELECT a.attempt, a.state, a.host, coalesce(a.reason, ''), {db.epoch('a.ended_at')}, r.state"
                 " FROM attempts a JOIN runs r ON r.id = a.run_id ORDER BY a.attempt")
        rows = wait_until("B to adopt the run and its retry to succeed", 120,
                          lambda: (r := db.rows(query)) and len(r) == 2 and r[1][1] == "success"
                          and r[1][5] == "success" and r, every=0.2)
        first, retry = rows
        if first[1] != "failed" or "lost" not in first[3] or first[2] != "bench-a" or retry[2] != setup.host_b:
            raise Broke(f"adoption on {setup.label}: unexpected attempts {rows} (logs in {folder})")
        return float(first[4]) - killed_at, float(retry[4]) - killed_at
    finally:
        if sched_a is not None and sched_a.poll() is None:
            sched_a.kill()
            sched_a.wait()
        stop(sched_b)
        if task is not None:
            kill_task(task)
        db.drop()


def fig_adoption(a, out: dict) -> None:
    delays = [(n + 0.5) * ADOPT_PHASE_S / ADOPT_REPS for n in range(ADOPT_REPS)]
    results = []
    for setup in adopt_setups(bool(a.pg)):
        lost, done = zip(*(adopt_once(a, setup, n, delay) for n, delay in enumerate(delays)))
        results.append((setup, list(lost), list(done)))
    print(f"[4] Adoption after kill -9: scheduler A (VANE_HOST=bench-a) runs a task's first attempt, B is up;"
          f" {fmt_list(delays, '.2f')} s later (one phase each) A and the task are SIGKILLed")
    print("    from the kill to the attempt recorded failed \"scheduler lost\" (its ended_at, stamped by B),"
          " and to the retry's success")
    for setup, lost, done in results:
        hosts = "both VANE_HOST=bench-a" if setup.host_b == "bench-a" else f"B: VANE_HOST={setup.host_b}"
        print(f"    {setup.label} ({hosts})")
        print(f"      lost recorded  raw s: {fmt_list(lost, '.2f')}   median {median(lost):.2f} s, max {max(lost):.2f} s"
              f"   (bound {setup.bound_s:g} s: {setup.bound})")
        print(f"      retry succeeded raw s: {fmt_list(done, '.2f')}   median {median(done):.2f} s")
    if not a.pg:
        print("    PostgreSQL: skipped (VANE_BENCH_PG=0)")
    print(f"    baseline: Airflow's default, a task is a zombie after {AIRFLOW_ZOMBIE_S:g} s without heartbeat")
    print()
    out["adoption"] = results


# ---------------------------------------------------------------- main


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summary(out: dict) -> None:
    rows = [("figure", "value", "baseline", "target", "result")]
    for key, on in (("scheduler", ""), ("scheduler_pg", ", PostgreSQL")):
        if key not in out:
            continue
        wn, w1 = out[key]
        sn, s1 = wn.steady_us, w1.steady_us
        rows.append((f"1a pass, {MANY_DAGS} DAGs{on}", f"{ms(median(sn)):.3f} ms (p95 {ms(p95(sn)):.3f})",
                     f"{ms(median(s1)):.3f} ms 1 DAG", f"< {TARGET_PASS_MS:g} ms",
                     verdict(ms(p95(sn)) < TARGET_PASS_MS)))
        rows.append((f"1b load, {MANY_DAGS} DAGs{on}", f"{wn.load_ms:.1f} ms (first pass {ms(wn.passes_us[0]):.2f})",
                     f"{w1.load_ms:.1f} ms 1 DAG", "none set", "INFO"))
        rows.append((f"1c CPU, mostly idle{on}", f"{wn.cpu_pct:.2f} %", f"{w1.cpu_pct:.2f} % 1 DAG", "none set", "INFO"))
        rows.append((f"1d max RSS (VmHWM){on}", f"{wn.hwm_mib:.1f} MiB", f"{w1.hwm_mib:.1f} MiB 1 DAG",
                     f"< {TARGET_RSS_MB:g} MB", verdict(wn.hwm_mib * 2**20 < TARGET_RSS_MB * 1e6)))
    if "history" in out:
        results, wf, we = out["history"]
        for tag, name in zip(("2a", "2a'", "2a\""), results):
            te, tf = results[name]
            r = median(tf) / median(te)
            rows.append((f"{tag} {name}", f"{median(tf):.4f} s ({r:.2f}x)",
                         f"{median(te):.4f} s empty", f"<= {TARGET_HISTORY_RATIO:g}x",
                         verdict(r <= TARGET_HISTORY_RATIO)))
        r = median(wf.steady_us) / median(we.steady_us)
        rows.append(("2b pass, 1M attempts", f"{ms(median(wf.steady_us)):.3f} ms ({r:.2f}x)",
                     f"{ms(median(we.steady_us)):.3f} ms empty", f"<= {TARGET_HISTORY_RATIO:g}x",
                     verdict(r <= TARGET_HISTORY_RATIO)))
    if "why" in out:
        wf_why, ws_why = out["why"]
        r = median(wf_why) / median(ws_why)
        rows.append(("2d vane why, 1M attempts", f"{median(wf_why):.4f} s ({r:.2f}x)",
                     f"{median(ws_why):.4f} s {GRID_RUNS} runs/DAG", f"<= {TARGET_HISTORY_RATIO:g}x",
                     verdict(r <= TARGET_HISTORY_RATIO)))
    if "ui" in out:
        pf, pe = out["ui"]
        static = median(pf["static /ui/app.js"]) * 1e3
        for tag, name in zip(("2c", "2c'"), UI_POLLS):
            r = median(pf[name]) / median(pe[name])
            rows.append((f"{tag} UI refresh, {name}", f"{median(pf[name]) * 1e3:.2f} ms ({r:.2f}x)",
                         f"{median(pe[name]) * 1e3:.2f} ms {GRID_RUNS} runs/DAG; static {static:.2f} ms",
                         f"<= {TARGET_HISTORY_RATIO:g}x", verdict(r <= TARGET_HISTORY_RATIO)))
    if "backfill" in out:
        mv, md, _ = out["backfill"]
        rows.append((f"3 backfill {BACKFILL_TICKS} days", f"{mv:.2f} s ({mv / md:.2f}x)", f"{md:.3f} s xargs -P2",
                     f"<= {TARGET_BACKFILL_RATIO:g}x", verdict(mv / md <= TARGET_BACKFILL_RATIO)))
    if "backfill_pg" in out:
        mp, md = out["backfill_pg"]
        rows.append((f"3 backfill {BACKFILL_TICKS} days, PostgreSQL", f"{mp:.2f} s ({mp / md:.2f}x)",
                     f"{md:.3f} s xargs -P2", "none set", "INFO"))
    for tag, (setup, lost, done) in zip(("4a", "4b", "4c"), out.get("adoption", [])):
        rows.append((f"{tag} adoption, {setup.label}", f"{median(lost):.1f} s (max {max(lost):.1f}; retry done"
                     f" {median(done):.1f})", f"{AIRFLOW_ZOMBIE_S:g} s Airflow",
                     f"<= {setup.bound_s:g} s ({setup.bound})", verdict(max(lost) <= setup.bound_s)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    print("Summary (medians)")
    for n, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vane", type=Path, required=True)
    ap.add_argument("--tmp", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=3, help="backfill repetitions (vane runs: at least 5)")
    ap.add_argument("--only", choices=["scheduler", "history", "backfill", "adoption"], action="append",
                    help="run only these figures (repeatable)")
    ap.add_argument("--pg", default=None,
                    help="PostgreSQL server URL without a database (e.g. postgres://root@127.0.0.1:5432): "
                         "figures 1, 3 and 4 are measured there too, in databases created and dropped for them")
    a = ap.parse_args()
    a.vane = a.vane.resolve()
    a.tmp = a.tmp.resolve()
    if not Path("/proc/self/stat").exists():
        print("scale: /proc is needed (Linux) to read the scheduler's CPU time and memory", file=sys.stderr)
        return 2
    out: dict = {}
    figures = {"scheduler": fig_scheduler, "history": fig_history, "backfill": fig_backfill,
               "adoption": fig_adoption}
    try:
        for name, fig in figures.items():
            if not a.only or name in a.only:
                fig(a, out)
                sys.stdout.flush()
    except Broke as e:
        print(f"scale: BROKE: {e}", file=sys.stderr)
        return 2
    summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
