"""The host streams :mod:`duplex.bench.host_flush` plays through, reached with ``ctypes`` (the
runtime libraries a sound server installs; no -dev package, no compiler): an ALSA PCM on
``default`` (the pulse plugin, as cpal opens it) and a libpulse playback stream. Both are
mono s16 at :data:`RATE`, count their write position in stream frames (``pos``), and say what
they know just before an interrupt (``at_interrupt``).
"""

from __future__ import annotations

import ctypes
import time
from ctypes import byref, c_int, c_int64, c_long, c_size_t, c_uint8, c_uint32, c_uint64, c_ulong, c_void_p
from typing import Any, Callable

import numpy as np

RATE = 48_000
GUARD_MS = 3.0  # pulse-rewrite: time the write needs to reach the server before the sink reads on


def _write_all(x: np.ndarray, what: str, write_some: Callable[[np.ndarray], int]) -> None:
    """Writes the int16 frames ``x`` through ``write_some(rest)`` (frames it took, 0 after
    it waited for room), giving up with OSError when the writes make no progress: a PCM the
    plugin left in a bad state can fail every write at once, and a take must never spin."""
    x = np.ascontiguousarray(x, dtype="<i2")
    done = 0
    deadline = time.monotonic() + len(x) / RATE + 2.0
    while done < len(x):
        if time.monotonic() > deadline:
            raise OSError(f"{what}: no progress ({done} of {len(x)} frames)")
        done += write_some(x[done:])


# -- ALSA (the pulse plugin, as cpal opens it) ---------------------------------------------


class _Alsa:
    """A blocking ALSA playback PCM: mono s16, 48 kHz, ``latency_ms`` of device buffer."""

    def __init__(self, device: str, latency_ms: float) -> None:
        lib = self.lib = ctypes.CDLL("libasound.so.2")
        for name in ("snd_pcm_writei", "snd_pcm_rewindable", "snd_pcm_rewind", "snd_pcm_forwardable"):
            getattr(lib, name).restype = c_long
        lib.snd_pcm_writei.argtypes = [c_void_p, c_void_p, c_ulong]
        lib.snd_pcm_rewind.argtypes = [c_void_p, c_ulong]
        lib.snd_pcm_rewindable.argtypes = [c_void_p]
        self.pcm = c_void_p()
        # Non-blocking (SND_PCM_NONBLOCK): after drop + prepare a blocking snd_pcm_writei on
        # the pulse plugin was seen to spin inside the plugin (in pa_stream_writable_size)
        # and never return; here a stuck PCM ends the take at the write deadline instead.
        rc = lib.snd_pcm_open(byref(self.pcm), device.encode(), 0, 1)
        if rc < 0:
            raise OSError(f"snd_pcm_open({device}): {rc}")
        # S16_LE = 2, RW_INTERLEAVED = 3; alsa-lib picks periods of a quarter of the buffer.
        rc = lib.snd_pcm_set_params(self.pcm, 2, 3, 1, RATE, 1, int(latency_ms * 1000))
        if rc < 0:
            raise OSError(f"snd_pcm_set_params: {rc}")
        buf, per = c_ulong(), c_ulong()
        lib.snd_pcm_get_params(self.pcm, byref(buf), byref(per))
        self.buffer_frames, self.period_frames = int(buf.value), int(per.value)
        self.pos = 0  # frames written (less what a rewind or drop took back)

    def write(self, x: np.ndarray) -> None:
        """Writes all of ``x``, waiting while the device buffer is full."""
        _write_all(x, "snd_pcm_writei", self._write_some)
        self.pos += len(x)

    def _write_some(self, rest: np.ndarray) -> int:
        n = self.lib.snd_pcm_writei(self.pcm, rest.ctypes.data, len(rest))
        if n == -11:  # EAGAIN: the buffer is full; the device takes a period at a time
            time.sleep(min(0.002, self.period_frames / RATE / 4))
            return 0
        if n < 0:
            if self.lib.snd_pcm_recover(self.pcm, int(n), 1) < 0:
                raise OSError(f"snd_pcm_writei: {n}")
            time.sleep(0.001)
            return 0
        return int(n)

    def at_interrupt(self) -> dict[str, Any]:
        """What the device buffer holds and what ALSA could rewind, read before the interrupt."""
        return {"queued_at_interrupt_frames": self.delay(), "rewindable_frames": self.rewindable()}

    def delay(self) -> int:
        d = c_long()
        self.lib.snd_pcm_delay(self.pcm, byref(d))
        return int(d.value)

    def rewindable(self) -> int:
        return int(self.lib.snd_pcm_rewindable(self.pcm))

    def rewind(self, n: int) -> int:
        return int(self.lib.snd_pcm_rewind(self.pcm, max(0, n)))

    def drop_prepare(self) -> None:
        self.lib.snd_pcm_drop(self.pcm)
        self.lib.snd_pcm_prepare(self.pcm)

    def close(self) -> None:
        time.sleep(max(0, self.delay()) / RATE + 0.05)  # let it play out (no blocking drain)
        self.lib.snd_pcm_close(self.pcm)


