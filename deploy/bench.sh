#!/usr/bin/env bash
# Benchmarks (docs/BENCHMARKS.md): builds in release, starts a private redis-server on a free
# port (no persistence: --save '' --appendonly no), runs tokenledger-bench, and writes the figures.
#
#   deploy/bench.sh                 # every scenario with full counts (about 10 minutes on 2 cores)
#   deploy/bench.sh --smoke         # small counts, well under 30 s once built (CI)
#   deploy/bench.sh drain --jobs 200000   # one scenario, any of its options
#
# Results: $BENCH_OUT (default .build-bench/results/<UTC time>[-smoke]) gets results.md (the
# table), results.md.jsonl, the full output (bench.log), the redis log and the worker logs.
# BENCH_SCRATCH sets the build folder (default .build-bench); BENCH_NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh

scenario=all
args=()
smoke=""
for a in "$@"; do
  case "$a" in
    --smoke) smoke=1; args+=("$a") ;;
    ledger|drain|latency|renewal|queries|extras|all) scenario="$a" ;;
    credit) scenario=extras ;;  # the former name of extras
    *) args+=("$a") ;;
  esac
done

scratch="${BENCH_SCRATCH:-.build-bench}"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  swift build -c release --scratch-path "$scratch"
fi
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)"

out="${BENCH_OUT:-$scratch/results/$(date -u +%Y%m%dT%H%M%SZ)${smoke:+-smoke}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
REDIS_LOG="$out/redis.log" . deploy/private-redis.sh

{
  echo "bench: $(date -u +%FT%TZ), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "bench: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port (--save '' --appendonly no)"
  echo "bench: $(uptime)"
} | tee "$out/bench.log"

status=0
"$bin/tokenledger-bench" "$scenario" --redis-url "redis://127.0.0.1:$port/0" --worker-bin "$bin/tokenledger" \
  --work-dir "$work/ledgers" --results "$out/results.md" "${args[@]}" 2>&1 | tee -a "$out/bench.log" || status=$?
cp "$work"/ledgers/*.log "$out/" 2>/dev/null || true
echo "bench: $(uptime)" | tee -a "$out/bench.log"
echo "bench: results in $out"
exit "$status"
