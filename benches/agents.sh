#!/usr/bin/env bash
# vane agents benchmark: dispatch throughput and latency with two agents, and a lost agent's
# task running again elsewhere. Needs PostgreSQL (agents share its database).
#
#   bash benches/agents.sh                 # from the repository root; about 2 minutes after the build
#   bash benches/agents.sh --tasks 2000    # fewer tasks; arguments go to agents.py
#
# Builds the release binary, makes a temp dir, runs benches/agents.py, which measures each
# figure against its baseline in the same run and prints a report and a PASS/MISS summary.
# Exits 0 whether the targets are met or not; non-zero only when something broke.
#
# Environment:
#   VANE_BENCH_PG_URL    PostgreSQL server (default postgres://root@127.0.0.1:5432); databases
#                        are created and dropped there
#   VANE_BENCH_KEEP=1    keep the temp dir (logs) and print its path
set -euo pipefail

name=agents.sh
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for tool in cargo python3 psql; do need "$tool"; done
[[ ${#pg_args[@]} -gt 0 ]] || { echo "agents.sh: agents need PostgreSQL; unset VANE_BENCH_PG=0" >&2; exit 2; }

echo "vane agents benchmark   $(date -u '+%Y-%m-%d %H:%M UTC')"
describe_setup
echo

python3 "$here/agents.py" --vane "$vane" --tmp "$tmp" "${pg_args[@]}" "$@"
