#!/usr/bin/env bash
# Runs schemathesis (pinned below, installed in a venv under target/) against a real node
# (debug build, temp data dir) with every check and every phase, the stateful one included:
# seeded and bounded, it must find nothing.
# What the run may not judge from the document alone is in scripts/schemathesis.toml, with
# the reason for each entry. Usage: scripts/schemathesis.sh [MAX_EXAMPLES] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/debug/emporium
[ -x "$BIN" ] || cargo build --bin emporium

# schemathesis in a virtual environment of its own under target/ (Debian's Python is
# "externally managed", PEP 668); it needs Python 3.10 or later.
ST_VERSION=4.32.5
VENV=$TARGET/schemathesis-venv
PY=$VENV/bin/python
if ! "$PY" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$ST_VERSION')" 2>/dev/null; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    "$PY" -m pip install --quiet "schemathesis==$ST_VERSION"
fi
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export EMPORIUM_OPERATOR_TOKEN=schemathesis-operator-token
export EMPORIUM_JWT_SECRET=schemathesis-jwt-secret-0123456789abcdef
export EMPORIUM_DEV_MODE=true EMPORIUM_AUTH_RATE_PER_IP=0 RUST_LOG=warn
# A fuzzer posts and creates rooms faster than a person: chat's per-user limits (tests/api/chat_limits.rs)
# would answer most of its chat requests 429.
export EMPORIUM__CHAT__MESSAGES_PER_MINUTE=0 EMPORIUM__CHAT__ROOMS_PER_HOUR=0
# The second run's access token must outlive the run.
export EMPORIUM__AUTH__ACCESS_TTL_SECS=3600
export EMPORIUM__AUTH__ARGON2_M_KIB=1024 EMPORIUM__AUTH__ARGON2_T=1

"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
SERVER=$!
stop() {
    kill "$SERVER" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SERVER" 2>/dev/null || true
    rm -rf "$DATA"
}
trap stop EXIT
trap 'exit 130' INT TERM PIPE
ready() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$BASE/readyz" 2>/dev/null; }
for _ in $(seq 1 100); do
    ready && break
    sleep 0.1
done
ready || { cat "$DATA/server.log"; exit 1; }

# `--seed` makes the cases the same on every run; `--max-examples` bounds each operation.
MAX_EXAMPLES=${1:-${MAX_EXAMPLES:-10}}
schemathesis() {
    echo "== schemathesis as $1"
    shift
    "$PY" -m schemathesis.cli --no-color --config-file scripts/schemathesis.toml run \
        "$BASE/api/v1/openapi.json" --url "$BASE" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$MAX_EXAMPLES" \
        --seed 1 \
        --workers 1 \
        "$@" \
        || { echo "== schemathesis failed; the server log ends:" >&2; tail -30 "$DATA/server.log" >&2; exit 1; }
}

# 1. The operator token, on every operation (customer operations answer 404: no account).
schemathesis "the operator" -H "Authorization: Bearer $EMPORIUM_OPERATOR_TOKEN"

# 2. An account with every role, so that what one operation creates (a product, a cart line,
# an order, a room) feeds the next in the stateful phase. Deleting the account and logging
# out would end the run's own session; tests/api covers both.
post() {
    python3 - "$BASE$1" "$2" "${3:-}" <<'PY'
import json, sys, urllib.request
url, body, token = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Content-Type": "application/json"}
if token:
    headers["Authorization"] = "Bearer " + token
req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY
}
EMAIL=schemathesis@example.com
PASSWORD=schemathesis-password
post /api/v1/admin/users \
    "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\", \"name\": \"Schemathesis\", \"roles\": [\"customer\", \"admin\", \"operator\"]}" \
    "$EMPORIUM_OPERATOR_TOKEN" >/dev/null
TOKEN=$(post /api/v1/auth/login "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
schemathesis "an account with every role" -H "Authorization: Bearer $TOKEN" \
    --exclude-name "DELETE /api/v1/users/me" --exclude-name "POST /api/v1/auth/logout"
