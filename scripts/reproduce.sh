#!/usr/bin/env bash
# Regenerates every table and figure the notes in papers/ quote: the lab's paper experiments
# (table1, fig5, table2, decomp, skew), the bulk-vs-one-by-one comparison (bulk) and the default
# lab report, each copied (report.md, CSV, SVG) into OUT/<experiment>/.
#
#   scripts/reproduce.sh                 # full sizes, a few minutes on 2 cores; OUT=papers/results
#   scripts/reproduce.sh --quick         # toy sizes, a smoke test (1-2 minutes); OUT=target/reproduce-quick
#   scripts/reproduce.sh --out DIR       # write somewhere else
set -euo pipefail
cd "$(dirname "$0")/.."

quick=""
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick="--quick"; shift ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "$out" ]]; then
    if [[ -n "$quick" ]]; then out="target/reproduce-quick"; else out="papers/results"; fi
fi

cargo build --release --example lab
lab=target/release/examples/lab
# The §6.3 replica's "relaxed loads" row comes from a second build of the lab (decomp runs it).
RUSTFLAGS="--cfg bwtree_relaxed_loads" \
    cargo build --release --target-dir target/relaxed --example lab
relaxed_lab=target/relaxed/release/examples/lab
work="target/reproduce-work"
rm -rf "$work"
mkdir -p "$work" "$out"

started=$(date +%s)
for experiment in table1 fig5 table2 decomp skew bulk; do
    printf '\n=== lab %s %s (%s) ===\n' "$experiment" "$quick" "$(date +%T)"
    extra=()
    if [[ "$experiment" == decomp ]]; then extra=(--relaxed-lab "$relaxed_lab"); fi
    "$lab" "$experiment" $quick "${extra[@]}" --out "$work/$experiment"
done
printf '\n=== lab run %s (%s) ===\n' "$quick" "$(date +%T)"
if [[ -n "$quick" ]]; then
    "$lab" run --quick --out "$work/run"
else
    # Shorter cells than the lab's default keep the whole script near 20 minutes on 2 cores.
    "$lab" run --threads 1,2,4,8,16,64 --out "$work/run"
fi

for experiment in table1 fig5 table2 decomp skew bulk run; do
    rm -rf "${out:?}/$experiment"
    mkdir -p "$out/$experiment"
    cp "$work/$experiment"/*.md "$work/$experiment"/*.csv "$work/$experiment"/*.svg "$out/$experiment/"
done
printf '\nreproduce: done in %d s; results in %s\n' "$(( $(date +%s) - started ))" "$out"
