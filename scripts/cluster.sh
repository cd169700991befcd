#!/usr/bin/env bash
# Starts (up) or stops (down) a local cluster for trying it: a redis-server (appendonly yes,
# appendfsync always) on the port of cluster.toml's redis_url, and the nodes n1, n2, n3 of
# cluster.toml in the background. Logs, pids and Redis's files go under ./data/cluster/.
#   scripts/cluster.sh up      build the release binary if needed, start Redis and the nodes
#   scripts/cluster.sh down    stop the nodes (SIGTERM: final snapshots, leases given up), then Redis
# EMPORIUM_BIN picks another binary (e.g. target/debug/emporium).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=./data/cluster
BIN=${EMPORIUM_BIN:-target/release/emporium}
NODES=(n1 n2 n3)
PORT=$(sed -n 's/^redis_url *= *"redis:\/\/[^:]*:\([0-9]*\).*/\1/p' cluster.toml)

up() {
    command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server"; exit 1; }
    [ -x "$BIN" ] || cargo build --release
    mkdir -p "$DIR/redis"
    if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
        echo "using the Redis already on port $PORT (it must run with appendonly yes, appendfsync always)"
    else
        redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly yes \
            --appendfsync always --dir "$DIR/redis" --daemonize yes \
            --pidfile "$PWD/$DIR/redis.pid" --logfile "$PWD/$DIR/redis.log"
        for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    for n in "${NODES[@]}"; do
        "$BIN" serve --cluster cluster.toml --node "$n" --data-dir "$DIR/$n" >"$DIR/$n.log" 2>&1 &
        echo $! >"$DIR/$n.pid"
    done
    for n in "${NODES[@]}"; do
        port=$(awk -v n="$n" '$0 ~ "name = \"" n "\"" {f=1; next}
            f && /^http/ {match($0, /:[0-9]+"/); print substr($0, RSTART + 1, RLENGTH - 2); exit}' cluster.toml)
        for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
        echo "$n: http://127.0.0.1:$port (log $DIR/$n.log)"
    done
    echo "Redis: redis://127.0.0.1:$PORT; the operator view: GET /api/v1/admin/cluster"
}

down() {
    for n in "${NODES[@]}"; do
        [ -f "$DIR/$n.pid" ] && kill "$(cat "$DIR/$n.pid")" 2>/dev/null || true
    done
    for n in "${NODES[@]}"; do
        if [ -f "$DIR/$n.pid" ]; then
            pid=$(cat "$DIR/$n.pid")
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$DIR/$n.pid"
        fi
    done
    # Only the Redis this script started (a Redis that was there before is left running).
    if [ -f "$DIR/redis.pid" ]; then
        kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
        rm -f "$DIR/redis.pid"
    fi
    echo "stopped (data stays in $DIR/redis)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down"; exit 2 ;;
esac
