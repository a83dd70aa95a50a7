"""How one spoken answer goes out: which messages, with what in them, at what time.

:func:`plan_answer` turns the answer's 24 kHz PCM and its words into a list of
:class:`Step` items, each a server message and the time after the answer's start at
which it is due. The service streams answers faster than real time and bundles
(``live_service_behaviour.md`` §1, §4), so by default:

* the first ``burst_s`` of audio goes out at once, the rest at ``speed`` × real time,
  released in bursts every ``bursty_period_s``;
* one message carries ``parts_per_message`` audio parts of ``chunk_ms`` each, and the
  output transcription of the words spoken in them (``bundle``);
* ``turnComplete`` (with ``usageMetadata`` when bundled) is due when the answer would have
  finished playing at ``playout_speed`` (the service holds it until then), so barge-in
  is possible all that time although the whole answer was sent long before.

With ``bundle=false`` every message holds one item, as the emulator used to send them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protocol import b64_standard
from .scenarios import Scenario

OUTPUT_RATE_HZ = 24_000


@dataclass
class Step:
    """One server message of an answer.

    Attributes:
        offset_s: when it is due, in seconds after the answer's first audio.
        message: the server message (None for the premature ``turnComplete`` marker).
        audio_s: seconds of audio in it.
        chunk_bytes: the byte length of each audio part in it.
        premature_turn_complete: a ``turnComplete`` sent before the audio is over.
    """

    offset_s: float
    message: dict[str, Any] | None
    audio_s: float = 0.0
    chunk_bytes: list[int] = field(default_factory=list)
    premature_turn_complete: bool = False


def _audio_part(pcm: bytes) -> dict[str, Any]:
    return {"inlineData": {"mimeType": f"audio/pcm;rate={OUTPUT_RATE_HZ}", "data": b64_standard(pcm)}}


def word_times(words: list[str], duration_s: float) -> np.ndarray:
    """When each word starts in the audio (proportional to its characters)."""
    if not words:
        return np.zeros(0)
    lengths = np.cumsum([len(w) + 1 for w in words])
    return np.concatenate([[0], lengths[:-1]]) / lengths[-1] * duration_s


def plan_answer(pcm: np.ndarray, text: str, scenario: Scenario, *, transcribe: bool) -> list[Step]:
    """The messages of one spoken answer and when each is due.

    Args:
        pcm: the answer as int16 samples at 24 kHz.
        text: what is said (for the output transcription).
        scenario: pacing and bundling.
        transcribe: send ``outputTranscription`` (setup asked for it).
    """
    sc = scenario
    pcm = np.asarray(pcm, dtype="<i2")
    chunk = OUTPUT_RATE_HZ * sc.chunk_ms // 1000
    n_chunks = max(1, math.ceil(pcm.size / chunk))
    per = sc.parts_per_message if sc.bundle else 1
    n_messages = math.ceil(n_chunks / per)
    words = text.split()
    due = word_times(words, pcm.size / OUTPUT_RATE_HZ)
    premature_at = (min(n_messages - 1, math.ceil(n_messages * sc.premature_turn_complete_fraction))
                    if sc.premature_turn_complete_fraction else None)
    steps: list[Step] = []
    next_word = 0
    for m in range(n_messages):
        first, last = m * per, min(n_chunks, (m + 1) * per)
        offset = sc.send_offset_s(first * chunk / OUTPUT_RATE_HZ)
        if m == premature_at:
            steps.append(Step(offset, None, premature_turn_complete=True))
        pieces = [pcm[i * chunk : (i + 1) * chunk].tobytes() for i in range(first, last)]
        content: dict[str, Any] = {"modelTurn": {"parts": [_audio_part(b) for b in pieces]}}
        sizes = [len(b) for b in pieces]
        audio_s = sum(sizes) / 2 / OUTPUT_RATE_HZ
        spoken_until = min(pcm.size, last * chunk) / OUTPUT_RATE_HZ
        start = next_word
        while next_word < len(words) and due[next_word] <= spoken_until - 1e-9:
            next_word += 1
        said = " ".join(words[start:next_word])
        transcript = {"text": (" " if start else "") + said} if transcribe and said else None
        if transcript and sc.bundle:
            content["outputTranscription"] = transcript
        steps.append(Step(offset, {"serverContent": content}, audio_s, sizes))
        if transcript and not sc.bundle:
            steps.append(Step(offset, {"serverContent": {"outputTranscription": transcript}}))
    if transcribe and next_word < len(words):
        rest = (" " if next_word else "") + " ".join(words[next_word:])
        steps.append(Step(steps[-1].offset_s, {"serverContent": {"outputTranscription": {"text": rest}}}))
    return steps
