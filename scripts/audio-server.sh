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
# is < 20 ms (about 2.1 s after launch). See shared/reference/headless_audio.md.
set -euo pipefail
exec </dev/null

PKGS=(pulseaudio pulseaudio-utils alsa-utils libasound2-plugins)
START_TIMEOUT=${AUDIO_SERVER_START_TIMEOUT:-15}   # seconds, whole readiness wait
T=(timeout -k 2 5)                                 # wrapper for every client call

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

# Is $1 alive and is its command line one of ours (mentions $2)? Guards against PID reuse.
ours() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# Alive and not a zombie (an unreaped child of ours still answers kill -0).
alive() {
  local st
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

stop_pids() {  # $1 = dir, rest = PIDs; SIGTERM, wait up to 5 s, SIGKILL
  local dir=$1 p i; shift
  local pids=()
  for p in "$@"; do ours "$p" "$dir" && pids+=("$p"); done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for i in $(seq 50); do
    for p in "${pids[@]}"; do alive "$p" && break; done
    alive "$p" || return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    alive "$p" && ours "$p" "$dir" && { log "SIGKILL $p"; kill -KILL "$p" 2>/dev/null || true; }
  done
  for i in $(seq 20); do
    for p in "${pids[@]}"; do alive "$p" && break; done
    alive "$p" || return 0
    sleep 0.1
  done
}

sink_latency_us() {
  "${T[@]}" pactl list sinks 2>/dev/null \
    | sed -n 's/^[[:space:]]*Latency: \([0-9]*\) usec.*/\1/p' | head -1
}

cmd_start() {
  command -v pulseaudio >/dev/null && command -v pactl >/dev/null && command -v pacat >/dev/null \
    || { log "pulseaudio/pactl/pacat missing: run '$0 install'"; return 1; }
  local i lat deadline
  # Globals (not local): the EXIT trap below may run after this function returns.
  dir="" pa_pid="" keep_pid="" ok=""
  dir=$(mktemp -d "${TMPDIR:-/tmp}/duplex-audio.XXXXXX")
  chmod 700 "$dir"
  mkdir -m 700 "$dir/pulse"
  # On any failure (set -e) or signal: stop what was started, remove the dir.
  trap '[ -n "$ok" ] || { stop_pids "$dir" $keep_pid $pa_pid; rm -rf -- "$dir"; }' EXIT
  trap 'exit 1' INT TERM HUP

  export XDG_RUNTIME_DIR="$dir" PULSE_SERVER="unix:$dir/pulse/native" PULSE_COOKIE="$dir/cookie"
  cat >"$dir/null.pa" <<EOF
load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0 socket=$dir/pulse/native
load-module module-null-sink sink_name=nullsink rate=48000 channels=2 sink_properties=device.description=NullSink
set-default-sink nullsink
set-default-source nullsink.monitor
EOF
  # setsid: own session, so the caller's Ctrl-C / hangup does not reach it; it
  # execs in place (we are not a group leader), so $! is the daemon's PID.
  # PULSE_STATE_PATH: the daemon would otherwise create ~/.config/pulse.
  PULSE_STATE_PATH="$dir/pa-state" setsid pulseaudio --daemonize=no -n -F "$dir/null.pa" --exit-idle-time=-1 \
    --use-pid-file=no --log-target="file:$dir/pulse.log" </dev/null >/dev/null 2>&1 &
  pa_pid=$!
  deadline=$((SECONDS + START_TIMEOUT))
  until "${T[@]}" pactl list short sinks 2>/dev/null | grep -q nullsink; do
    if ! alive "$pa_pid" || [ $SECONDS -ge $deadline ]; then
      log "pulseaudio did not come up; log:"; tail -20 "$dir/pulse.log" >&2 || true
      false
    fi
    sleep 0.1
  done
  setsid pacat --record -s "$PULSE_SERVER" -d nullsink.monitor --latency-msec=10 --raw \
    --client-name=duplex-keeper </dev/null >/dev/null 2>&1 &
  keep_pid=$!
  until lat=$(sink_latency_us) && [ -n "$lat" ] && [ "$lat" -lt 20000 ]; do
    if ! alive "$pa_pid" || ! alive "$keep_pid" \
       || [ $SECONDS -ge $deadline ]; then
      log "null sink never reached low latency (last: ${lat:-?} us); log:"
      tail -20 "$dir/pulse.log" >&2 || true
      false
    fi
    sleep 0.1
  done
  ok=1
  {
    printf 'export XDG_RUNTIME_DIR=%q\n' "$dir"
    printf 'export PULSE_SERVER=%q\n' "$PULSE_SERVER"
    printf 'export PULSE_COOKIE=%q\n' "$PULSE_COOKIE"
    printf 'export DUPLEX_AUDIO_DIR=%q\n' "$dir"
    printf 'export DUPLEX_AUDIO_PA_PID=%q\n' "$pa_pid"
    printf 'export DUPLEX_AUDIO_KEEPER_PID=%q\n' "$keep_pid"
  } | tee "$dir/state"
  log "ready: pid $pa_pid, keeper $keep_pid, dir $dir, sink latency ${lat} us"
}

cmd_stop() {
  local dir=${1:-${DUPLEX_AUDIO_DIR:-}}
  [ -n "$dir" ] || { log "stop: no dir (pass it, or set DUPLEX_AUDIO_DIR)"; return 1; }
  local pa_pid=${DUPLEX_AUDIO_PA_PID:-} keep_pid=${DUPLEX_AUDIO_KEEPER_PID:-}
  if [ -z "${1:-}" ] && [ -n "$pa_pid" ]; then :; elif [ -r "$dir/state" ]; then
    pa_pid=$(sed -n 's/^export DUPLEX_AUDIO_PA_PID=//p' "$dir/state")
    keep_pid=$(sed -n 's/^export DUPLEX_AUDIO_KEEPER_PID=//p' "$dir/state")
  fi
  stop_pids "$dir" "$keep_pid" "$pa_pid"
  case $dir in */duplex-audio.*) rm -rf -- "$dir" ;; *) log "not removing $dir" ;; esac
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  *) echo "usage: $0 install|start|stop [DIR]" >&2; exit 2 ;;
esac
