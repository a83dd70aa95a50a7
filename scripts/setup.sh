#!/usr/bin/env bash
# Sets up everything duplex needs on a fresh Debian/Ubuntu machine, idempotently:
#   - system packages (build tools, ALSA headers, espeak-ng for spoken test audio, PortAudio
#     for the benchmarks' pure-Python baseline, and with
#     --for-tests the PulseAudio null-sink stack the real-device tests use, Xvfb for the
#     screen-capture test, and nodejs for pyright where no node is on PATH);
#   - with --for-tests, cargo-fuzz (pinned) for the brief fuzz run of scripts/test.sh;
#   - a virtual environment in .venv with duplex built from source (release) and its test
#     dependencies.
# Run from anywhere; it works in the repository that contains it.
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FOR_TESTS=0
[ "${1:-}" = "--for-tests" ] && FOR_TESTS=1

log() { printf 'setup: %s\n' "$*" >&2; }

PKGS=(pkg-config libasound2-dev gcc espeak-ng libportaudio2)
[ "$FOR_TESTS" = 1 ] && PKGS+=(xvfb)
# pyright (scripts/typecheck.sh) runs on node; any node on PATH will do.
[ "$FOR_TESTS" = 1 ] && ! command -v node >/dev/null && PKGS+=(nodejs)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt=(timeout -k 10 900 apt-get -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends)
  "${apt[@]}" install "${missing[@]}" >/dev/null 2>&1 \
    || { timeout -k 10 600 apt-get -qq update >/dev/null && "${apt[@]}" install "${missing[@]}" >/dev/null; }
fi
if [ "$FOR_TESTS" = 1 ]; then
  bash scripts/audio-server.sh install
fi

command -v cargo >/dev/null || { log "Rust is needed: install it with rustup (https://rustup.rs)"; exit 1; }
# The tests' brief fuzz run (scripts/fuzz.sh --brief) needs cargo-fuzz, pinned; from crates.io,
# built once (about two minutes). Its toolchain is whatever rustup has (fuzz.sh: nightly, else
# stable with RUSTC_BOOTSTRAP=1), so nothing is fetched from rustup's servers.
CARGO_FUZZ_VERSION=0.13.2
if [ "$FOR_TESTS" = 1 ] && ! command -v cargo-fuzz >/dev/null; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked)"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
# Rebuild only when the sources changed since the last install.
stamp=.venv/.duplex-build-stamp
sources=$(find pyproject.toml Cargo.toml Cargo.lock rust python -type f -newer "$stamp" 2>/dev/null | head -1 || true)
if [ ! -f "$stamp" ] || [ -n "$sources" ]; then
  log "building duplex (release) into .venv; the first build takes a few minutes"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # The distribution was called "duplex" before it was renamed duplex-engine (that name is
  # another project on PyPI): drop the old editable install so one dist owns the package.
  .venv/bin/python -m pip uninstall -q -y duplex >/dev/null 2>&1 || true
  # Every extra (live, video, bench) plus the test tools: the tests use all of them.
  .venv/bin/python -m pip install -q -e ".[all,test]"
  touch "$stamp"
fi
log "ready: $(.venv/bin/python -c 'import duplex, numpy; print("duplex", "ok; numpy", numpy.__version__)')"
