#!/usr/bin/env bash
# Runs the crate's unit tests (`--lib`) under Miri, the interpreter that reports undefined
# behaviour: out-of-bounds or dangling accesses, use after free, invalid values, data races
# between its own threads, leaks. Needs a nightly toolchain with the `miri` and `rust-src`
# components; installs them with rustup if they are missing (exits 3 if that is not possible).
# Tests are sized down under Miri (`crate::test_size`); the whole run takes 10-20 minutes on 2 cores.
#
#   scripts/miri.sh [test-name-filter]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "installing a nightly toolchain with miri (rustup)"
    if ! rustup toolchain install nightly --profile minimal --component miri,rust-src; then
        echo "miri: no nightly toolchain with miri can be installed here; skipped" >&2
        exit 3
    fi
fi
cargo +nightly miri --version
# The loom cfgs stay off; the peer crates of the lab are dev-dependencies that the lib tests do not
# use, but they are built: Miri builds the whole dev-dependency graph.
cargo +nightly miri test --lib --target-dir target/miri -- "$@"
