#!/usr/bin/env bash
# The cluster figures of the README ("Cluster"), in one run on this machine, release build:
#   1. hot-SKU drop purchases on one node (sled), on one node in cluster mode (Redis), and on
#      three nodes (the load spread over them) — each beside a GET /healthz ceiling of its own;
#   2. the fail-over gap over five SIGKILLs of the node owning the drop's SKU, mid-run (from
#      the kill to the first purchase sent after it that succeeds), buyers retrying on the
#      other nodes (`emporium-loadtest failover`, a report with a chart each);
#   3. three drains of a node mid-run: how long until it is down, the retries, the audit.
# Everything runs on 127.0.0.1 with a redis-server of its own (appendonly yes, appendfsync
# always) on a free port; logs and reports go under $OUT (default: a temporary dir).
#   scripts/bench-cluster.sh [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
BIN=target/release/emporium
LT=target/release/emporium-loadtest
[ -x "$BIN" ] && [ -x "$LT" ] || cargo build --release --workspace
export EMPORIUM_OPERATOR_TOKEN=bench-operator-token
export EMPORIUM_JWT_SECRET=bench-jwt-secret-bench-jwt-secret-0123456
export EMPORIUM_CLUSTER_COOKIE=bench-cookie
export EMPORIUM__SANDBOX__ENABLED=false
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 300); do curl -fs "$1/readyz" >/dev/null && return; sleep 0.1; done; echo "not ready: $1"; exit 1; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis() {
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$OUT/redis" && mkdir -p "$OUT/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
        --appendfsync always --dir "$OUT/redis" --daemonize yes --logfile "$OUT/redis.log"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
}
# cluster_file N: N nodes on free ports; sets FILE (its path) and HTTP[i].
cluster_file() {
    FILE="$OUT/cluster-$1.toml"
    local file=$FILE
    printf '[cluster]\nshards = 64\nredis_url = "redis://127.0.0.1:%s/0"\nlease_ttl_ms = 3000\n' "$REDIS_PORT" >"$file"
    HTTP=()
    for i in $(seq 1 "$1"); do
        HTTP[$i]=$(free_port)
        printf '\n[[cluster.nodes]]\nname = "n%s"\nhttp = "127.0.0.1:%s"\ncluster = "127.0.0.1:%s"\n' \
            "$i" "${HTTP[$i]}" "$(free_port)" >>"$file"
    done
}
NODE_PID=()
start_nodes() { # file count
    NODE_PID=()
    for i in $(seq 1 "$2"); do
        "$BIN" serve --cluster "$1" --node "n$i" --data-dir "$OUT/n$i" >"$OUT/n$i.log" 2>&1 &
        NODE_PID[$i]=$!; PIDS+=($!)
    done
    for i in $(seq 1 "$2"); do wait_ready "http://127.0.0.1:${HTTP[$i]}"; done
    sleep 4 # the keeper hands shards to their preferred nodes a few per round
}
stop_nodes() { for p in "${NODE_PID[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${NODE_PID[@]}"; do wait "$p" 2>/dev/null || true; done; }
ceiling() { "$LT" --target "$1" --duration "$SECS" ceiling 2>/dev/null | tail -1; }
flash() { "$LT" "$@" --duration "$SECS" flash-sale --reports "$OUT/reports" 2>/dev/null | grep -v '^report:'; }

echo "== one node, sled"
port=$(free_port)
"$BIN" serve --listen "127.0.0.1:$port" --data-dir "$OUT/single" >"$OUT/single.log" 2>&1 &
single=$!; PIDS+=($single)
wait_ready "http://127.0.0.1:$port"
ceiling "http://127.0.0.1:$port"
flash --target "http://127.0.0.1:$port"
kill "$single"; wait "$single" 2>/dev/null || true

echo "== one node, cluster mode (Redis)"
redis
cluster_file 1; file=$FILE
start_nodes "$file" 1
ceiling "http://127.0.0.1:${HTTP[1]}"
flash --target "http://127.0.0.1:${HTTP[1]}"
stop_nodes

echo "== three nodes (load spread over them)"
redis
cluster_file 3; file=$FILE
start_nodes "$file" 3
ceiling "http://127.0.0.1:${HTTP[1]}"
flash --target "http://127.0.0.1:${HTTP[1]}" --target "http://127.0.0.1:${HTTP[2]}" --target "http://127.0.0.1:${HTTP[3]}"
stop_nodes

targets() { for i in 1 2 3; do printf -- '--target http://127.0.0.1:%s ' "${HTTP[$i]}"; done; }
echo "== fail-over: SIGKILL of the SKU's owner 3 s in, 5 times (buyers retry on the other nodes)"
for run in 1 2 3 4 5; do
    redis
    cluster_file 3; file=$FILE
    start_nodes "$file" 3
    pids="n1=${NODE_PID[1]},n2=${NODE_PID[2]},n3=${NODE_PID[3]}"
    # shellcheck disable=SC2046
    "$LT" $(targets) --duration "$SECS" failover --kill-pid "$pids" --kill-after 3 \
        --reports "$OUT/reports" 2>&1 |
        grep -E "fail-over:|owned by|audit|retried|^report" | sed "s/^/  run $run: /"
    stop_nodes
done

echo "== drain of n1 3 s in, 3 times (buyers retry on the other nodes)"
for run in 1 2 3; do
    redis
    cluster_file 3; file=$FILE
    start_nodes "$file" 3
    # shellcheck disable=SC2046
    "$LT" $(targets) --duration "$SECS" failover --drain n1 --kill-after 3 \
        --reports "$OUT/reports" 2>&1 |
        grep -E "fail-over:|down|audit|retried|^report" | sed "s/^/  run $run: /"
    stop_nodes
done
redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
echo "logs and reports: $OUT"
