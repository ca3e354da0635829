#!/usr/bin/env bash
# Differential test of Quill's Hog VM against PostHog's @posthog/hogvm (see differential.mjs and
# KNOWN_DIFFERENCES.md). Builds the quill binary, installs the npm package if needed, then runs
# every program in hog/tests/programs through both VMs. Exits non-zero on an unexpected mismatch.
#
#   hog/tests/hogvm/differential.sh [--verbose] [NAME...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
if [ -z "${QUILL_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet)
  QUILL_BIN="$root/target/debug/quill"
fi
if [ ! -d "$here/node_modules/@posthog/hogvm" ]; then
  npm ci --prefix "$here" --no-audit --no-fund >&2
fi
exec node "$here/differential.mjs" --quill "$QUILL_BIN" "$@"
