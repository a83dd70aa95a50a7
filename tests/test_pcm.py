"""duplex.pcm: the one place for sample conversion, downmix and whole-clip resampling."""

from __future__ import annotations

import numpy as np

from duplex import pcm
from duplex.emulator import voice


def test_conversion_round_trips_and_clips():
    x = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    # In: /32768 (exact for every int16); out: *32767, as the engine writes: within 1 LSB.
    assert np.max(np.abs(pcm.to_int16(pcm.to_float(x)).astype(int) - x)) <= 1
    assert pcm.to_float(x.astype("<i2").tobytes()).dtype == np.float32
    assert list(pcm.to_int16(np.array([2.0, -2.0, np.float32(0.5)]))) == [32767, -32768, 16384]


def test_downmix_is_the_channel_mean():
    stereo = np.array([100, 300, -50, 50], dtype=np.int16)
    assert list(pcm.downmix(stereo, 2)) == [200, 0]
    assert pcm.downmix(stereo, 1) is stereo


def test_whole_clip_resampling_keeps_pitch_and_length():
    rate_in, rate_out = 22_050, 24_000
    tone = (10_000 * np.sin(2 * np.pi * 1000 * np.arange(rate_in) / rate_in)).astype(np.int16)
    out = pcm.resample_int16(tone, rate_in, rate_out)
    assert out.dtype == np.int16 and abs(out.size - rate_out) <= 64
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    assert abs(np.argmax(spectrum) * rate_out / out.size - 1000) < 2
    assert voice.resample_int16 is pcm.resample_int16  # the emulator uses the same helper
