#!/usr/bin/env python3
"""vane agents: dispatch throughput and latency, and how fast a lost agent's task runs again
(Python 3.11+ standard library only).

Called by benches/agents.sh, which builds vane and makes the temp dir:

    python3 benches/agents.py --vane target/release/vane --tmp TMP --pg postgres://root@127.0.0.1:5432

Figures, each against a baseline measured in the same run:

  1. N no-op tasks (`true`, default 10,000) of one DAG handed to two agents on this machine
     (`--slots 32` each, `max_active_tasks = 64`): tasks claimed and completed per second, from
     the first hand-out to the last end, and the time from a task becoming ready (handed out) to
     its process starting on an agent, p50 and p99, read from the `dispatches` table (the
     database's clock). Baseline: the same DAG run by vane on its own host, no agents.
  2. A lost agent: `kill -9` of the agent running a task (its watchdog kills the task), until the
     task's retry starts on the other agent; with lease_ttl 6 s and the default 20 s.
     Baseline: the lease's time to live, the bound the design promises (TTL plus a quarter
     second of polling).

Exit status: 0 when the report was printed (targets met or not), 2 when something broke.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Broke, PgDatabase, median  # noqa: E402
from scale import CLEAN_ENV, stop, wait_until  # noqa: E402

SLOTS = 32
ACTIVE = 64


def many_dag(n: int, remote: bool) -> str:
    lines = ["[dag]", f"max_active_tasks = {ACTIVE}", ""]
    if remote:
        lines += ["[defaults]", "runs_on = {}", ""]
    for i in range(n):
        lines += [f"[tasks.t{i}]", 'command = "true"']
    return "\n".join(lines) + "\n"


def start_agent(a, db: str, host: str, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(a.vane), "--db", db, "agent", "--slots", str(SLOTS)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(CLEAN_ENV, VANE_HOST=host, VANE_LOG="info", **(extra_env or {})),
            start_new_session=True)

    def ready() -> bool:
        if proc.poll() is not None:
            raise Broke(f"vane agent ({host}) exited {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        return b"Agent ready." in log.read_bytes()
    wait_until(f"agent {host} to be ready (log: {log})", 60, ready)
    return proc


def timed_run(a, folder: Path, db: str, state: Path, log: Path) -> float:
    argv = [str(a.vane), "--dags", str(folder), "--db", db, "--state-dir", str(state), "run", "many"]
    start = time.perf_counter()
    with log.open("wb") as out:
        r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(CLEAN_ENV, VANE_LOG="warn"))
    took = time.perf_counter() - start
    if r.returncode != 0:
        raise Broke(f"`vane run many` exited {r.returncode}; log: {log}")
    return took


def fig_dispatch(a, out: dict) -> None:
    n = a.tasks
    print(f"1. {n:,} no-op tasks: two agents (--slots {SLOTS} each) vs vane alone, max_active_tasks = {ACTIVE}")
    base = a.tmp / "dispatch"
    for remote in (False, True):
        folder = base / ("agents" if remote else "local") / "dags"
        folder.mkdir(parents=True)
        (folder / "many.toml").write_text(many_dag(n, remote))
    results = {}
    for remote in (False, True):
        tag = "agents" if remote else "local"
        pg = PgDatabase(a.pg, f"agents_{tag}")
        agents = []
        try:
            if remote:
                agents = [start_agent(a, pg.url, f"agent-{i}", base / f"agent-{i}.log") for i in (1, 2)]
            took = timed_run(a, base / tag / "dags", pg.url, base / tag / "state", base / f"{tag}.log")
            ok = pg.rows("SELECT count(*) FROM attempts WHERE state = 'success'")[0][0]
            if int(ok) != n:
                raise Broke(f"{tag}: {ok} of {n} attempts succeeded")
            results[tag] = took
            if remote:
                row = pg.rows(
                    "SELECT count(*) / extract(epoch from max(ended_at) - min(enqueued_at)), "
                    "1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch from started_at - enqueued_at)), "
                    "1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch from started_at - enqueued_at)), "
                    "count(DISTINCT agent_lease) FROM dispatches")[0]
                per_s, p50, p99, used = float(row[0]), float(row[1]), float(row[2]), int(row[3])
                if used != 2:
                    raise Broke(f"the tasks ran on {used} agents, not 2")
                out["dispatch"] = dict(per_s=per_s, p50=p50, p99=p99)
        finally:
            for proc in agents:
                stop(proc)
            pg.drop()
    print(f"   vane alone:   {results['local']:.2f} s  ({n / results['local']:.0f} tasks/s end to end)")
    print(f"   two agents:   {results['agents']:.2f} s  ({n / results['agents']:.0f} tasks/s end to end)")
    d = out["dispatch"]
    print(f"   with agents, first hand-out to last end: {d['per_s']:.0f} tasks/s; "
          f"ready to started: p50 {d['p50']:.1f} ms, p99 {d['p99']:.1f} ms")
    out["dispatch"]["local_s"] = results["local"]
    out["dispatch"]["agents_s"] = results["agents"]
    print()


SLOW_ONCE = """
[tasks.train]
command = 'if [ -e "$VANE_WORK/first.pid" ]; then exit 0; fi; echo $$ > "$VANE_WORK/first.pid"; exec sleep 600'
runs_on = {}
retries = 1
retry_delay = "0s"
"""


def lost_once(a, ttl: int, rep: int) -> float:
    base = a.tmp / f"lost-{ttl}-{rep}"
    folder = base / "dags"
    folder.mkdir(parents=True)
    (folder / "slow.toml").write_text(SLOW_ONCE)
    (base / "vane.toml").write_text(f'[scheduler]\nlease_ttl = "{ttl}s"\n')
    pg = PgDatabase(a.pg, f"lost_{ttl}_{rep}")
    env = {"VANE_CONFIG": str(base / "vane.toml")}
    agents: dict[str, subprocess.Popen] = {}
    run = None
    try:
        for i in (1, 2):
            agents[f"agent-{i}"] = start_agent(a, pg.url, f"agent-{i}", base / f"agent-{i}.log", env)
        argv = [str(a.vane), "--dags", str(folder), "--db", pg.url, "--state-dir", str(base / "state"),
                "run", "slow"]
        with (base / "run.log").open("wb") as log:
            run = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(CLEAN_ENV, **env),
                                   start_new_session=True)
        first = base / "state" / "work" / "first.pid"
        wait_until("the first attempt to start", 60, lambda: first.exists() and first.read_text().strip())
        host = wait_until("the first attempt's agent", 30, lambda: (pg.rows(
            "SELECT a.host FROM dispatches d JOIN agents a ON a.lease_id = d.agent_lease "
            "WHERE d.attempt = 1 AND d.started_at IS NOT NULL") or [[None]])[0][0])
        killed_at = time.time()
        os.kill(agents[host].pid, signal.SIGKILL)
        agents[host].wait()
        started = wait_until("the retry to start on the other agent", ttl + 60, lambda: (pg.rows(
            "SELECT extract(epoch from started_at) FROM dispatches WHERE attempt = 2 AND started_at IS NOT NULL")
            or [[None]])[0][0], every=0.02)
        took = float(started) - killed_at
        if run.wait(timeout=60) != 0:
            raise Broke(f"the run did not succeed after the retry; log: {base / 'run.log'}")
        return took
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        for proc in agents.values():
            stop(proc)
        pg.drop()


def fig_lost(a, out: dict) -> None:
    print(f"2. A lost agent (kill -9) until its task starts again on the other agent, {a.reps} times each")
    out["lost"] = {}
    for ttl in (6, 20):
        times = [lost_once(a, ttl, rep) for rep in range(a.reps)]
        out["lost"][ttl] = times
        print(f"   lease_ttl {ttl:>2} s: " + ", ".join(f"{t:.1f}" for t in times)
              + f" s; median {median(times):.1f} s, max {max(times):.1f} s (bound: TTL + 0.25 s = {ttl + 0.25:.2f} s)")
    print()


def summary(out: dict) -> None:
    d = out.get("dispatch")
    print("Summary")
    if d:
        print(f"  {'PASS' if d['per_s'] >= 300 else 'MISS'}  throughput with two agents: {d['per_s']:.0f} tasks/s (target >= 300)")
        print(f"  {'PASS' if d['p50'] < 50 else 'MISS'}  ready to started p50: {d['p50']:.1f} ms (target < 50 ms)")
        print(f"  {'PASS' if d['p99'] < 500 else 'MISS'}  ready to started p99: {d['p99']:.1f} ms (target < 500 ms)")
        print(f"        end to end: {d['agents_s']:.2f} s with agents vs {d['local_s']:.2f} s by vane alone")
    for ttl, times in out.get("lost", {}).items():
        worst = max(times)
        print(f"  {'PASS' if worst <= ttl + 1 else 'MISS'}  lost agent, lease_ttl {ttl} s: retry started within "
              f"{worst:.1f} s at worst (bound TTL + 1 s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vane", type=Path, required=True)
    ap.add_argument("--tmp", type=Path, required=True)
    ap.add_argument("--pg", required=True, help="PostgreSQL server URL without a database")
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["dispatch", "lost"], action="append")
    a = ap.parse_args()
    a.vane, a.tmp = a.vane.resolve(), a.tmp.resolve()
    out: dict = {}
    try:
        for name, fig in {"dispatch": fig_dispatch, "lost": fig_lost}.items():
            if not a.only or name in a.only:
                fig(a, out)
                sys.stdout.flush()
    except Broke as e:
        print(f"agents: BROKE: {e}", file=sys.stderr)
        return 2
    summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
