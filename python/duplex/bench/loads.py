"""Background loads that keep the interpreter busy the way a real Live client does.

Each load is a thread with ``start()`` / ``stop()``; it measures its own CPU time
(``time.thread_time``) so the harness can subtract it from the process's CPU, and it
reports what it really did (``summary()``: burst lengths, messages decoded, frames
encoded, collector pauses), because calibration on a noisy machine is approximate.

* :class:`CGilLoad`: a C call that never releases the GIL (``sum(range(n))``), ``hold_ms``
  out of every ``every_ms``. The worst case for any Python audio thread.
* :class:`PyLoopLoad`: a pure-Python busy loop, ``busy_ms`` out of every ``every_ms``; the
  interpreter hands the GIL over every ``sys.getswitchinterval()`` (5 ms).
* :class:`ServerMessageLoad`: Live API server messages (JSON with base64 24 kHz audio,
  40-240 ms each) decoded at 25 per second, through google-genai's pydantic model when
  that is installed (as the SDK does), else ``json`` + ``base64``.
* :class:`JpegLoad`: 768x768 frames colour-converted, JPEG-encoded with OpenCV and
  base64-encoded, at a given frame rate.
* :class:`GcLoad`: allocation of small objects with reference cycles over a large live
  heap, with the cyclic collector enabled: full collections stop the world.
"""

from __future__ import annotations

import base64
import gc
import json
import threading
import time
from collections import deque
from typing import Any

import numpy as np

__all__ = [
    "Load",
    "CGilLoad",
    "PyLoopLoad",
    "ServerMessageLoad",
    "JpegLoad",
    "GcLoad",
    "calibrate_sum_range",
]

_SUM_RANGE_NS: float | None = None


def calibrate_sum_range(force: bool = False) -> float:
    """Nanoseconds per element of ``sum(range(n))`` on this machine (best of 5, idle)."""
    global _SUM_RANGE_NS
    if _SUM_RANGE_NS is None or force:
        n = 500_000
        best = min(_timed(lambda: sum(range(n))) for _ in range(5))
        _SUM_RANGE_NS = best * 1e9 / n
    return _SUM_RANGE_NS


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


class Load:
    """Base class: a daemon thread running :meth:`body` until :meth:`stop`."""

    #: Scenario-independent name of the load.
    name: str = "load"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_s: float = 0.0

    def prepare(self) -> None:
        """Work done before the measurement starts (building data); default none."""

    def start(self) -> "Load":
        """Starts the thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"load-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            self.body()
        finally:
            self.cpu_s = time.thread_time() - cpu0

    def body(self) -> None:
        """The load itself; must return soon after ``self._stop`` is set."""

    def stop(self) -> None:
        """Stops the thread and waits for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def cleanup(self) -> None:
        """Frees what :meth:`prepare` built, after the measurement; default nothing."""

    def summary(self) -> dict[str, Any]:
        """What the load actually did."""
        return {"cpu_s": round(self.cpu_s, 4)}

    def _pace(self, started: float, every_s: float) -> None:
        rest = every_s - (time.perf_counter() - started)
        if rest > 0:
            self._stop.wait(rest)


class CGilLoad(Load):
    """``sum(range(n))`` lasting ``hold_ms``, once every ``every_ms`` (GIL never released).

    ``n`` starts from :func:`calibrate_sum_range` and is corrected after every burst
    towards the requested length, because a calibration on an idle interpreter runs faster
    than the same call among busy threads on a loaded machine.
    """

    def __init__(self, hold_ms: float, every_ms: float = 100.0) -> None:
        super().__init__()
        self.name: str = f"cgil{int(hold_ms)}"
        self.hold_ms = hold_ms
        self.every_ms = every_ms
        self.n: int = 0
        self.bursts_ms: list[float] = []

    def prepare(self) -> None:
        """Calibrates ``n`` for the requested hold time."""
        self.n = max(1, int(self.hold_ms * 1e6 / calibrate_sum_range()))

    def body(self) -> None:
        """Holds the GIL in one C call, then sleeps the rest of the cycle."""
        if not self.n:
            self.prepare()
        while not self._stop.is_set():
            t = time.perf_counter()
            sum(range(self.n))
            took_ms = (time.perf_counter() - t) * 1e3
            self.bursts_ms.append(took_ms)
            # Move halfway (geometrically) towards the n that would have hit the target.
            correction = min(2.0, max(0.5, self.hold_ms / max(took_ms, 1e-3)))
            self.n = max(1, int(self.n * correction**0.5))
            self._pace(t, self.every_ms / 1e3)

    def summary(self) -> dict[str, Any]:
        """Requested and measured burst lengths."""
        return {
            **super().summary(),
            "hold_ms": self.hold_ms,
            "every_ms": self.every_ms,
            "bursts": len(self.bursts_ms),
            "burst_p50_ms": round(_pct(self.bursts_ms, 50), 1),
            "burst_max_ms": round(max(self.bursts_ms, default=0.0), 1),
        }


