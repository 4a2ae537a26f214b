#!/usr/bin/env bash
# Proves that the crate's checks have teeth. For each protocol bug that the test-only
# `fault-injection` feature can inject (src/research/fault.rs), runs the check expected to catch it twice:
# once without the fault (it must pass, or the comparison means nothing) and once with the fault
# (it must fail). Exits non-zero if any injected bug goes undetected.
#
# Usage: scripts/fault-injection.sh [fault-name ...]   (default: every fault)
set -uo pipefail
cd "$(dirname "$0")/.."

FEATURE=(--release --features fault-injection --target-dir target/faults)
LOOM_FLAGS="--cfg loom --cfg crossbeam_loom"
LIMIT=900 # seconds per check run; a hang counts as a failure of the check

valgrind_check() {
    MEMCHECK_TARGET_DIR=target/faults scripts/memcheck.sh --features fault-injection
}

# fault name | how it is caught | command
CHECKS=(
    "skip-help-along|stalled-splitter test (help_along.rs): invariants after others must finish the split|cargo test ${FEATURE[*]} --test help_along"
    "plain-store-publish|linearizability checker on point operations (linearizability.rs)|cargo test ${FEATURE[*]} --test linearizability bwtree_point_operations_are_linearizable"
    "early-retire|valgrind memcheck on the concurrent churn test (memcheck.rs)|valgrind_check"
    "wrong-delta|sequential model test against BTreeMap (model.rs)|cargo test ${FEATURE[*]} --test model"
    "relaxed-publish|loom model two_inserts_into_the_same_page (causality check on node contents)|RUSTFLAGS='$LOOM_FLAGS' cargo test --release --features fault-injection --target-dir target/loom-faults --test loom two_inserts"
)

wanted=("$@")
undetected=0
summary=""
for entry in "${CHECKS[@]}"; do
    IFS='|' read -r fault how command <<<"$entry"
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $fault " ]]; then
        continue
    fi
    echo "=== $fault: $how"
    echo "--- control run (no fault): $command"
    if ! (unset BWTREE_FAULT; timeout "$LIMIT" bash -c "$(declare -f valgrind_check); FEATURE=(${FEATURE[*]}); $command") >"target/fault-$fault-control.log" 2>&1; then
        tail -n 30 "target/fault-$fault-control.log"
        echo "FAIL: the check fails even without the fault"
        undetected=$((undetected + 1))
        summary+="$fault: control run failed (see target/fault-$fault-control.log)"$'\n'
        continue
    fi
    echo "--- with BWTREE_FAULT=$fault"
    start=$(date +%s)
    if (export BWTREE_FAULT="$fault"; timeout "$LIMIT" bash -c "$(declare -f valgrind_check); FEATURE=(${FEATURE[*]}); $command") >"target/fault-$fault.log" 2>&1; then
        echo "UNDETECTED: the check passed with the fault injected"
        undetected=$((undetected + 1))
        summary+="$fault: UNDETECTED by $how"$'\n'
    else
        took=$(( $(date +%s) - start ))
        evidence=$(grep -m 1 -E "panicked at|Invalid read|Invalid write|Causality|violation|FAILED|error:" "target/fault-$fault.log" | cut -c1-200)
        echo "detected in ${took}s: $evidence"
        summary+="$fault: caught by $how in ${took}s"$'\n'
    fi
done
echo
echo "=== summary"
printf '%s' "$summary"
if [ "$undetected" -gt 0 ]; then
    echo "$undetected injected bug(s) went undetected or had a failing control run"
    exit 1
fi
echo "every injected bug was detected"
