#!/usr/bin/env bash
# Times `tokenledger repartition` (docs/SCALING.md): fills a one-partition ledger with ENTRIES
# credit entries over USERS users through the real worker, stops it, queues one job per user,
# then splits the ledger into M partitions and verifies the result.
#
#   deploy/repartition-bench.sh [ENTRIES] [M] [USERS]     # defaults: 1000000 4 10000
#
# Release build in $BENCH_SCRATCH (default .build-bench); BENCH_NO_BUILD=1 skips the build;
# TOKENLEDGER_BIN names a tokenledger to measure instead, FILL_BIN the one whose worker fills the ledger.
set -euo pipefail
cd "$(dirname "$0")/.."
entries="${1:-1000000}"
to="${2:-4}"
users="${3:-10000}"
scratch="${BENCH_SCRATCH:-.build-bench}"
if [ -n "${TOKENLEDGER_BIN:-}" ]; then
  tokenledger="$TOKENLEDGER_BIN"   # a given build (say .build/debug/tokenledger): no build here
else
  if [ -z "${BENCH_NO_BUILD:-}" ]; then
    swift build -c release --scratch-path "$scratch" --product tokenledger
  fi
  tokenledger="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/tokenledger"
fi
# The worker that fills the ledger (not what is measured) may be another build of the same schema.
fill="${FILL_BIN:-$tokenledger}"
. deploy/private-redis.sh
db="$work/ledger.sqlite"
common=(--redis-url "redis://127.0.0.1:$port/0" --database "$db" --prefix rb)

echo "repartition-bench: $(date -u +%FT%TZ), $(nproc) cores, $(uptime)"
echo "repartition-bench: queueing $entries credits for $users users"
python3 - "$entries" "$users" <<'PY' | redis-cli -p "$port" --pipe >/dev/null
import sys
n, users = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
def cmd(*parts):
    out.write("*%d\r\n" % len(parts))
    for p in parts:
        b = p.encode()
        out.write("$%d\r\n%s\r\n" % (len(b), p))
for u in range(users):
    cmd("LPUSH", "rb:jobs", '{"type":"open","id":"open-%d","userId":"user-%d"}' % (u, u))
for i in range(n - users):
    u = i % users
    cmd("LPUSH", "rb:jobs", '{"type":"credit","id":"c-%d","userId":"user-%d","operationType":"bench","amount":1,"metadata":{"n":%d}}' % (i, u, i))
PY
start=$(date +%s.%N)
"$fill" worker "${common[@]}" --http off --worker-id fill 2>"$work/worker.log" &
worker=$!
while [ "$(redis-cli -p "$port" llen rb:jobs)" != "0" ] || [ "$(redis-cli -p "$port" scard rb:workers)" != "0" ]; do sleep 1; done
kill -TERM "$worker"; wait "$worker" || true
echo "repartition-bench: filled in $(python3 -c "import sys; print('%.0f' % ($(date +%s.%N) - $start))") s; $(du -h "$db" | cut -f1) ledger"
python3 - "$users" <<'PY' | redis-cli -p "$port" --pipe >/dev/null
import sys
for u in range(int(sys.argv[1])):
    job = '{"type":"credit","id":"q-%d","userId":"user-%d","operationType":"q","amount":1}' % (u, u)
    sys.stdout.write("*3\r\n$5\r\nLPUSH\r\n$7\r\nrb:jobs\r\n$%d\r\n%s\r\n" % (len(job), job))
PY
echo "repartition-bench: queued $(redis-cli -p "$port" llen rb:jobs) jobs to move"
/usr/bin/time -f "repartition-bench: repartition: %e s wall, %U s user, %S s sys, %M KB peak RSS" \
  "$tokenledger" repartition --to "$to" "${common[@]}"
/usr/bin/time -f "repartition-bench: verify of the new files: %e s wall" \
  "$tokenledger" verify "${common[@]}" --partition-count "$to" | tail -n "$to"
echo "repartition-bench: $(uptime)"
