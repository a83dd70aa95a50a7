"""The terminal display of ``duplex talk``: transcript lines as they complete and, on a
terminal, one live status line (state, levels, playback buffer, underruns of the engine's ring
and of the device below it, the model's words),
plus the end-of-session summary.

The status line is cut to the terminal's width (read at every update, so a resize is
followed) minus one column: a line that reaches the last column makes some terminals wrap,
and a wrapped line leaves a stale row behind when it is redrawn. Colour is used only when the
output is a terminal and ``NO_COLOR`` is unset.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .engine import Stats
    from .live import LiveEvent

__all__ = ["SessionFigures", "StatusLine", "format_summary"]

SILENCE_DBFS = -120.0  # what the engine reports for digital silence
_COLOURS = {"green": "32", "cyan": "36", "red": "31", "dim": "2", "bold": "1"}


def _power(dbfs: float) -> float:
    return 0.0 if dbfs <= SILENCE_DBFS else 10.0 ** (dbfs / 10.0)


def _dbfs(power: float) -> float:
    return SILENCE_DBFS if power <= 0.0 else max(SILENCE_DBFS, 10.0 * math.log10(power))


class SessionFigures:
    """Session-wide figures accumulated from the periodic ``stats`` events: the engine's
    levels are of its last metering period, so the end summary averages them instead."""

    def __init__(self) -> None:
        self.periods: int = 0
        self.output_periods: int = 0  # periods in which the model's audio was playing
        self._input_power = 0.0
        self._output_power = 0.0
        self.input_peak_dbfs: float = SILENCE_DBFS
        self.output_peak_dbfs: float = SILENCE_DBFS
        self.max_buffered_ms: float = 0.0

    def update(self, stats: dict[str, Any]) -> None:
        """Adds one ``stats`` snapshot (a dict of :class:`~duplex.Stats` fields)."""
        self.periods += 1
        self._input_power += _power(float(stats["input_rms_dbfs"]))
        self.input_peak_dbfs = max(self.input_peak_dbfs, float(stats["input_peak_dbfs"]))
        out = float(stats["output_rms_dbfs"])
        if out > SILENCE_DBFS:
            self.output_periods += 1
            self._output_power += _power(out)
        self.output_peak_dbfs = max(self.output_peak_dbfs, float(stats["output_peak_dbfs"]))
        self.max_buffered_ms = max(self.max_buffered_ms, float(stats["playback_buffered_ms"]))

    @property
    def input_avg_dbfs(self) -> float:
        """Mean microphone level over the session (power average of the periods), dBFS."""
        return _dbfs(self._input_power / self.periods) if self.periods else SILENCE_DBFS

    @property
    def output_avg_dbfs(self) -> float:
        """Mean level of the model's audio while it played, dBFS."""
        return _dbfs(self._output_power / self.output_periods) if self.output_periods else SILENCE_DBFS


def format_summary(stats: Stats, session: SessionFigures | None) -> str:
    """The engine figures of a finished session, with levels over the whole session."""
    s = stats
    lines = [
        f"devices     in {s.input_rate_hz} Hz x{s.input_channels}, out {s.output_rate_hz} Hz "
        f"x{s.output_channels}, period {s.period_frames} frames",
        f"capture     {s.frames_captured} frames, {s.chunks_read} chunks read, {s.capture_overflows} "
        f"overflows ({s.capture_overflow_frames} frames dropped)",
        f"playback    {s.frames_played} frames played, {s.underruns} underruns "
        f"({s.underrun_silence_ms:.0f} ms silence), {s.flushes} flushes ({s.flushed_ms:.0f} ms dropped), "
        f"buffered {s.playback_buffered_ms:.0f} ms",
    ]
    if session is not None and session.periods:
        lines.append(
            f"levels      mic {session.input_avg_dbfs:.1f} dBFS mean, {session.input_peak_dbfs:.1f} peak; "
            f"model {session.output_avg_dbfs:.1f} dBFS mean while playing, {session.output_peak_dbfs:.1f} peak "
            f"(over {session.periods} stats periods)")
    lines += [
        f"callback    p50 {s.callback_p50_us:.1f} us, p99 {s.callback_p99_us:.1f} us, max "
        f"{s.callback_max_us:.1f} us; interval jitter p99 {s.jitter_p99_ms:.3f} ms, max {s.jitter_max_ms:.3f} ms",
        f"device      {s.device_errors} errors" + (f" (last: {s.last_device_error})" if s.last_device_error else ""),
        f"            {s.output_device_underruns} underruns ({s.output_device_underrun_ms:.0f} ms lost), "
        f"{s.input_device_overruns} input overruns ({s.input_device_overrun_ms:.0f} ms lost) below the "
        f"engine; {s.latency_requested_ms:.0f} ms buffer asked, periods out {s.output_period_frames} / "
        f"in {s.input_period_frames} frames granted, delay out {s.output_delay_ms:.0f} ms; jitter buffer "
        f"{s.jitter_buffer_ms:.0f} ms" + (f"; host {s.host}" if s.host else ""),
        f"echo        {s.echo_summary()}"
        + ("" if s.echo_cancellation else " (wear headphones, or drop --no-echo-cancellation)"),
    ]
    return "\n".join(lines)


