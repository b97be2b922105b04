#!/usr/bin/env bash
# The long chaos run, on demand: two real workers under seeded faults (kill -9, SIGSTOP past the
# lease, SIGTERM, Redis restarts, ledger locks of 1-20 s, a full ledger disk, Redis OOM), reconciled
# job by job at the end. The CI run (60 s) is part of deploy/test.sh; this one lasts CHAOS_SECONDS
# (default 300). CHAOS_SEED replays a run (every run prints its seed); CHAOS_FAULTS picks fault
# classes (a comma list of kill,stop,term,redis,lock,disk,oom). The full-disk fault mounts a tmpfs,
# so run as root (or it is skipped with a note).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh

export REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server)}"
export CHAOS_SECONDS="${CHAOS_SECONDS:-300}"
echo "chaos: CHAOS_SECONDS=$CHAOS_SECONDS${CHAOS_SEED:+ CHAOS_SEED=$CHAOS_SEED}${CHAOS_FAULTS:+ CHAOS_FAULTS=$CHAOS_FAULTS}"

swift build --build-tests
swift test --skip-build --filter ChaosTests "$@"
