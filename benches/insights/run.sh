#!/usr/bin/env bash
# Quill's maintained insights and DuckDB's from-scratch queries over the same events, in one run.
#   benches/insights/run.sh [EVENTS] [PERSONS] [RATE] [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
EVENTS="${1:-1000000}"
PERSONS="${2:-100000}"
RATE="${3:-50000}"
SECONDS_="${4:-20}"
VENV="$ROOT/.venv"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import duckdb" 2>/dev/null || "$VENV/bin/python" -m pip install -q duckdb==2.0.0
cargo build --release -q
DUMP="$(mktemp -d)/events.csv"
./target/release/quill bench insights --events "$EVENTS" --persons "$PERSONS" --rate "$RATE" \
    --seconds "$SECONDS_" --dump "$DUMP"
echo "duckdb (from scratch, best of 3):"
"$VENV/bin/python" benches/insights/duckdb_peer.py "$DUMP"
rm -f "$DUMP"
