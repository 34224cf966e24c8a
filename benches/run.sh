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

rev="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(cd "$root" && git status --porcelain --untracked-files=no 2>/dev/null | head -c1 || true)"
fs="$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)"
# ext4 without a journal (some VMs) has cheaper fsyncs but slower inode allocation after deletions.
dev="$(df -P "$tmp" 2>/dev/null | awk 'NR == 2 { print $1 }' || true)"
if [[ "$fs" == ext4 && -r "/sys/fs/ext4/${dev##*/}/journal_task" ]] \
    && [[ "$(cat "/sys/fs/ext4/${dev##*/}/journal_task")" == "<none>" ]]; then
    fs="ext4 without a journal"
fi
cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"

echo "vane benchmark   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  commit $rev${dirty:+ (dirty tree)}, $($vane --version), release build"
echo "  host: $(uname -sr), $(nproc) CPUs${cpu:+ ($cpu)}; temp dir on ${fs:-?} (SQLite fsyncs land here)"
echo "  $reps timed repetitions per measurement after one untimed warm-up; medians reported"
echo

python3 "$here/bench.py" --vane "$vane" --dags-root "$tmp/dags" --tmp "$tmp" --reps "$reps"
[[ "${VANE_BENCH_SCALE:-1}" == 0 ]] || { echo; bash "$here/scale.sh"; }  # scale benchmark (scale.sh); VANE_BENCH_SCALE=0 skips it
