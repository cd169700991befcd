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
trap stop EXIT INT TERM PIPE
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
ls "$REPORTS"/*.md "$REPORTS"/*.svg "$REPORTS"/*.json >/dev/null
echo "== loadtest smoke: every scenario ran"
