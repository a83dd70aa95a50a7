"""The soak's Live server: the emulator in its own process, injecting connection faults.

Run by :mod:`duplex.bench.soak_live` as ``python -m duplex.bench.soak_emulator SPEED SEED
MIN_S MAX_S``; not meant to be run by hand. It lives in a process of its own so that the
client's memory, threads and file descriptors are measured alone, and so that the server's
work runs on the other core.

Every connection gets one fault, in turn (the cycle is fixed so a short soak sees each):

* ``go_away``: the service's connection expiry, ``goAway`` then close 1011; the client
  resumes on a new connection with its latest handle before the deadline.
* ``close_1011``: an abrupt server-side 1011 close ("Internal error encountered.").
* ``drop``: the TCP connection is aborted without a close frame (a lost network: 1006).

Each comes between ``MIN_S`` and ``MAX_S`` simulated seconds after the connection opens
(wall seconds times ``SPEED``, the speed of the client's virtual device; the answers are
paced for that speed too). On a line ``stop`` on stdin it stops and prints one JSON line
with what it received in total. Records of ended connections are folded into the totals
and dropped, so the server's memory stays bounded however long the soak runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
from collections import Counter
from typing import Any

from ..emulator import LiveEmulator
from ..emulator.scenarios import Scenario
from ..emulator.voice import Voice

__all__ = ["FAULTS", "FaultyEmulator", "scenario_for_speed"]

#: The faults, in the order connections get them.
FAULTS = ("go_away", "close_1011", "drop")


def scenario_for_speed(speed: float) -> Scenario:
    """The emulator's default scenario with its wall-clock pacing scaled to a virtual device
    running ``speed`` times faster than real time (answers still stream 3x faster than they
    play, as the service's do; ``turnComplete`` comes when they have played)."""
    base = Scenario()
    return base.apply(
        f"speed={3 * speed},playout_speed={speed},burst_s=1.0,bursty_period_s=none,chunk_ms=200,"
        f"vad_end_ms=500,answer_delay_ms=0")


class FaultyEmulator(LiveEmulator):
    """A :class:`LiveEmulator` that gives each connection one fault from :data:`FAULTS`."""

    def __init__(self, speed: float, seed: int, min_s: float, max_s: float) -> None:
        super().__init__(scenario=scenario_for_speed(speed), voice=Voice(use_espeak=False))
        self.speed = speed
        self._rng = random.Random(seed)
        self._range = (min_s, max_s)
        self._cycle = itertools.cycle(FAULTS)
        self.faults: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        #: Per connection, in the order they opened: (opened_at, fault, audio chunks received, close).
        self.per_connection: list[tuple[float, str, int, str]] = []

    def _scenario_for(self, request: Any) -> Scenario:
        scenario = super()._scenario_for(request)
        fault, after_s = getattr(request, "_soak_fault", (None, 0.0))
        wall = after_s / self.speed
        if fault == "go_away":
            lead = min(50.0 / self.speed, wall / 2)
            return scenario.apply(f"connection_lifetime_s={wall},go_away_lead_s={lead}")
        if fault == "close_1011":
            return scenario.apply(f"close_code=1011,close_after_s={wall}")
        return scenario

    async def _handle(self, ws: Any) -> None:
        fault = next(self._cycle)
        after_s = self._rng.uniform(*self._range)
        ws.request._soak_fault = (fault, after_s)
        self.faults[fault] += 1
        timer = None
        if fault == "drop":
            timer = asyncio.get_running_loop().call_later(after_s / self.speed, ws.transport.abort)
        asyncio.get_running_loop().call_soon(self._tag, fault)
        try:
            await super()._handle(ws)
        finally:
            if timer is not None:
                timer.cancel()
            self._fold_closed()

    def _tag(self, fault: str) -> None:
        # The record of this connection is the newest one without a fault (made when the
        # handler started, which has run up to its first wait by now).
        with self._lock:
            for record in reversed(self._sessions):
                if not hasattr(record, "soak_fault"):
                    record.soak_fault = fault  # type: ignore[attr-defined]
                    return

    def _fold_closed(self) -> None:
        """Adds ended connections to the totals and forgets their records."""
        with self._lock:
            ended = [s for s in self._sessions if s.closed]
            self._sessions = [s for s in self._sessions if not s.closed]
        for s in ended:
            self._count(s)

    def _count(self, s: Any) -> None:
        self.totals["connections"] += 1
        self.totals["resumed"] += s.resumed_with is not None
        self.totals["audio_samples"] += sum(c.samples for c in s.audio_chunks)
        self.totals["audio_chunks"] += len(s.audio_chunks)
        self.totals["video_frames"] += len(s.video_frames)
        self.totals["video_frames_invalid"] += sum(not f.valid for f in s.video_frames)
        self.totals["answers"] += len(s.answers)
        self.totals["interruptions"] += len(s.interruptions)
        self.totals["audio_sent_s"] += sum(a.audio_sent_s for a in s.answers)
        self.close_codes[f"{s.close_code}/{s.closed_by}"] += 1
        fault = getattr(s, "soak_fault", "?")
        self.per_connection.append((s.opened_at, fault, len(s.audio_chunks), f"{s.close_code}/{s.closed_by}"))

    def report(self) -> dict[str, Any]:
        """What the server received and did, over every connection so far."""
        for s in self.sessions:  # still open: count what they have so far
            self._count(s)
        per = [{"fault": f, "chunks": n, "close": c} for _, f, n, c in sorted(self.per_connection)]
        return {"faults": dict(self.faults), "totals": dict(self.totals), "close_codes": dict(self.close_codes),
                "per_connection": per}


async def _serve(speed: float, seed: int, min_s: float, max_s: float) -> None:
    emu = FaultyEmulator(speed, seed, min_s, max_s)
    async with emu:
        print(json.dumps({"base_url": emu.base_url, "cert": str(emu.cert_path)}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                break
        report = emu.report()
    print(json.dumps(report), flush=True)


def _main(argv: list[str]) -> None:
    speed, seed, min_s, max_s = argv[:4]
    asyncio.run(_serve(float(speed), int(seed), float(min_s), float(max_s)))


if __name__ == "__main__":
    _main(sys.argv[1:])
