#!/usr/bin/env bash
# /flags?v=2 under concurrent load on loopback: 50 flags, a real person lookup per request.
#   benches/flags/run.sh [SECONDS] [CONNECTIONS] [WRK_THREADS] [RATE]
# RATE (requests/s) runs wrk2-style constant load when the installed wrk supports -R;
# without it, wrk sends as fast as the server answers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECONDS_="${1:-15}"
CONNS="${2:-16}"
THREADS="${3:-2}"
command -v wrk >/dev/null || { sudo apt-get install -y -q wrk >/dev/null || apt-get install -y -q wrk >/dev/null; }
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -q
DATA="$(mktemp -d)"
PORT=18500
QUILL_PROJECT_TOKEN=phc_bench QUILL_PERSONAL_API_KEY=phx_bench \
    "$TARGET/release/quill" serve --bind "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/_status" >/dev/null && break; sleep 0.1; done
python3 benches/flags/seed.py "http://127.0.0.1:$PORT" phc_bench phx_bench 10000
cat >"$DATA/flags.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{"token":"phc_bench","distinct_id":"user-' .. math.random(0, 9999) .. '"}'
  return wrk.format("POST", "/flags?v=2", nil, body)
end
LUA
curl -s -X POST "http://127.0.0.1:$PORT/flags?v=2" -H 'Content-Type: application/json' \
    -d '{"token":"phc_bench","distinct_id":"user-17"}' | head -c 300; echo
wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_}s" --latency -s "$DATA/flags.lua" "http://127.0.0.1:$PORT"
echo "server peak RSS: $(grep VmHWM /proc/$SERVER/status)"
