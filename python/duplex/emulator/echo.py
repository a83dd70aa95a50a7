"""Which of the emulator's ``interrupted`` were caused by the model's own voice coming back.

The emulator's voice activity detector takes any energy for speech, exactly like the
service's does on a laptop without headphones: when the client's microphone hears the
speaker, the model's answer comes back as "user speech" and the model cuts itself off.
The emulator knows what it sent (each :class:`~duplex.emulator.records.Answer` keeps its
audio), so for each barge-in it compares the user audio that triggered it with the answer
audio sent before it: a strong match at some delay is an echo, a self-interruption.

>>> from duplex.emulator.echo import self_interruptions
>>> self_interruptions(emulator.sessions[-1])          # doctest: +SKIP
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import Session

INPUT_RATE_HZ = 16_000
OUTPUT_RATE_HZ = 24_000


@dataclass(frozen=True)
class BargeIn:
    """One ``interrupted`` the emulator sent, and whether it was the model's own echo.

    Attributes:
        time: when ``interrupted`` was sent.
        turn_index: the answer that was cut.
        cause: what triggered it (``"vad"``, ``"activityStart"``, ...).
        similarity: peak normalised cross-correlation (0..1) of the triggering user audio
            with the answer audio sent before it, at the best alignment.
        echo: True when the user audio was the model's own voice (``similarity`` at or
            above the threshold).
    """

    time: float
    turn_index: int
    cause: str
    similarity: float
    echo: bool


def _pcm16(chunks: list[bytes]) -> np.ndarray:
    data = b"".join(chunks)
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def _to_16k(pcm24: np.ndarray) -> np.ndarray:
    # The client hears 24 kHz and sends 16 kHz: compare at 16 kHz (duplex's own resampler).
    from duplex import _engine

    return np.asarray(_engine.resample(pcm24.astype(np.float32), OUTPUT_RATE_HZ, INPUT_RATE_HZ))


def _peak_correlation(needle: np.ndarray, hay: np.ndarray) -> tuple[float, int]:
    """Peak of the normalised cross-correlation of `needle` over `hay` and its offset."""
    n = needle.size
    if n == 0 or hay.size < n:
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(hay.size + n)))
    corr = np.fft.irfft(np.fft.rfft(hay, size) * np.conj(np.fft.rfft(needle, size)), size)[: hay.size - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(hay.astype(np.float64) ** 2)])
    window = energy[n:] - energy[:-n]
    denom = np.sqrt(np.maximum(window, 1e-12) * float(np.dot(needle, needle)))
    score = corr / np.maximum(denom, 1e-12)
    i = int(np.argmax(score))
    return float(score[i]), i


def _voiced_span(x: np.ndarray, frame: int = 320) -> np.ndarray:
    """`x` from its first to its last 20 ms frame within 30 dB of its loudest frame."""
    n = x.size // frame
    if n == 0:
        return x
    levels = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(levels >= levels.max() * 10 ** (-30 / 20))
    return x[loud[0] * frame : (loud[-1] + 1) * frame]


def barge_ins(session: Session, *, window_s: float = 0.4, threshold: float = 0.5) -> list[BargeIn]:
    """Every ``interrupted`` of `session`, each judged echo or not.

    For a barge-in detected at time ``t``, the user audio received in ``[t - window_s, t]``
    (what the VAD confirmed as speech) is matched against the audio sent, before ``t``, of
    the answer being cut and the one before it (an echo can outlast its answer a little).
    """
    audio = session.audio_chunks
    answers = {a.turn_index: a for a in session.answers}
    out: list[BargeIn] = []
    for cut in session.interruptions:
        t = cut.detected_at
        heard = _pcm16([c.pcm for c in audio if t - window_s <= c.time <= t])
        sent_parts = []
        for answer in sorted(answers.values(), key=lambda a: a.started_at):
            if answer.first_audio_at is None or answer.first_audio_at > t or not answer.pcm:
                continue
            pcm = np.frombuffer(answer.pcm, dtype="<i2").astype(np.float32) / 32768.0
            sent = pcm[: int(answer.audio_sent_s * OUTPUT_RATE_HZ)]
            sent_parts.append(_to_16k(sent))
        heard = _voiced_span(heard)
        # Zeros around the answers: an echo that is cut short still matches in full.
        pad = np.zeros(heard.size, np.float32)
        hay = np.concatenate([pad, *sent_parts[-2:], pad])
        # Silence cannot be an echo match; very quiet input counts as no match.
        if heard.size == 0 or float(np.sqrt(np.mean(heard ** 2))) < 1e-4:
            similarity = 0.0
        else:
            similarity, _ = _peak_correlation(heard, hay)
        out.append(BargeIn(
            time=cut.time,
            turn_index=cut.turn_index,
            cause=cut.cause,
            similarity=similarity,
            echo=similarity >= threshold,
        ))
    return out


def self_interruptions(session: Session, **kwargs: float) -> int:
    """How many ``interrupted`` of `session` were caused by the model's own audio coming back."""
    return sum(b.echo for b in barge_ins(session, **kwargs))
