"""The emulator's answer voice: espeak-ng speech at 24 kHz, or a synthetic voice-like signal.

espeak-ng writes 22050 Hz 16-bit WAV to stdout; it is resampled to the 24 kHz the Live
API sends (with the engine's resampler, :func:`duplex.pcm.resample_int16`). Without espeak-ng the answer is a clearly
synthetic signal with speech-like structure (a 120 Hz pulse train shaped by two formant
resonances, with syllable-rate amplitude modulation), the length a speaker would need
for the text.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
from dataclasses import dataclass

import numpy as np

from ..pcm import downmix, resample_int16

__all__ = ["OUTPUT_RATE_HZ", "SpokenText", "Voice", "VoiceError", "parse_wav", "resample_int16", "synthetic_voice"]

OUTPUT_RATE_HZ = 24_000


class VoiceError(RuntimeError):
    """espeak-ng failed or produced something that is not 16-bit mono PCM WAV."""


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Reads 16-bit PCM WAV bytes into ``(int16 mono samples, rate)``.

    Tolerates the streaming header espeak-ng writes to stdout (sizes set to 0x7FFFFFFF or
    similar): the data chunk is read to the end of the buffer.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise VoiceError("not a RIFF/WAVE stream")
    pos, rate, channels, bits = 12, None, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            fmt, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt not in (1, 0xFFFE) or bits != 16:
                raise VoiceError(f"unsupported WAV format {fmt} with {bits} bits")
        elif cid == b"data":
            if rate is None or channels is None:
                raise VoiceError("WAV data chunk before fmt chunk")
            end = min(len(data), body + size)
            pcm = np.frombuffer(data[body : end - (end - body) % (2 * channels)], dtype="<i2")
            return downmix(pcm, channels).astype(np.int16), rate
        pos = body + size + (size & 1)
    raise VoiceError("WAV without data chunk")


@dataclass(frozen=True)
class SpokenText:
    """Synthesised speech for a text.

    Attributes:
        text: what is said.
        pcm: int16 mono samples at :data:`OUTPUT_RATE_HZ`.
        engine: ``"espeak-ng"`` or ``"synthetic"``.
    """

    text: str
    pcm: np.ndarray
    engine: str

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.pcm.size / OUTPUT_RATE_HZ


class Voice:
    """Speaks answer texts.

    Args:
        use_espeak: use espeak-ng when it is installed (``False`` forces the synthetic voice).
        espeak_voice: espeak-ng voice name (``-v``).
        words_per_minute: speaking rate (``-s``).
        amplitude: espeak-ng amplitude 0..200 (``-a``).
    """

    def __init__(self, *, use_espeak: bool = True, espeak_voice: str = "en-us",
                 words_per_minute: int = 175, amplitude: int = 100) -> None:
        self.espeak_path: str | None = shutil.which("espeak-ng") if use_espeak else None
        self.espeak_voice = espeak_voice
        self.words_per_minute = words_per_minute
        self.amplitude = amplitude
        self._cached = functools.lru_cache(maxsize=64)(self._synthesize)

    @property
    def engine(self) -> str:
        """``"espeak-ng"`` when speech is synthesised by espeak-ng, else ``"synthetic"``."""
        return "espeak-ng" if self.espeak_path else "synthetic"

    def speak(self, text: str) -> SpokenText:
        """Synthesises ``text`` (cached). Blocking: run it off the event loop."""
        return self._cached(text)

    def _synthesize(self, text: str) -> SpokenText:
        if self.espeak_path:
            cmd = [self.espeak_path, "--stdout", "-v", self.espeak_voice, "-s", str(self.words_per_minute),
                   "-a", str(self.amplitude), "--", text]
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=20, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise VoiceError(f"espeak-ng failed to run: {exc}") from exc
            if proc.returncode != 0:
                detail = proc.stderr.decode(errors="replace")[:200]
                raise VoiceError(f"espeak-ng exited with {proc.returncode}: {detail}")
            pcm, rate = parse_wav(proc.stdout)
            pcm = _trim_silence(pcm)
            return SpokenText(text, resample_int16(pcm, rate, OUTPUT_RATE_HZ), "espeak-ng")
        return SpokenText(text, synthetic_voice(text, self.words_per_minute), "synthetic")


def _trim_silence(pcm: np.ndarray, threshold: int = 64) -> np.ndarray:
    """Drops leading and trailing near-silence (espeak-ng pads its output)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if loud.size == 0:
        return pcm
    return pcm[max(0, loud[0] - 80) : loud[-1] + 400]


def synthetic_voice(text: str, words_per_minute: int = 175, rate_hz: int = OUTPUT_RATE_HZ) -> np.ndarray:
    """A speech-like but obviously synthetic signal as long as speaking ``text`` would take.

    A 120 Hz glottal pulse train (pitch gliding ±15 %) through two formant resonators
    (~700 Hz and ~1200 Hz), gated by a 4 Hz syllable envelope with pauses between words.
    """
    words = max(1, len(text.split()))
    duration = max(0.4, words * 60.0 / words_per_minute)
    n = int(duration * rate_hz)
    t = np.arange(n) / rate_hz
    f0 = 120.0 * (1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * t))
    phase = np.cumsum(f0 / rate_hz)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    signal = pulses
    k = np.arange(1024)
    for freq, bw in ((700.0, 130.0), (1200.0, 170.0)):
        # Impulse response of a two-pole resonator, applied by convolution.
        r, w = np.exp(-np.pi * bw / rate_hz), 2 * np.pi * freq / rate_hz
        h = r**k * np.sin(w * (k + 1)) / np.sin(w)
        signal = np.convolve(signal, h)[:n]
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t)
    word_len = duration / words
    gaps = ((t % word_len) < word_len * 0.85).astype(np.float64)
    signal = signal * syllables * gaps
    peak = np.max(np.abs(signal)) or 1.0
    return np.round(signal / peak * 0.3 * 32767).astype(np.int16)