class PyLoopLoad(Load):
    """A pure-Python busy loop, ``busy_ms`` of every ``every_ms`` (the GIL switches every 5 ms)."""

    def __init__(self, busy_ms: float = 50.0, every_ms: float = 100.0) -> None:
        super().__init__()
        self.name: str = f"pyloop{int(busy_ms)}"
        self.busy_ms = busy_ms
        self.every_ms = every_ms
        self.iterations: int = 0

    def body(self) -> None:
        """Spins in bytecode, then sleeps the rest of the cycle."""
        while not self._stop.is_set():
            t = time.perf_counter()
            end = t + self.busy_ms / 1e3
            x = 0
            while time.perf_counter() < end:
                x += 1
            self.iterations += x
            self._pace(t, self.every_ms / 1e3)

    def summary(self) -> dict[str, Any]:
        """Requested duty cycle."""
        return {**super().summary(), "busy_ms": self.busy_ms, "every_ms": self.every_ms}


class ServerMessageLoad(Load):
    """Decodes Live API audio messages (JSON + base64, 40-240 ms of 24 kHz) at ``rate_hz``."""

    name = "server_messages"

    def __init__(self, rate_hz: float = 25.0, seed: int = 7) -> None:
        super().__init__()
        self.rate_hz = rate_hz
        self.seed = seed
        self.messages: list[str] = []
        self.decoded: int = 0
        self.decoded_bytes: int = 0
        self.decode_ms: list[float] = []
        self.via: str = "json+base64"
        self._model: Any = None

    def prepare(self) -> None:
        """Builds the messages (as the service sends them) and picks the decoder."""
        rng = np.random.default_rng(self.seed)
        for _ in range(64):
            ms = int(rng.integers(2, 13)) * 20  # 40..240 ms
            pcm = (rng.standard_normal(24 * ms) * 3000).astype("<i2").tobytes()
            part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()}}
            self.messages.append(json.dumps({"serverContent": {"modelTurn": {"parts": [part]}}}))
        try:
            from google.genai import types

            self._model = types.LiveServerMessage
            self.via = "json + google-genai LiveServerMessage (pydantic, base64)"
        except Exception:  # noqa: BLE001 - any import problem means: no SDK
            self._model = None

    def _decode(self, text: str) -> bytes:
        raw = json.loads(text)
        if self._model is not None:
            msg = self._model.model_validate(raw)
            return msg.server_content.model_turn.parts[0].inline_data.data
        return base64.b64decode(raw["serverContent"]["modelTurn"]["parts"][0]["inlineData"]["data"])

    def body(self) -> None:
        """Decodes one message every ``1 / rate_hz`` seconds."""
        if not self.messages:
            self.prepare()
        i = 0
        while not self._stop.is_set():
            t = time.perf_counter()
            self.decoded_bytes += len(self._decode(self.messages[i % len(self.messages)]))
            self.decode_ms.append((time.perf_counter() - t) * 1e3)
            self.decoded += 1
            i += 1
            self._pace(t, 1.0 / self.rate_hz)

    def summary(self) -> dict[str, Any]:
        """Messages decoded and how long each took."""
        return {
            **super().summary(),
            "via": self.via,
            "rate_hz": self.rate_hz,
            "messages": self.decoded,
            "audio_bytes": self.decoded_bytes,
            "decode_p50_ms": round(_pct(self.decode_ms, 50), 3),
            "decode_max_ms": round(max(self.decode_ms, default=0.0), 3),
        }


