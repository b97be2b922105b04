#!/usr/bin/env bash
# Builds and tests both clients against a real worker. Needs REDIS_URL (a Redis the tests may
# write to; each test uses a key prefix of its own) and TOKENLEDGER_BIN (the built `tokenledger`).
# Installs what is missing: Debian's nodejs, npm, node-redis and node-typescript; redis-py, pytest,
# mypy, build and wheel. Besides the suites, the tests pack both clients as people install them
# (`npm pack` into an empty project, without a registry; a wheel into a fresh virtual environment)
# and run the guide's example from there.
set -euo pipefail
cd "$(dirname "$0")"
: "${REDIS_URL:?set REDIS_URL}"
: "${TOKENLEDGER_BIN:?set TOKENLEDGER_BIN}"
export REDIS_URL TOKENLEDGER_BIN

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v tsc >/dev/null 2>&1 || need+=(node-typescript)
command -v npm >/dev/null 2>&1 || need+=(npm)
dpkg -s node-redis >/dev/null 2>&1 || need+=(node-redis)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)  # the renewal tests age accounts with it
if [ ${#need[@]} -gt 0 ]; then
  echo "clients: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import redis' 2>/dev/null || python3 -m pip install -q redis
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest
for module in mypy build wheel; do
  python3 -c "import $module" 2>/dev/null || python3 -m pip install -q "$module"
done

# TypeScript: Node finds `redis` (and its @redis/* packages) in the folder Debian installs them in,
# through NODE_PATH at run time and a node_modules link for tsc.
node_path="$(dirname "$(dirname "$(dpkg -L node-redis | grep -m1 '/redis/package.json$')")")"
ln -sfn "$node_path" typescript/node_modules
rm -rf typescript/build
tsc -p typescript
echo "clients: TypeScript tests"
(cd typescript && NODE_PATH="$node_path" node --test build/test/*.test.js)

echo "clients: Python tests"
(cd python && python3 -m pytest -q)
