#!/usr/bin/env bash
# /flags?v=2 under closed-loop load from wrk on loopback: 50 flags, a real person lookup per
# request, as fast as the server answers. `quill bench flags --rate N` is the open-loop peer.
#   benches/flags/run.sh [SECONDS] [CONNECTIONS] [WRK_THREADS]
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
QUILL_PROJECT_TOKEN=phc_bench_token QUILL_PERSONAL_API_KEY=phx_bench_key \
    "$TARGET/release/quill" serve --bind "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/_status" >/dev/null && break; sleep 0.1; done
"$TARGET/release/quill" bench flags --seed-only "http://127.0.0.1:$PORT" --persons 10000
cat >"$DATA/flags.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local body = '{"token":"phc_bench_token","distinct_id":"user-' .. math.random(0, 9999) .. '"}'
  return wrk.format("POST", "/flags?v=2", nil, body)
end
LUA
curl -s -X POST "http://127.0.0.1:$PORT/flags?v=2" -H 'Content-Type: application/json' \
    -d '{"token":"phc_bench_token","distinct_id":"user-17"}' | head -c 300; echo
wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_}s" --latency -s "$DATA/flags.lua" "http://127.0.0.1:$PORT"
echo "server peak RSS: $(grep VmHWM /proc/$SERVER/status)"
