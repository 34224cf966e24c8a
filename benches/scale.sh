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

rev="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(cd "$root" && git status --porcelain --untracked-files=no 2>/dev/null | head -c1 || true)"
fs="$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)"
# As in run.sh: ext4 without a journal has cheaper fsyncs but slower inode allocation after deletions.
dev="$(df -P "$tmp" 2>/dev/null | awk 'NR == 2 { print $1 }' || true)"
if [[ "$fs" == ext4 && -r "/sys/fs/ext4/${dev##*/}/journal_task" ]] \
    && [[ "$(cat "/sys/fs/ext4/${dev##*/}/journal_task")" == "<none>" ]]; then
    fs="ext4 without a journal"
fi
cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"

echo "vane scale benchmark   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  commit $rev${dirty:+ (dirty tree)}, $($vane --version), release build"
echo "  host: $(uname -sr), $(nproc) CPUs${cpu:+ ($cpu)}; temp dir on ${fs:-?} (SQLite fsyncs land here)"
echo "  backfill: $reps timed repetitions after a one-week warm-up; vane runs: $(( reps > 5 ? reps : 5 )); medians reported"
echo

python3 "$here/scale.py" --vane "$vane" --tmp "$tmp" --reps "$reps" "$@"
