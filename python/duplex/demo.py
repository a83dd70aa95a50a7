"""The offline round-trip demo: a spoken WAV through the virtual device and back.

1. Makes a spoken input WAV (espeak-ng when installed, else a voice-like synthetic signal).
2. Runs an :class:`~duplex.AudioEngine` on a :class:`~duplex.VirtualDevice` at real-time
   pace: the WAV is the microphone, the speaker is written to a WAV file.
3. Reads 20 ms chunks of 16 kHz PCM (what a Live session would send) and saves them.
4. Plays the captured speech back as the "model's answer" at 24 kHz, barges in halfway
   (``interrupt()``), then plays a short second answer to the end.
5. Prints what was heard and the engine's stats.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _engine
from .devices import VirtualDevice
from .engine import AudioEngine, InterruptReport, Stats

SPOKEN_TEXT = "Hello from duplex. This sentence goes through the virtual microphone and comes back."


def keep_listening(engine: AudioEngine, seconds: float) -> int:
    """Reads (and here drops) mic chunks for `seconds`, as a live session keeps streaming
    the microphone while the model talks. Returns the chunks read."""
    deadline = time.monotonic() + seconds
    count = 0
    while (left := deadline - time.monotonic()) > 0:
        if engine.read(timeout=min(left, 0.1)) is not None:
            count += 1
    return count


@dataclass
class DemoResult:
    """What the demo produced."""

    input_wav: Path
    captured_wav: Path
    output_wav: Path
    captured_seconds: float
    interrupt: InterruptReport
    stats: Stats


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    """Writes mono int16 PCM."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def synthetic_voice(rate: int = 16_000, seconds: float = 2.5) -> np.ndarray:
    """A voice-like signal: a gliding 120-180 Hz pulse train through two formants, in
    syllable-length bursts. Used when espeak-ng is not installed."""
    t = np.arange(int(rate * seconds)) / rate
    pitch = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 25))
    formants = 1 + 0.8 * np.sin(2 * np.pi * 700 * t) + 0.5 * np.sin(2 * np.pi * 1_200 * t)
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    x = voice * formants * syllables
    return (0.3 * x / np.max(np.abs(x)) * 32767).astype(np.int16)


def make_input_wav(path: Path) -> str:
    """Writes the spoken input; returns a description of where it came from."""
    espeak = shutil.which("espeak-ng")
    if espeak:
        result = subprocess.run(
            [espeak, "-s", "165", "-w", str(path), SPOKEN_TEXT],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if result.returncode == 0 and path.exists():
            return f"espeak-ng: {SPOKEN_TEXT!r}"
    write_wav(path, synthetic_voice(), 16_000)
    return "synthetic voice-like signal (install espeak-ng for real speech)"


def run_demo(out_dir: Path, device_rate: int = 48_000, quiet: bool = False) -> DemoResult:
    """Runs the round trip and returns what it measured. Takes about as long as the speech."""
    say = (lambda *a: None) if quiet else print
    out_dir.mkdir(parents=True, exist_ok=True)
    input_wav = out_dir / "input.wav"
    captured_wav = out_dir / "captured_16k.wav"
    output_wav = out_dir / f"speaker_{device_rate // 1000}k.wav"
    source = make_input_wav(input_wav)
    say(f"input       {input_wav} ({source})")

    device = VirtualDevice(sample_rate=device_rate, channels=2, input=input_wav, output=output_wav)
    with AudioEngine(backend=device, prebuffer_ms=120) as engine:
        # Capture: 20 ms chunks of 16 kHz PCM until the microphone (the WAV) runs out.
        chunks: list[bytes] = []
        while True:
            chunk = engine.read(timeout=1.0)
            if chunk is not None:
                chunks.append(chunk)
            if engine.stats().input_ended and engine.stats().capture_buffered_ms < 20:
                break
        captured = np.frombuffer(b"".join(chunks), dtype="<i2")
        write_wav(captured_wav, captured, 16_000)
        say(f"captured    {captured_wav}: {len(chunks)} chunks of 20 ms = {len(captured) / 16_000:.2f} s")

        # The "model" answers with what it heard, at 24 kHz, in 40 ms chunks as the service
        # sends them; the user barges in halfway through.
        answer = _engine.resample(captured.astype(np.float32) / 32768.0, 16_000, 24_000)
        answer_pcm = (np.clip(answer, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(answer_pcm), 960):
            engine.play(answer_pcm[start : start + 960])
        engine.end_turn()
        keep_listening(engine, len(answer_pcm) / 24_000 / 2)
        report = engine.interrupt()
        say(
            f"barge-in    heard {report.heard_ms:.0f} ms of a {report.received_ms:.0f} ms answer, "
            f"dropped {report.discarded_ms:.0f} ms"
        )

        # A short second answer plays to the end.
        second = answer_pcm[: 24_000 // 2]
        engine.play(second)
        engine.end_turn()
        keep_listening(engine, len(second) / 24_000 + 0.3)
        stats = engine.stats()
    say(f"speaker     {output_wav} ({device_rate} Hz stereo, as the device played it)")
    say("")
    say(stats.summary())
    return DemoResult(
        input_wav=input_wav,
        captured_wav=captured_wav,
        output_wav=output_wav,
        captured_seconds=len(captured) / 16_000,
        interrupt=report,
        stats=stats,
    )
