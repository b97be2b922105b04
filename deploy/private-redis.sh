# Sourced by test.sh and bench.sh: starts a throwaway redis-server (no persistence) on a free
# port of 127.0.0.1 with its files in a new temporary folder, and stops it when the script exits.
# Sets: work (the folder), port. Optional: REDIS_LOG (default $work/redis.log).
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "${REDIS_LOG:-$work/redis.log}"
stop_private_redis() {
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap stop_private_redis EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
