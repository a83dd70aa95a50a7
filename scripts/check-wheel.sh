#!/usr/bin/env bash
# CI check of the published artefact: builds the wheel (scripts/build-wheels.sh --fast) and
# installs it, core only, into a fresh virtual environment for every CPython 3.10+ on this
# machine (pyenv's and the system's), with no Rust on PATH, then smoke-tests each one:
# `duplex --version`, `duplex devices` with no "ALSA lib" noise, a virtual-device round trip
# (a tone in, 16 kHz chunks out, 24 kHz audio played into a WAV and read back), and that a
# command needing an extra says which to install (exit 2, one line).
#   scripts/check-wheel.sh [WHEEL]     # skip the build and check WHEEL
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf 'check-wheel: %s\n' "$*" >&2; }

if [ -n "${1:-}" ]; then wheel=$(realpath "$1"); else
  bash scripts/build-wheels.sh --fast >/dev/null
  wheel=$(realpath dist/*.whl)
fi

# Every CPython 3.10+ here, once per minor version.
declare -A seen=()
pythons=()
for py in /root/.pyenv/versions/*/bin/python3 "$(command -v python3 || true)"; do
  [ -x "$py" ] || continue
  v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2]) if sys.version_info >= (3, 10) else None' 2>/dev/null) || continue
  [ -n "$v" ] && [ "$v" != None ] && [ -z "${seen[$v]:-}" ] || continue
  seen[$v]=1
  pythons+=("$py")
done
[ ${#pythons[@]} -gt 0 ] || { log "no CPython 3.10+ found"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/duplex-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
# No cargo, rustc or ~/.cargo on PATH: the wheel must not need Rust.
CLEAN_PATH=/usr/local/bin:/usr/bin:/bin
failed=0
for py in "${pythons[@]}"; do
  v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv="$work/py$v"
  "$py" -m venv "$venv"
  t0=$SECONDS
  env -i PATH="$venv/bin:$CLEAN_PATH" HOME="$HOME" PIP_FIND_LINKS=/opt/wheels \
      "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" >&2
  if env -i PATH="$venv/bin:$CLEAN_PATH" HOME="$HOME" TMPDIR="$work" bash -euo pipefail -c '
      ! command -v cargo >/dev/null && ! command -v rustc >/dev/null
      cd "$TMPDIR"
      duplex --version | grep -q "^duplex (duplex-engine) [0-9]"
      duplex devices >devices.out 2>devices.err
      grep -q "virtual" devices.out
      if grep -q "ALSA lib" devices.err; then echo "ALSA noise:"; cat devices.err; exit 1; fi
      python - <<EOF
import wave, numpy as np, duplex
dev = duplex.VirtualDevice(input=duplex.Tone(440.0, 0.5), output="out.wav", speed=8.0)
with duplex.AudioEngine(backend=dev) as engine:
    chunks = [engine.read(timeout=2.0) for _ in range(10)]
    assert all(len(c) == 640 for c in chunks), [len(c) for c in chunks]
    mic = np.frombuffer(b"".join(chunks[5:]), "<i2")
    assert np.sqrt(np.mean(mic.astype(float) ** 2)) > 3000, "the tone did not come through"
    engine.play((8000 * np.sin(2 * np.pi * 300 * np.arange(12000) / 24000)).astype(np.int16))
    engine.end_turn()
    import time; t = time.monotonic()
    while engine.stats().playback_buffered_ms > 0 and time.monotonic() - t < 5: time.sleep(0.02)
with wave.open("out.wav") as w:
    played = np.frombuffer(w.readframes(w.getnframes()), "<i2")
assert np.abs(played).max() > 4000, "nothing was played"
print("round trip ok:", duplex.__version__)
EOF
      if duplex talk 2>talk.err; then exit 1; else test $? -eq 2; fi
      test "$(wc -l <talk.err)" -eq 1 && grep -q "pip install .duplex-engine\[live\]." talk.err
  '; then
    log "Python $v: installed in $((SECONDS - t0)) s; --version, devices, round trip, extra hint: ok"
  else
    log "Python $v: FAILED"; failed=1
  fi
done
log "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) kB; core install (numpy) $(du -sk "$venv/lib" | cut -f1) kB in $venv"
exit $failed
