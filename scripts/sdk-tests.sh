#!/usr/bin/env bash
# End-to-end tests of the real `quill` binary with the real PostHog SDKs:
# posthog-python (tests/python, pytest) and posthog-node (tests/node, node --test).
#
# Idempotent: creates .venv and tests/node/node_modules only when missing, installs the
# pinned Python packages only when they are not already there, builds the binary, runs both
# suites, and exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY_PACKAGES=(posthog==7.91.1 pytest==9.2.0 requests==2.34.2)
VENV="$ROOT/.venv"
export QUILL_BIN="${QUILL_BIN:-$ROOT/target/debug/quill}"

echo "==> python venv ($VENV)"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
missing=()
installed="$("$VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null || true)"
for pkg in "${PY_PACKAGES[@]}"; do
    # pip freeze prints canonical names; compare case-insensitively
    if ! grep -qix "$(printf '%s' "$pkg" | sed 's/[.[\*^$]/\\&/g')" <<<"$installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "    installing: ${missing[*]}"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${missing[@]}"
else
    echo "    up to date: ${PY_PACKAGES[*]}"
fi

echo "==> node packages (tests/node)"
if [[ ! -d "$ROOT/tests/node/node_modules" ]]; then
    (cd "$ROOT/tests/node" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
else
    echo "    node_modules present"
fi

echo "==> cargo build"
cargo build

status=0

echo "==> pytest tests/python"
"$VENV/bin/python" -m pytest -p no:cacheprovider tests/python || status=1

echo "==> node --test tests/node/"
node --test tests/node/ || status=1

if ((status)); then
    echo "sdk-tests: FAILED" >&2
else
    echo "sdk-tests: all SDK suites passed"
fi
exit "$status"
