"""duplex's one energy detector (duplex.vad), as the client uses it in manual activity mode."""

from __future__ import annotations

import asyncio

import numpy as np
from conftest import write_wav

import duplex
from duplex.emulator import LiveEmulator
from duplex.live import LiveConfig, LiveConversation
from duplex.vad import EnergyVad, VadConfig


def test_client_and_emulator_share_one_detector() -> None:
    import duplex.emulator as emulator_pkg

    assert emulator_pkg.EnergyVad is EnergyVad and emulator_pkg.VadConfig is VadConfig


def test_manual_activity_mode_sends_activity_start_and_end(tmp_path) -> None:
    """With server VAD off, the client's detector brackets the utterance itself."""
    rate = 16_000
    tone = (6000 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)).astype(np.int16)
    mic = np.concatenate([np.zeros(rate // 5, np.int16), tone, np.zeros(rate * 2, np.int16)])
    wav = write_wav(tmp_path / "mic.wav", mic, rate)

    async def main() -> list[str]:
        with LiveEmulator(scenario="fast").run_in_thread() as emu:
            engine = duplex.AudioEngine(backend=duplex.VirtualDevice(input=wav)).start()
            try:
                conv = LiveConversation(engine, emu.make_client(), LiveConfig(manual_activity=True))
                kinds: list[str] = []

                async def watch() -> None:
                    async for ev in conv.events():
                        kinds.append(ev.kind)
                        if ev.kind == "turn_complete":
                            conv.stop()

                watcher = asyncio.create_task(watch())
                await asyncio.wait_for(conv.run(), 20)
                await asyncio.wait_for(watcher, 5)
            finally:
                engine.close()
            utterances = emu.sessions[-1].utterances
        assert [u.source for u in utterances] == ["manual"]
        # The server counts the audio between activityStart and activityEnd: the 1 s tone
        # minus the start_ms it takes to confirm speech, plus the end_ms of silence it takes
        # to confirm the end (the detector's defaults, the same as the emulator's server VAD).
        cfg = VadConfig()
        expected = 1.0 - cfg.start_ms / 1000 + cfg.end_ms / 1000
        assert abs(utterances[0].speech_s - expected) <= 0.041
        return kinds

    assert "turn_complete" in asyncio.run(main())
