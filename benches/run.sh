#!/usr/bin/env bash
# vane benchmark: fan-out overhead, per-edge latency, validation speed, peak memory.
#
#   bash benches/run.sh              # from the repository root
#
# Builds the release binary, generates the DAGs into a temp dir, measures each figure against
# its baseline in the same run, prints a report and a PASS/MISS summary. Exits 0 whether the
# targets are met or not; non-zero only when something broke (build, a vane run, a missing tool).
#
# Environment:
#   VANE_BENCH_REPS=N    timed repetitions per measurement (default 5; validation is always >= 5)
#   VANE_BENCH_KEEP=1    keep the temp dir (databases, logs, marks) and print its path
#   TMPDIR               where the temp dir goes (default /tmp); fsync cost depends on its disk
#   VANE_BENCH_PG_URL    PostgreSQL server for the fan-out on PostgreSQL (default
#                        postgres://root@127.0.0.1:5432); a database is created and dropped there
#   VANE_BENCH_PG=0      skip PostgreSQL
set -euo pipefail

name=run.sh
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
reps="${VANE_BENCH_REPS:-5}"
for tool in cargo python3 bash sh seq xargs date df; do need "$tool"; done
case "$(date +%N)" in
    *[!0-9]* | "") echo "run.sh: \`date +%N\` does not print nanoseconds (GNU date needed)" >&2; exit 2 ;;
esac

python3 "$here/gen_dags.py" "$tmp/dags"


echo "vane benchmark   $(date -u '+%Y-%m-%d %H:%M UTC')"
describe_setup
echo "  $reps timed repetitions per measurement after one untimed warm-up; medians reported"
echo

python3 "$here/bench.py" --vane "$vane" --dags-root "$tmp/dags" --tmp "$tmp" --reps "$reps" "${pg_args[@]}"
[[ "${VANE_BENCH_SCALE:-1}" == 0 ]] || { echo; bash "$here/scale.sh"; }  # scale benchmark (scale.sh); VANE_BENCH_SCALE=0 skips it
