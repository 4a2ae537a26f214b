#!/usr/bin/env bash
# Runs tests/maintenance_race.rs (maintenance passes, shape() and scans beside writers) under
# ThreadSanitizer, which reports data races, including a free racing an access. Needs a nightly
# toolchain with `rust-src` (the standard library is rebuilt with the sanitizer, -Zbuild-std);
# installs it with rustup if it is missing (exits 3 if that is not possible). crossbeam-epoch's
# `crossbeam_sanitize_thread` cfg replaces the fences TSan does not understand.
#
#   scripts/tsan.sh            (about 5 minutes on 2 cores, most of it building std)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup run nightly rustc --version >/dev/null 2>&1 ||
    ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q rust-src; then
    echo "installing a nightly toolchain with rust-src (rustup)"
    if ! rustup toolchain install nightly --profile minimal --component rust-src; then
        echo "tsan: no nightly toolchain can be installed here; skipped" >&2
        exit 3
    fi
fi
target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=thread --cfg crossbeam_sanitize_thread"
export RUSTDOCFLAGS="$RUSTFLAGS"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
cargo +nightly test -Zbuild-std --target "$target" --target-dir target/tsan \
    --test maintenance_race -- --test-threads=1
