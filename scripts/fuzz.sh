#!/usr/bin/env bash
# Runs the engine's libFuzzer targets (fuzz/README.md).
#
#   scripts/fuzz.sh [TARGETS] [SECONDS]   default: both targets ("callbacks engine_api"), 300 s
#                                         each, AddressSanitizer (with LeakSanitizer)
#   scripts/fuzz.sh --brief               what scripts/test.sh runs: both targets, 25 s each,
#                                         LeakSanitizer only (quicker to build)
#
# Each target starts from the committed seeds (fuzz/seeds/TARGET: a set-cover-minimised
# corpus, read only) and the local corpus (fuzz/corpus/TARGET, not committed, where new
# inputs go), so a longer run here makes the next one start further on. It prints the
# executions, inputs and coverage, and exits non-zero on a crash or failed assertion, a
# hang (one input running longer than FUZZ_TIMEOUT_S, default 60 s), a leak, or an input
# over 4 GB of RSS; the input is left in fuzz/artifacts/TARGET/ with the run's log (replay
# it: the binary the script names, with the file as its argument).
#
# Needs cargo-fuzz (scripts/setup.sh --for-tests installs it) and a toolchain that takes -Z
# flags: nightly if rustup has one, else stable with RUSTC_BOOTSTRAP=1 (tried with 1.95); or
# TOOLCHAIN=name. SANITIZER=address|leak|none overrides the sanitizer (none: no leak check).
# The build goes to DUPLEX_FUZZ_TARGET_DIR (default fuzz/target; scripts/test.sh keeps it in
# ~/.cache so a fresh clone rebuilds only the engine), one subfolder per sanitizer: its
# RUSTFLAGS differ from the main build's, so nothing there can be shared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-}" = "--brief" ]; then
    targets="callbacks engine_api"
    seconds=${FUZZ_BRIEF_S:-25}
    # LeakSanitizer instruments nothing (a runtime only): the build costs what an
    # uninstrumented one does, about half of AddressSanitizer's; 16 codegen units let both
    # cores build the large crates (cargo-fuzz's default is 1, for the fastest code).
    sanitizer=${SANITIZER:-leak}
    cgu=${FUZZ_CODEGEN_UNITS:-16}
else
    targets=${1:-"callbacks engine_api"}
    seconds=${2:-300}
    sanitizer=${SANITIZER:-address}
    cgu=${FUZZ_CODEGEN_UNITS:-1}
fi
target_dir=$(realpath -m "${DUPLEX_FUZZ_TARGET_DIR:-fuzz/target}/$sanitizer")
hang_s=${FUZZ_TIMEOUT_S:-60}

say() { printf 'fuzz: %s\n' "$*"; }

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    say "cargo-fuzz is missing: scripts/setup.sh --for-tests installs it (or: cargo install --locked cargo-fuzz)" >&2
    exit 2
fi
# cargo-fuzz passes -Z flags (sanitizers, coverage passes): nightly takes them; stable does
# with RUSTC_BOOTSTRAP=1. rustup's download server may be unreachable, so nothing is installed
# here: use what is there.
if [ -z "${TOOLCHAIN:-}" ]; then
    if rustup run nightly rustc --version >/dev/null 2>&1; then
        TOOLCHAIN=nightly
    else
        TOOLCHAIN=stable
    fi
fi
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    say "no $TOOLCHAIN toolchain (rustup toolchain list)" >&2
    exit 2
fi
[ "$TOOLCHAIN" = nightly ] || export RUSTC_BOOTSTRAP=1
triple=$(rustup run "$TOOLCHAIN" rustc -vV | sed -n 's/^host: //p')

# Optimised like the shipped engine, with debug assertions (overflow checks) on; line tables
# only (enough for a crash's backtrace, quicker to build than full debug info).
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
# Freshness by content, not mtime: the target folder outlives clones and worktrees, and a file
# edited before another checkout's build would otherwise look unchanged (a stale binary).
export CARGO_UNSTABLE_CHECKSUM_FRESHNESS=true
build_args=(-O --debug-assertions --sanitizer "$sanitizer" --codegen-units "$cgu" --target-dir "$target_dir")
say "building $targets into $target_dir ($(rustup run "$TOOLCHAIN" rustc --version | cut -d' ' -f1-2)${RUSTC_BOOTSTRAP:+ with RUSTC_BOOTSTRAP=1}, sanitizer $sanitizer)"
t0=$(date +%s)
for target in $targets; do
    cargo "+$TOOLCHAIN" fuzz build "${build_args[@]}" "$target"
done
say "built in $(( $(date +%s) - t0 )) s"

if [ "$sanitizer" = none ]; then found="crash or hang (no leak check without a sanitizer)"; else found="crash, hang or leak"; fi
status=0
for target in $targets; do
    bin=$target_dir/$triple/release/$target
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" "fuzz/seeds/$target"
    log=fuzz/artifacts/$target/last-run.log
    t1=$(date +%s)
    rc=0
    # The outer timeout only catches libFuzzer itself hanging (it enforces -timeout per input).
    timeout -k 10 $(( seconds + hang_s + 120 )) "$bin" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -max_total_time="$seconds" -timeout="$hang_s" -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    inputs=$(sed -n 's/.*INFO: *\([0-9]*\) files found in.*/\1/p' "$log" | awk '{n += $1} END {print n + 0}')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        say "$target: ${execs:-?} executions in $(( $(date +%s) - t1 )) s from $inputs inputs (seeds + local corpus)," \
            "${new:-0} new, ${cov:-?} coverage edges, peak RSS ${rss:-?} MB: no $found"
    else
        say "$target FAILED (exit $rc) after ${execs:-?} executions ($bin); the end of $log:" >&2
        tail -40 "$log" >&2
        ls -t "fuzz/artifacts/$target" | grep -v last-run.log | head -3 | sed "s|^|fuzz: input: fuzz/artifacts/$target/|" >&2
        status=1
    fi
done
exit $status