# -- PulseAudio's own protocol (libpulse) ----------------------------------------------------


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", c_int), ("rate", c_uint32), ("channels", c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(n, c_uint32) for n in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


class _Timing(ctypes.Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long), ("synchronized_clocks", c_int),
                ("sink_usec", c_uint64), ("source_usec", c_uint64), ("transport_usec", c_uint64),
                ("playing", c_int), ("write_index_corrupt", c_int), ("write_index", c_int64),
                ("read_index_corrupt", c_int), ("read_index", c_int64)]


class _Pulse:
    """A libpulse playback stream (threaded main loop), mono s16 48 kHz, whose server-side
    queue holds ``latency_ms``; writes are positioned in stream frames."""

    SEEK_RELATIVE, SEEK_ABSOLUTE = 0, 1

    def __init__(self, latency_ms: float) -> None:
        lib = self.lib = ctypes.CDLL("libpulse.so.0")
        for name in ("pa_threaded_mainloop_new", "pa_threaded_mainloop_get_api", "pa_context_new",
                     "pa_stream_new", "pa_stream_flush", "pa_stream_update_timing_info",
                     "pa_stream_get_timing_info"):
            getattr(lib, name).restype = c_void_p
        lib.pa_stream_writable_size.restype = c_size_t
        for name in ("pa_threaded_mainloop_start", "pa_threaded_mainloop_lock", "pa_threaded_mainloop_unlock"):
            getattr(lib, name).argtypes = [c_void_p]
        lib.pa_threaded_mainloop_get_api.argtypes = [c_void_p]
        lib.pa_context_new.argtypes = [c_void_p, ctypes.c_char_p]
        lib.pa_context_connect.argtypes = [c_void_p, ctypes.c_char_p, c_int, c_void_p]
        lib.pa_context_get_state.argtypes = [c_void_p]
        lib.pa_stream_new.argtypes = [c_void_p, ctypes.c_char_p, c_void_p, c_void_p]
        lib.pa_stream_connect_playback.argtypes = [c_void_p, c_void_p, c_void_p, c_int, c_void_p, c_void_p]
        lib.pa_stream_get_state.argtypes = [c_void_p]
        lib.pa_stream_writable_size.argtypes = [c_void_p]
        lib.pa_stream_write.argtypes = [c_void_p, c_void_p, c_size_t, c_void_p, c_int64, c_int]
        lib.pa_stream_flush.argtypes = [c_void_p, c_void_p, c_void_p]
        lib.pa_stream_update_timing_info.argtypes = [c_void_p, c_void_p, c_void_p]
        lib.pa_stream_get_timing_info.argtypes = [c_void_p]
        lib.pa_operation_get_state.argtypes = [c_void_p]
        lib.pa_operation_unref.argtypes = [c_void_p]
        lib.pa_stream_disconnect.argtypes = [c_void_p]
        self.ml = lib.pa_threaded_mainloop_new()
        self.ctx = lib.pa_context_new(lib.pa_threaded_mainloop_get_api(self.ml), b"duplex-host-flush")
        lib.pa_context_connect(self.ctx, None, 0, None)
        lib.pa_threaded_mainloop_start(self.ml)
        self._wait_state(lambda: lib.pa_context_get_state(self.ctx), ready=4, failed=5)  # READY, FAILED
        spec = _SampleSpec(3, RATE, 1)  # S16LE
        tl = int(RATE * latency_ms / 1000) * 2
        self.buffer_frames = tl // 2
        self.period_frames = tl // 8  # minreq: the server asks for a quarter at a time
        attr = _BufferAttr(0xFFFFFFFF, tl, 0xFFFFFFFF, tl // 4, 0xFFFFFFFF)
        with self._locked():
            self.s = lib.pa_stream_new(self.ctx, b"duplex-host-flush", byref(spec), None)
            # INTERPOLATE_TIMING | AUTO_TIMING_UPDATE
            lib.pa_stream_connect_playback(self.s, None, byref(attr), 0x0002 | 0x0008, None, None)
        self._wait_state(lambda: lib.pa_stream_get_state(self.s), ready=2, failed=3)
        self.pos = 0  # write index, frames

    def _locked(self) -> Any:
        lib, ml = self.lib, self.ml

        class _L:
            def __enter__(self_) -> None:
                lib.pa_threaded_mainloop_lock(ml)

            def __exit__(self_, *a: Any) -> None:
                lib.pa_threaded_mainloop_unlock(ml)

        return _L()

    def _wait_state(self, get: Callable[[], int], ready: int, failed: int) -> None:
        deadline = time.monotonic() + 5
        while True:
            with self._locked():
                st = get()
            if st == ready:
                return
            if st >= failed or time.monotonic() > deadline:
                raise OSError(f"libpulse: state {st}")
            time.sleep(0.001)

    def _run_op(self, op: int) -> None:
        # called with the lock held; PA_OPERATION_RUNNING = 0
        while self.lib.pa_operation_get_state(op) == 0:
            self.lib.pa_threaded_mainloop_unlock(self.ml)
            time.sleep(0.0001)
            self.lib.pa_threaded_mainloop_lock(self.ml)
        self.lib.pa_operation_unref(op)

    def write(self, x: np.ndarray) -> None:
        """Appends, as fast as the server's queue takes it (blocks while it is full)."""
        _write_all(x, "pa_stream_write", self._write_some)

    def _write_some(self, rest: np.ndarray) -> int:
        with self._locked():
            n = max(0, min(int(self.lib.pa_stream_writable_size(self.s)) // 2, len(rest)))
            if n > 0:
                self.lib.pa_stream_write(self.s, rest.ctypes.data, n * 2, None, 0, self.SEEK_RELATIVE)
        self.pos += n
        if n < len(rest):
            time.sleep(0.002)
        return n

    def at_interrupt(self) -> dict[str, Any]:
        """Nothing to read before the interrupt (the take-back asks the server itself)."""
        return {}

    def flush(self) -> None:
        with self._locked():
            self._run_op(self.lib.pa_stream_flush(self.s, None, None))

    def rewrite(self, margin_frames: int, data_at: Callable[[int], np.ndarray]) -> dict[str, int]:
        """Overwrites the server's queue from its read index + the sink's fill + margin with
        ``data_at(x)``."""
        guard = int(RATE * GUARD_MS / 1000)
        with self._locked():
            for _ in range(3):
                self._run_op(self.lib.pa_stream_update_timing_info(self.s, None, None))
                ti = _Timing.from_address(self.lib.pa_stream_get_timing_info(self.s))
                r = int(ti.read_index) // 2
                # Audio the sink already took (its fill, sink_usec) plays anyway. The sink
                # takes the next block from the queue when that fill runs out, and the read
                # index jumps by a block: a write that arrives after that jump and starts
                # before it loses the start of its fade (a step, not a fade). So when the
                # jump is due within GUARD_MS, wait for it and ask again.
                sink_frames = int(ti.sink_usec) * RATE // 1_000_000
                if sink_frames >= guard:
                    break
                self.lib.pa_threaded_mainloop_unlock(self.ml)
                time.sleep(sink_frames / RATE + 0.001)
                self.lib.pa_threaded_mainloop_lock(self.ml)
            x = r + sink_frames + margin_frames
            y = np.ascontiguousarray(data_at(x), dtype="<i2")
            self.lib.pa_stream_write(self.s, y.ctypes.data, len(y) * 2, None, x * 2, self.SEEK_ABSOLUTE)
        old = self.pos
        self.pos = x + len(y)
        return {"read_index": r, "sink_latency_frames": sink_frames, "rewrite_at": x, "taken_back": old - x}

    def close(self) -> None:
        time.sleep(self.buffer_frames / RATE + 0.05)
        with self._locked():
            self.lib.pa_stream_disconnect(self.s)
        self.lib.pa_threaded_mainloop_stop(ctypes.c_void_p(self.ml))
