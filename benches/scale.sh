#!/usr/bin/env bash
# vane scale benchmark: 1,000 DAGs in the scheduler, 1,000,000 attempts of history, a year of backfill.
#
#   bash benches/scale.sh                # from the repository root; 1.5-2 minutes after the build (run.sh runs it too)
#
# Builds the release binary, makes a temp dir, runs benches/scale.py, which measures each figure
# against its baseline in the same run and prints a report and a PASS/MISS summary. Exits 0
# whether the targets are met or not; non-zero only when something broke (build, a vane command,
# a run that did not succeed, a missing tool).
#
# Environment:
#   VANE_SCALE_REPS=N    backfill repetitions (default 3); `vane runs` gets max(5, N)
#   VANE_BENCH_PG_URL    PostgreSQL server for figures 1 and 4 on PostgreSQL (default
#                        postgres://root@127.0.0.1:5432); databases are created and dropped there
#   VANE_BENCH_PG=0      skip PostgreSQL
#   VANE_BENCH_KEEP=1    keep the temp dir (databases, scheduler logs) and print its path
#   TMPDIR               where the temp dir goes (default /tmp); fsync cost depends on its disk
# Arguments are passed to scale.py, e.g. `bash benches/scale.sh --only backfill`.
set -euo pipefail

name=scale.sh
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
reps="${VANE_SCALE_REPS:-3}"
for tool in cargo python3 sh seq xargs df; do need "$tool"; done
[[ -r /proc/self/stat ]] || { echo "scale.sh: /proc is required (Linux)" >&2; exit 2; }


echo "vane scale benchmark   $(date -u '+%Y-%m-%d %H:%M UTC')"
describe_setup
echo "  backfill: $reps timed repetitions after a one-week warm-up; vane runs: $(( reps > 5 ? reps : 5 )); medians reported"
echo

python3 "$here/scale.py" --vane "$vane" --tmp "$tmp" --reps "$reps" "${pg_args[@]}" "$@"
