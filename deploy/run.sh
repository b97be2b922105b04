#!/usr/bin/env bash
# The run command: installs what is missing, builds the release executable, starts a local
# redis-server when none answers, and runs the worker on tokenledger.sqlite in the working folder.
# Extra arguments go to `tokenledger worker` (see `tokenledger worker --help`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/setup.sh"
(cd "$root" && swift build -c release --product tokenledger)
bin="$root/.build/release/tokenledger"

url=${TOKENLEDGER_REDIS_URL:-redis://127.0.0.1:6379/0}
if ! redis-cli -u "$url" ping >/dev/null 2>&1; then
  case "$url" in
    redis://127.0.0.1:6379*|redis://localhost:6379*)
      mkdir -p data/redis
      echo "run: no Redis answers at $url; starting a local redis-server (append-only file in data/redis)"
      redis-server --port 6379 --bind 127.0.0.1 --dir "$PWD/data/redis" --appendonly yes --appendfsync everysec \
        --daemonize yes --pidfile "$PWD/data/redis/redis.pid" --logfile "$PWD/data/redis/redis.log"
      for _ in $(seq 50); do redis-cli -u "$url" ping >/dev/null 2>&1 && break; sleep 0.1; done
      ;;
    *)
      echo "run: no Redis answers at $url" >&2
      exit 1
      ;;
  esac
fi

echo "run: worker on $url, ledger ${TOKENLEDGER_DATABASE:-$PWD/tokenledger.sqlite}; Ctrl-C stops it"
exec "$bin" worker "$@"
