#!/usr/bin/env bash
# The test command: installs what is missing, starts a private redis-server on a free port,
# exports REDIS_URL for the tests, builds and runs every test, and stops the server whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh

# The alert rules, checked and unit-tested first: seconds, and no build needed.
promtool check config deploy/prometheus/prometheus.yml >/dev/null
promtool test rules deploy/prometheus/alerts_test.yml
echo "test: promtool rule tests passed"

. deploy/private-redis.sh

export REDIS_URL="redis://127.0.0.1:$port/0"
export REDIS_SERVER="$(command -v redis-server)"
echo "test: redis-server on $REDIS_URL"

swift build --build-tests
swift test --skip-build "$@"
bin="$(swift build --show-bin-path)"

# A smoke run of the benchmark program (seconds, debug build): it keeps building and working.
# Figures come from deploy/bench.sh (release), not from here.
"$bin/tokenledger-bench" all --smoke --redis-url "$REDIS_URL" --worker-bin "$bin/tokenledger" > "$work/bench-smoke.log" 2>&1 \
  || { cat "$work/bench-smoke.log"; echo "test: the benchmark smoke run failed" >&2; exit 1; }
echo "test: benchmark smoke run passed"

# The Python examples of docs/examples, against the worker just built.
python3 -c 'import redis' 2>/dev/null || python3 -m pip install -q redis
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest
TOKENLEDGER_BIN="$bin/tokenledger" python3 -m pytest -q docs/examples

# The client libraries (clients/typescript, clients/python), against the worker just built.
TOKENLEDGER_BIN="$bin/tokenledger" bash clients/test.sh
TOKENLEDGER_BIN="$bin/tokenledger" python3 -m pytest -q deploy/tests
