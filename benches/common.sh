# Shared setup of the benchmark scripts; sourced with $name set to the script's name.
# Provides: need TOOL, $here, $root, $tmp (removed on exit unless VANE_BENCH_KEEP=1), $vane, the
# release binary built from this checkout, and ${pg_args[@]} (VANE_BENCH_PG, VANE_BENCH_PG_URL).

here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "$name: required tool \`$1\` not found" >&2; exit 2; }
}

# PostgreSQL, beside SQLite, unless VANE_BENCH_PG=0: the Python scripts' `--pg SERVER` argument.
pg_args=()
if [[ "${VANE_BENCH_PG:-1}" != 0 ]]; then
    need psql
    pg_args=(--pg "${VANE_BENCH_PG_URL:-postgres://root@127.0.0.1:5432}")
fi

python3 -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || { echo "$name: python3 >= 3.11 (for tomllib) is required" >&2; exit 2; }

# The benchmark must never read or write the user's vane setup, nor be slowed by their logging.
unset VANE_DB VANE_DAGS VANE_WORK VANE_LOG RUST_LOG

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vane-bench.XXXXXX")"
cleanup() {
    if [[ "${VANE_BENCH_KEEP:-0}" == 1 ]]; then
        echo "$name: kept $tmp"
    else
        rm -rf -- "$tmp"
    fi
}
trap cleanup EXIT

echo "Building vane (release)..." >&2
(cd "$root" && cargo build --release -p vane --quiet)
# The binary cargo just built, wherever the target dir is (CARGO_TARGET_DIR, config, ...).
target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
vane="$target_dir/release/vane"
[[ -x "$vane" ]] || { echo "$name: no binary at $vane after the build" >&2; exit 2; }

# Prints the commit, binary, host and the disk the temp dir is on (fsync costs depend on it).
describe_setup() {
    local rev dirty fs dev cpu
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
    echo "  commit $rev${dirty:+ (dirty tree)}, $($vane --version), release build"
    echo "  host: $(uname -sr), $(nproc) CPUs${cpu:+ ($cpu)}; temp dir on ${fs:-?} (SQLite fsyncs land here)"
}
