#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh, with the PulseAudio test server) and runs every test:
# the engine's cargo tests (no Python, no device), a smoke run of its benchmarks, both fuzz
# targets for 25 s each (scripts/fuzz.sh --brief: a crash, hang or leak fails), and the
# pytest suite (virtual device, bad input, the real device path against a PulseAudio null
# sink that the tests start and stop themselves, video framing, the Live API emulator through
# the real google-genai SDK, and whole conversations). Exits non-zero on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --for-tests

echo "== cargo test: engine unit and integration tests, benchmarks in smoke mode =="
DUPLEX_BENCH_QUICK=1 cargo test -p duplex-engine --all-targets -q
echo "== fuzz: both libFuzzer targets briefly, 25 s each (longer: scripts/fuzz.sh TARGET SECONDS) =="
# The fuzz build (its own RUSTFLAGS) is kept across clones, so only the engine is rebuilt.
DUPLEX_FUZZ_TARGET_DIR=${DUPLEX_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/duplex/fuzz-target} \
    bash scripts/fuzz.sh --brief
echo "== pytest =="
.venv/bin/python -m pytest -q "$@"
echo "== types: the native module's stub matches the built module (stubtest), and pyright --verifytypes holds the package to 99 % =="
bash scripts/typecheck.sh
echo "== benchmark suites, smoke mode (each body runs once; numbers are reported, not checked) =="
.venv/bin/python -m pytest -q benches/ --benchmark-disable -p no:cacheprovider
echo "== the wheel: built as published (abi3, manylinux_2_28, system libasound), installed without Rust into a fresh venv per Python 3.10+, smoke-tested =="
bash scripts/check-wheel.sh
