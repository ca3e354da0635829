#!/usr/bin/env bash
# Quill's Hog VM against PostHog's @posthog/hogvm on the same bytecode, side by side.
#
#   benches/hog_vs_hogvm.sh [ROUNDS]
#
# For each program in benches/hog/ (cpu.hog, strings.hog, transform.hog) the bytecode comes from
# `quill hog compile`; both VMs run that file ROUNDS times (default 7) x ITER executions and report
# the median time per execution. Quill is timed by hog/examples/hog_bench.rs (release build; both
# from the bytecode JSON on every run and from a Program decoded once), PostHog by
# benches/hog/hogvm_bench.mjs. Both VMs' return values are checked to be equal.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-7}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target-hog}"

cargo build --quiet -j1 --release -p quill-hog --example hog_bench
quill_bench="$CARGO_TARGET_DIR/release/examples/hog_bench"
# The bytecode comes from the quill binary (debug build, same target dir).
cargo build --quiet -j1
quill="$CARGO_TARGET_DIR/debug/quill"
if [ ! -d hog/tests/hogvm/node_modules/@posthog/hogvm ]; then
  npm ci --prefix hog/tests/hogvm --no-audit --no-fund >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
globals=benches/hog/transform_globals.json

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1); node $(node --version); @posthog/hogvm $(node -p "require('./hog/tests/hogvm/node_modules/@posthog/hogvm/package.json').version")"
printf '%-10s %6s %14s %14s %16s %9s %9s\n' program iter quill_us quill_prog_us hogvm_us ratio ratio_prog
status=0
for spec in cpu:20 strings:200 transform:5000; do
  name="${spec%%:*}"; iter="${spec##*:}"
  "$quill" hog compile "benches/hog/$name.hog" > "$work/$name.json"
  q="$("$quill_bench" "$work/$name.json" "$iter" --rounds "$rounds" --globals "$globals")"
  p="$(node benches/hog/hogvm_bench.mjs "$work/$name.json" "$iter" --rounds "$rounds" --globals "$globals")"
  q_res="$(sed -n 's/^result //p' <<<"$q")"
  p_res="$(sed -n 's/^result //p' <<<"$p")"
  # Key order of returned dicts may differ between the VMs; compare as sorted JSON.
  if [ "$(node -e 'const s=(v)=>v&&typeof v==="object"&&!Array.isArray(v)?Object.fromEntries(Object.keys(v).sort().map(k=>[k,s(v[k])])):Array.isArray(v)?v.map(s):v;console.log(JSON.stringify(s(JSON.parse(process.argv[1]))))' "$q_res")" != \
       "$(node -e 'const s=(v)=>v&&typeof v==="object"&&!Array.isArray(v)?Object.fromEntries(Object.keys(v).sort().map(k=>[k,s(v[k])])):Array.isArray(v)?v.map(s):v;console.log(JSON.stringify(s(JSON.parse(process.argv[1]))))' "$p_res")" ]; then
    echo "$name: the VMs returned different results" >&2
    echo "  quill:  $q_res" >&2
    echo "  hogvm:  $p_res" >&2
    status=1
  fi
  qt="$(sed -n 's/^median_us //p' <<<"$q")"
  qp="$(sed -n 's/^median_program_us //p' <<<"$q")"
  pt="$(sed -n 's/^median_us //p' <<<"$p")"
  awk -v n="$name" -v i="$iter" -v q="$qt" -v qp="$qp" -v p="$pt" \
    'BEGIN { printf "%-10s %6d %14.2f %14.2f %16.2f %8.1fx %8.1fx\n", n, i, q, qp, p, p / q, p / qp }'
done
exit "$status"
