#!/usr/bin/env bash
# Runs the engine's libFuzzer targets (fuzz/README.md): scripts/fuzz.sh [TARGET] [SECONDS].
# Default: both targets, 300 s each. Needs cargo-fuzz and a nightly toolchain, or
# TOOLCHAIN=stable with RUSTC_BOOTSTRAP=1. Not part of scripts/test.sh (the proptest suites
# cover the same properties there, briefly).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
targets=${1:-"callbacks engine_api"}
seconds=${2:-300}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
toolchain=${TOOLCHAIN:-nightly}
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: no $toolchain toolchain: rustup toolchain install nightly, or" \
        "TOOLCHAIN=stable RUSTC_BOOTSTRAP=1 scripts/fuzz.sh" >&2
    exit 2
fi
for target in $targets; do
    mkdir -p "fuzz/corpus/$target"
    # -O with debug assertions: optimised like the shipped engine, overflow checks on;
    # AddressSanitizer (cargo-fuzz's default) for the dependencies' unsafe code.
    cargo "+$toolchain" fuzz run -O --debug-assertions "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1
done
