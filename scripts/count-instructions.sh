#!/usr/bin/env bash
# Counts the server's user-space instructions per request under callgrind: a sold-out drop
# attempt (`flash-sale` on 10 units, every attempt after the tenth refused) and a
# `GET /healthz`. Instruction counts do not move with the machine's neighbours the way CPU
# time does, so two builds can be compared one run each. The kernel's share (TCP, about half of
# a refusal's CPU) is not counted.
#
#   ./scripts/count-instructions.sh [path/to/emporium] [attempts]
#
# Needs valgrind (`apt-get install valgrind`) and a release build of the workspace (the
# loadtest binary beside the server's). Runs on port 8080; about two minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/emporium}
attempts=${2:-3000}
lt=$root/target/release/emporium-loadtest
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
export EMPORIUM_JWT_SECRET=count-instructions-secret-count-instructions-0 \
  EMPORIUM_OPERATOR_TOKEN=count-instructions EMPORIUM_AUTH_RATE_PER_IP=0
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
EMPORIUM_DATA_DIR=$dir/data EMPORIUM_LISTEN=127.0.0.1:8080 valgrind --tool=callgrind \
  --callgrind-out-file="$dir/cg.out" "$bin" serve >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null && break
  sleep 0.2
done

# Instructions from a zeroed counter to a dump, over `count` requests.
measure() {
  local label=$1 count=$2
  shift 2
  callgrind_control -z "$pid" >/dev/null
  "$@" >"$dir/run.log" 2>&1 || { tail -3 "$dir/run.log"; exit 1; }
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  local file
  file=$(ls -t "$dir"/cg.out* | head -1)
  local ir
  ir=$(grep -E '^(summary|totals):' "$file" | head -1 | awk '{print $2}')
  [ "$count" = auto ] && count=$(grep -o '([0-9]* ok' "$dir/run.log" | tr -dc 0-9)
  echo "$label: $((ir / count)) instructions per request ($ir over $count)"
}

# Warm up (first requests fill caches and spawn threads), then measure.
"$lt" --connections 8 flash-sale --stock 10 --users 200 --attempts 500 --reports "$dir" \
  >"$dir/warm.log" 2>&1
measure "sold-out drop attempt" "$attempts" "$lt" --connections 8 flash-sale --stock 10 \
  --users 200 --attempts "$attempts" --reports "$dir"
measure "GET /healthz" auto "$lt" --connections 8 --duration 3 ceiling
