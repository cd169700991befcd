#!/usr/bin/env bash
# A seconds-long smoke of every load-test scenario against a real server (debug build, temp
# data dir): each must run, and the audited ones must pass their audit. Figures from this run
# mean nothing; measurements use release builds (see the README's benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/debug/emporium
LT=$TARGET/debug/emporium-loadtest
DATA=$(mktemp -d)
REPORTS=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export EMPORIUM_OPERATOR_TOKEN=smoke-operator-token
export EMPORIUM_JWT_SECRET=smoke-jwt-secret-smoke-jwt-secret-0123456789
export EMPORIUM_DEV_MODE=true EMPORIUM_AUTH_RATE_PER_IP=0 EMPORIUM_CARRIER_STEP_SECS=0.05
export EMPORIUM__AUTH__ARGON2_M_KIB=1024 EMPORIUM__AUTH__ARGON2_T=1 RUST_LOG=info

"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
SERVER=$!
stop() {
    kill "$SERVER" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER" 2>/dev/null; then
        echo "== the server did not stop within 10 s of SIGTERM; its log ends:" >&2
        tail -20 "$DATA/server.log" >&2
        kill -9 "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$DATA" "$REPORTS"
}
trap stop EXIT
trap 'exit 130' INT TERM PIPE
ready() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$BASE/readyz" 2>/dev/null; }
for _ in $(seq 1 100); do
    ready && break
    sleep 0.1
done
ready || { cat "$DATA/server.log"; exit 1; }

run() {
    echo "== loadtest smoke: $*"
    "$LT" --target "$BASE" --connections 8 "$@"
}
run --duration 1 ceiling
run --duration 1 reserve
run --duration 1 signup
run --duration 1 login --accounts 4
run --duration 1 browse
run --duration 1 suggest
run --duration 2 journey
run --duration 2 flash-sale --users 200 --reports "$REPORTS"
run --duration 2 flash-sale --rate 200 --reports "$REPORTS"
run --duration 10 flash-sale --stock 50 --users 300 --per-user-limit 1 --attempts 2000 --reports "$REPORTS"
run --duration 2 ws-fanout --sockets 200 --server-pid "$SERVER"
# Emporium and both Redis baselines back to back (each server started by the command itself).
run --duration 1 compare --attempts 2000 --reports "$REPORTS"
ls "$REPORTS"/compare-*.md >/dev/null
# Orders and carts on a server of its own, stopped and started again (the scale scenario).
"$LT" --connections 8 scale --orders 300 --settled 10 --carts 100 --idle-secs 1 --dir "$DATA"
ls "$REPORTS"/*.md "$REPORTS"/*.svg "$REPORTS"/*.json >/dev/null

# failover: three cluster nodes over a redis-server of the smoke's own; n3 is drained 1 s
# into a first sale, then the SKU's owner SIGKILLed 2 s into a second; buyers retry on the
# other nodes; each audit must hold.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
NODES=()
stop_cluster() {
    for p in "${NODES[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    [ -f "$DATA/redis.pid" ] && kill -9 "$(cat "$DATA/redis.pid")" 2>/dev/null || true
}
trap 'stop_cluster; stop' EXIT
trap 'exit 130' INT TERM PIPE
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync always \
    --dir "$DATA" --daemonize yes --logfile "$DATA/redis.log" --pidfile "$DATA/redis.pid"
CLUSTER_FILE="$DATA/cluster.toml"
printf '[cluster]\nshards = 16\nredis_url = "redis://127.0.0.1:%s/0"\nlease_ttl_ms = 1500\n' "$REDIS_PORT" >"$CLUSTER_FILE"
for i in 1 2 3; do
    NODE_PORT[$i]=$(free_port)
    printf '\n[[cluster.nodes]]\nname = "n%s"\nhttp = "127.0.0.1:%s"\ncluster = "127.0.0.1:%s"\n' \
        "$i" "${NODE_PORT[$i]}" "$(free_port)" >>"$CLUSTER_FILE"
done
for i in 1 2 3; do
    EMPORIUM__SANDBOX__ENABLED=false "$BIN" serve --cluster "$CLUSTER_FILE" --node "n$i" \
        --data-dir "$DATA/n$i" >"$DATA/n$i.log" 2>&1 &
    NODES[$i]=$!
done
for i in 1 2 3; do
    BASE="http://127.0.0.1:${NODE_PORT[$i]}"
    for _ in $(seq 1 100); do ready && break; sleep 0.1; done
    ready || { cat "$DATA/n$i.log"; exit 1; }
done
sleep 2 # the keeper hands shards to their preferred nodes a few per round
TARGETS=(--target "http://127.0.0.1:${NODE_PORT[1]}" --target "http://127.0.0.1:${NODE_PORT[2]}"
    --target "http://127.0.0.1:${NODE_PORT[3]}")
echo "== loadtest smoke: --duration 3 failover --drain n3"
"$LT" "${TARGETS[@]}" --connections 8 --duration 3 failover --users 200 --drain n3 \
    --kill-after 1 --reports "$REPORTS"
echo "== loadtest smoke: --duration 5 failover"
"$LT" "${TARGETS[@]}" --connections 8 --duration 5 failover \
    --users 200 --kill-pid "n1=${NODES[1]},n2=${NODES[2]},n3=${NODES[3]}" --kill-after 2 \
    --reports "$REPORTS"
ls "$REPORTS"/failover-*.svg >/dev/null
echo "== loadtest smoke: every scenario ran"
