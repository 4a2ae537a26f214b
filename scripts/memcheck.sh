#!/usr/bin/env bash
# Runs the concurrent churn test (tests/memcheck.rs) under valgrind's memcheck and fails on any
# memory error or definite leak. Installs valgrind (Debian package) if it is missing.
#
# Usage: scripts/memcheck.sh [extra cargo args, e.g. --features fault-injection]
# Env:   BWTREE_MEMCHECK_OPS (operations per thread, default 1500 here), MEMCHECK_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: installing the Debian package"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind >/dev/null
fi

target_dir=${MEMCHECK_TARGET_DIR:-target}
bin=$(cargo test --release --target-dir "$target_dir" "$@" --test memcheck --no-run 2>&1 |
    grep -o "$target_dir/release/deps/memcheck-[0-9a-f]*" | head -n 1)
[ -n "$bin" ] || { echo "memcheck test binary not found"; exit 2; }
echo "valgrind --tool=memcheck $bin"
BWTREE_MEMCHECK_OPS=${BWTREE_MEMCHECK_OPS:-1500} valgrind --quiet --error-exitcode=99 \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite "$bin" --test-threads=1
echo "memcheck: no errors"
