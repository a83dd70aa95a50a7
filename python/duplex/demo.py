"""The offline demo: a full spoken conversation with no network, no API key, no sound card.

The local Live API emulator plays the model; the virtual device plays the sound card. The
microphone is a WAV file with two questions, the second asked while the model is still
answering the first (a barge-in); an image is sent as video at 1 FPS. The model's audio is
written to a WAV file, and the transcript and the engine's stats are printed.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from . import pcm
from .talk import TalkOptions, TalkResult, print_summary, talk

QUESTIONS = (
    "Hello duplex. Can you hear me?",
    "Wait, tell me something else.",
)
SAMPLE_RATE_HZ = 22_050


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def _read_wav_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.to_float(pcm.downmix(data, w.getnchannels())), w.getframerate()


def synthetic_voice(seconds: float, rate: int = SAMPLE_RATE_HZ, seed: int = 0) -> np.ndarray:
    """A voice-like float signal (a gliding pulse train through formants, in syllables), for
    machines without espeak-ng."""
    t = np.arange(int(rate * seconds)) / rate
    pitch = 140 + 25 * np.sin(2 * np.pi * (0.6 + 0.1 * seed) * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    formants = 1 + 0.8 * np.sin(2 * np.pi * 700 * t) + 0.5 * np.sin(2 * np.pi * 1_200 * t)
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    x = voice * formants * syllables
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def speak(text: str, seed: int) -> tuple[np.ndarray, str]:
    """One utterance at SAMPLE_RATE_HZ, from espeak-ng when installed."""
    espeak = shutil.which("espeak-ng")
    if espeak:
        tmp = Path(subprocess.check_output(["mktemp", "--suffix=.wav"], text=True).strip())
        try:
            done = subprocess.run([espeak, "-s", "160", "-w", str(tmp), text], capture_output=True, timeout=30)
            if done.returncode == 0:
                audio, rate = _read_wav_mono(tmp)
                if rate != SAMPLE_RATE_HZ:
                    audio = pcm.resample(audio, rate, SAMPLE_RATE_HZ)
                return audio, "espeak-ng"
        finally:
            tmp.unlink(missing_ok=True)
    return synthetic_voice(1.6, seed=seed), "synthetic voice"


def make_microphone_wav(path: Path, barge_in_after_s: float = 1.3, tail_s: float = 5.0) -> str:
    """Writes the microphone: question 1, a short pause, question 2 (asked while the model
    answers question 1), then silence for the last answer. Returns the voice used."""
    first, voice = speak(QUESTIONS[0], 0)
    second, _ = speak(QUESTIONS[1], 1)
    gap = np.zeros(int(barge_in_after_s * SAMPLE_RATE_HZ), dtype=np.float32)
    lead = np.zeros(int(0.3 * SAMPLE_RATE_HZ), dtype=np.float32)
    tail = np.zeros(int(tail_s * SAMPLE_RATE_HZ), dtype=np.float32)
    mic = np.concatenate([lead, first, gap, second, tail])
    _write_wav(path, pcm.to_int16(mic), SAMPLE_RATE_HZ)
    return voice


def make_camera_image(path: Path) -> None:
    """A 1280x720 test card (so the 768 px fitting shows)."""
    import cv2

    img = np.zeros((720, 1280, 3), dtype=np.uint8)
    for i, color in enumerate([(255, 255, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0),
                               (255, 0, 255), (0, 0, 255), (255, 0, 0)]):
        img[:, i * 183 : (i + 1) * 183] = color
    cv2.putText(img, "duplex demo", (380, 380), cv2.FONT_HERSHEY_SIMPLEX, 3, (0, 0, 0), 8)
    cv2.imwrite(str(path), img)


async def run_demo(out_dir: Path, quiet: bool = False) -> TalkResult:
    """Makes the inputs in ``out_dir`` and runs the conversation; returns what it produced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mic = out_dir / "microphone.wav"
    image = out_dir / "camera.png"
    answer = out_dir / "speaker.wav"
    voice = make_microphone_wav(mic)
    make_camera_image(image)
    if not quiet:
        print(f"microphone  {mic} (two questions, {voice}; the second interrupts the answer)")
        print(f"camera      {image} (sent as 768x432 JPEG at 1 FPS)")
        print(f"speaker     {answer}")
        print()
    options = TalkOptions(input_wav=mic, output_wav=answer, video=str(image), emulator=True, quiet=quiet)
    result = await talk(options)
    if not quiet:
        print_summary(result)
        print(f"\nthe model's answer is in {answer}")
    return result
