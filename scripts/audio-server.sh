#!/usr/bin/env bash
# Headless PulseAudio null sink for duplex's audio tests (no sound card needed).
#
#   scripts/audio-server.sh install            # apt-get the packages if missing (root)
#   eval "$(scripts/audio-server.sh start)"    # start server, export client env
#   ...run tests (cpal ALSA host -> `default` -> pulse plugin -> nullsink)...
#   scripts/audio-server.sh stop [DIR]         # stop by PID, remove temp dir
#
# `start` prints `export K=V` lines on stdout (everything else goes to stderr):
#   XDG_RUNTIME_DIR, PULSE_SERVER, PULSE_COOKIE   what clients need
#   DUPLEX_AUDIO_DIR                              temp dir (socket, log, state file)
#   DUPLEX_AUDIO_PA_PID, DUPLEX_AUDIO_KEEPER_PID  daemon and keeper PIDs
# The same lines are kept in $DUPLEX_AUDIO_DIR/state; `stop` uses the env vars,
# else the state file of the dir given as argument (or $DUPLEX_AUDIO_DIR).
#
# Null sink `nullsink` (48 kHz stereo) is the default sink, `nullsink.monitor`
# the default source, so ALSA `default` capture records what `default` plays.
# A keeper stream (pacat recording the monitor at 10 ms latency) stops the idle
# null sink from rendering in 2 s blocks; start returns once the sink latency
# is < 20 ms (about 2.1 s after launch). start/stop run the one launcher,
# python/duplex/testing/audio_server.py, that the tests and benchmarks use too.
set -euo pipefail
exec </dev/null

# PipeWire with pipewire-pulse and WirePlumber too: the native host's tests also run on a
# PipeWire null sink (python/duplex/testing/pipewire_server.py). They install next to
# PulseAudio; only pipewire-alsa conflicts with it, and it is not needed.
PKGS=(pulseaudio pulseaudio-utils alsa-utils libasound2-plugins pipewire pipewire-pulse wireplumber)

log() { printf 'audio-server: %s\n' "$*" >&2; }

cmd_install() {
  local missing=() p
  for p in "${PKGS[@]}" ${AUDIO_SERVER_EXTRA_PKGS:-}; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed \
      || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { log "need root to install: ${missing[*]}"; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  local apt=(timeout -k 10 600 apt-get -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends)
  # Only refresh the package lists when they are absent or the install fails.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null \
     || ! "${apt[@]}" install "${missing[@]}" >/dev/null 2>&1; then
    timeout -k 10 300 apt-get update -qq >/dev/null
    "${apt[@]}" install "${missing[@]}" >/dev/null
  fi
  log "installed: ${missing[*]}"
}

# The launcher itself is python/duplex/testing/audio_server.py (standard library only, so it
# runs without duplex built); the tests and benchmarks import the same module.
LAUNCHER="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/python/duplex/testing/audio_server.py"
PY=${PYTHON:-python3}

case ${1:-} in
  install) cmd_install ;;
  start) exec "$PY" "$LAUNCHER" start ;;
  stop) shift; exec "$PY" "$LAUNCHER" stop "$@" ;;
  *) echo "usage: $0 install|start|stop [DIR]" >&2; exit 2 ;;
esac