# Event kinds shown as a "-- kind: text" notice line.
_NOTICE_KINDS = frozenset({
    "reconnecting", "go_away", "error", "video_error", "video_ended", "video_opened",
    "tool_cancelled", "malformed", "muted", "unmuted", "audio_stream_end", "device_lost",
    "device_restored"})
# Every kind that prints a line (video frames, usage and the like print nothing).
_PRINTED_KINDS = _NOTICE_KINDS | frozenset({
    "output_transcript", "turn_complete", "interrupted", "connected", "tool_call", "tool_result",
    "text_sent"})


class StatusLine:
    """Prints transcript lines as they complete and, on a terminal, one live status line.

    ``width`` fixes the width (tests); by default it is the terminal's, read at each update.
    ``colour`` defaults to: the output is a terminal and ``NO_COLOR`` is not set.
    """

    def __init__(self, out: TextIO, quiet: bool = False, *, width: int | None = None,
                 colour: bool | None = None) -> None:
        self.out = out
        self.quiet: bool = quiet
        self.tty: bool = out.isatty()
        self.colour: bool = (self.tty and "NO_COLOR" not in os.environ) if colour is None else colour
        self.width = width
        self.model_text: str = ""
        self.last_status: str = ""
        self.session: SessionFigures = SessionFigures()
        self._last: tuple[dict[str, Any], str] | None = None
        self._user_text: str = ""  # the user's utterance so far (the service's aggregate)
        self._user_shown: str = ""  # the part of it already printed, when a line interrupted it

    def _columns(self) -> int:
        return self.width if self.width is not None else shutil.get_terminal_size((80, 24)).columns

    def _paint(self, text: str, colour: str) -> str:
        return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m" if self.colour else text

    def line(self, text: str) -> None:
        """A permanent line (transcript, event); the status line is redrawn under it."""
        if self.quiet:
            return
        if self.tty:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        if self.tty and self._last is not None:
            self.last_status = self.render(*self._last)
            self.out.write(self.last_status)
        self.out.flush()

    def finish(self) -> None:
        """Clears the status line for good, so the summary starts on a clean line."""
        if self.tty and not self.quiet:
            self.out.write("\r\x1b[2K")
            self.out.flush()
        self.last_status = ""
        self._last = None
        self.quiet = True

    def render(self, stats: dict[str, Any], state: str) -> str:
        """The status line for ``stats``, at most the terminal's width minus one column
        (escape codes are not counted: they take no column)."""
        room = max(10, self._columns() - 1)
        underruns = int(stats["underruns"])
        # (plain text, colour or None), most important first; later ones are dropped first.
        parts: list[tuple[str, str | None]] = [
            (f"{state:<9}", "cyan" if state == "talking" else "green"),
            (f"mic {stats['input_rms_dbfs']:4.0f} dB", None),
            (f"out {stats['output_rms_dbfs']:4.0f} dB", None),
            (f"buf {stats['playback_buffered_ms'] / 1000:4.1f} s", None),
            (f"underruns {underruns}", "red" if underruns else None),
        ]
        # Gaps below the ring: the sound server played silence (underruns) or dropped input
        # (overruns). Any are shown before the canceller; none give way to everything else.
        below = (int(stats.get("output_device_underruns", 0)), int(stats.get("input_device_overruns", 0)))
        if any(below):
            parts.append((f"dev gaps {below[0]}/{below[1]}", "red"))
        if "echo_cancellation" in stats:
            # Echo cancellation: how much of the speaker's sound it takes out of the mic.
            parts.append((f"echo -{stats['echo_erle_db']:.0f} dB" if stats["echo_cancellation"] else "echo off",
                          None))
            # It is the least important part: it gives way to the model's words.
            if room - len("  ".join(p for p, _ in parts)) < 30 and self.model_text:
                parts.pop()
        if "output_device_underruns" in stats and not any(below):
            parts.append(("dev gaps 0/0", None))
            if room - len("  ".join(p for p, _ in parts)) < 30 and self.model_text:
                parts.pop()
        while len(parts) > 1 and len("  ".join(p for p, _ in parts)) > room:
            parts.pop()
        plain = "  ".join(p for p, _ in parts)
        if len(plain) > room:
            return plain[:room]
        text = "  ".join(self._paint(p, c) if c else p for p, c in parts)
        left = room - len(plain) - 2
        words = " ".join(self.model_text.split())
        if left >= 8 and words:
            tail = words if len(words) <= left else "..." + words[-(left - 3):]
            text += "  " + self._paint(tail, "bold")
        return text

    def status(self, stats: dict[str, Any], state: str) -> None:
        """One ``stats`` event: counted into the session figures, and shown on a terminal."""
        self.session.update(stats)
        if self.quiet or not self.tty:
            return
        self._last = (stats, state)
        self.last_status = self.render(stats, state)
        self.out.write("\r\x1b[2K" + self.last_status)
        self.out.flush()

    def _show_user_text(self, finished: bool = True) -> None:
        """Prints the user's words not printed yet; ``finished`` closes the utterance."""
        text = self._user_text.strip()
        shown = self._user_shown
        rest = text[len(shown):].strip() if shown and text.startswith(shown) else text
        if rest:
            self.line(f"you:    {'... ' if shown and rest != text else ''}{rest}")
        self._user_shown = "" if finished else text
        if finished:
            self._user_text = ""

    def event(self, ev: LiveEvent) -> None:
        """Shows a conversation event: transcripts, interruptions, connection changes."""
        kind = ev.kind
        if kind == "input_transcript":
            # Fragments: one line per utterance, when it is finished or another line is due.
            self._user_text = ev.data.get("aggregate", self._user_text + ev.text)
            if ev.data.get("finished", True):  # an event without the flag is a whole utterance
                self._show_user_text()
            return
        if kind in _PRINTED_KINDS:
            # A line is about to be printed: show what the user said so far above it; the
            # rest of the utterance follows as "..." when the service finishes it.
            self._show_user_text(finished=False)
        if kind == "output_transcript":
            self.model_text += ev.text
        elif kind == "turn_complete":
            if self.model_text.strip():
                self.line(f"model:  {self.model_text.strip()}")
            self.model_text = ""
        elif kind == "interrupted":
            heard = ev.text.strip() or "(nothing yet)"
            self.line(f"model:  {heard} ... [interrupted after {ev.data['heard_ms']:.0f} ms heard]")
            self.model_text = ""
        elif kind == "connected":
            self.line(f"-- connected ({ev.text})")
        elif kind == "tool_call":
            self.line(f"-- tool call: {ev.text}({', '.join(f'{k}={v!r}' for k, v in ev.data['args'].items())})")
        elif kind == "tool_result":
            self.line(f"-- tool result: {ev.text} -> {ev.data['response']}")
        elif kind == "text_sent":
            self.line(f"you (typed): {ev.text}")
        elif kind in _NOTICE_KINDS:
            self.line(f"-- {kind.replace('_', ' ')}: {ev.text}")