class JpegLoad(Load):
    """OpenCV: BGR to RGB, JPEG-encode a 768x768 frame, base64 it; ``fps`` times a second."""

    def __init__(self, fps: float, size: int = 768, quality: int = 85, seed: int = 3) -> None:
        super().__init__()
        self.name: str = f"jpeg{fps:g}fps"
        self.fps = fps
        self.size = size
        self.quality = quality
        self.seed = seed
        self.frames: list[np.ndarray] = []
        self.encoded: int = 0
        self.encode_ms: list[float] = []
        self._cv_threads: int | None = None

    def prepare(self) -> None:
        """Makes a few camera-like frames (gradients plus sensor noise) and keeps OpenCV on
        this thread (``cv2.setNumThreads(1)``) so the load's CPU time is all in its thread."""
        import cv2

        self._cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        rng = np.random.default_rng(self.seed)
        ramp = np.linspace(0, 200, self.size, dtype=np.float32)
        for k in range(4):
            base = np.stack([ramp[:, None] + 0 * ramp[None, :], ramp[None, :] + 0 * ramp[:, None],
                             np.full((self.size, self.size), 60.0 + 30 * k, np.float32)], axis=-1)
            noise = rng.normal(0, 12, base.shape).astype(np.float32)
            self.frames.append(np.clip(base + noise, 0, 255).astype(np.uint8))

    def body(self) -> None:
        """Encodes one frame every ``1 / fps`` seconds."""
        import cv2

        if not self.frames:
            self.prepare()
        params = [int(cv2.IMWRITE_JPEG_QUALITY), self.quality]
        while not self._stop.is_set():
            t = time.perf_counter()
            rgb = cv2.cvtColor(self.frames[self.encoded % len(self.frames)], cv2.COLOR_BGR2RGB)
            ok, jpeg = cv2.imencode(".jpg", rgb, params)
            if ok:
                base64.b64encode(jpeg.tobytes())
            self.encode_ms.append((time.perf_counter() - t) * 1e3)
            self.encoded += 1
            self._pace(t, 1.0 / self.fps)

    def cleanup(self) -> None:
        """Restores OpenCV's thread count."""
        if self._cv_threads is not None:
            import cv2

            cv2.setNumThreads(self._cv_threads)

    def summary(self) -> dict[str, Any]:
        """Frames encoded and how long each took."""
        return {
            **super().summary(),
            "fps": self.fps,
            "size": self.size,
            "frames": self.encoded,
            "encode_p50_ms": round(_pct(self.encode_ms, 50), 2),
            "encode_max_ms": round(max(self.encode_ms, default=0.0), 2),
        }


class GcLoad(Load):
    """Allocates cyclic garbage over a large live heap with ``gc`` enabled.

    ``live_pairs`` list/dict cycles stay reachable in a rolling window (so objects survive
    into the oldest generation and full collections have a big heap to traverse); every
    ``tick_ms`` the thread allocates ``per_tick`` new cycles, pushing old ones out as
    garbage. The collector's pauses are measured with ``gc.callbacks``.
    """

    name = "gc"

    def __init__(self, live_pairs: int = 200_000, per_tick: int = 1_000, tick_ms: float = 5.0) -> None:
        super().__init__()
        self.live_pairs = live_pairs
        self.per_tick = per_tick
        self.tick_ms = tick_ms
        self._live: deque[list[Any]] = deque(maxlen=live_pairs)
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._gc_t = 0.0
        self._was_enabled = True

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._gc_t) * 1e3)

    def _alloc(self, count: int, tag: int) -> None:
        live = self._live
        for i in range(count):
            d: dict[str, Any] = {"i": i, "tag": tag}
            pair = [d]
            d["up"] = pair
            live.append(pair)

    def prepare(self) -> None:
        """Builds the live heap and turns the collector on."""
        self._was_enabled = gc.isenabled()
        gc.enable()
        self._alloc(self.live_pairs, -1)

    def start(self) -> "GcLoad":
        """Starts measuring collector pauses, then the thread."""
        gc.callbacks.append(self._callback)
        super().start()
        return self

    def body(self) -> None:
        """Allocates ``per_tick`` cycles every ``tick_ms``."""
        tag = 0
        while not self._stop.is_set():
            t = time.perf_counter()
            self._alloc(self.per_tick, tag)
            tag += 1
            self._pace(t, self.tick_ms / 1e3)

    def stop(self) -> None:
        """Stops the thread and the pause measurement."""
        super().stop()
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def cleanup(self) -> None:
        """Frees the heap and restores the collector's state."""
        self._live.clear()
        gc.collect()
        if not self._was_enabled:
            gc.disable()

    def summary(self) -> dict[str, Any]:
        """Collections per generation and the longest full-collection pause."""
        full = self.pauses[2]
        return {
            **super().summary(),
            "live_pairs": self.live_pairs,
            "collections": {str(g): len(p) for g, p in self.pauses.items()},
            "full_gc_p50_ms": round(_pct(full, 50), 1),
            "full_gc_max_ms": round(max(full, default=0.0), 1),
        }
