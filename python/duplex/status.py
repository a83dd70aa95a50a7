"""The terminal display of ``duplex talk``: transcript lines as they complete and, on a
terminal, one live status line (levels, playback buffer, underruns, the model's words)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .live import LiveEvent

__all__ = ["StatusLine"]


class StatusLine:
    """Prints transcript lines as they complete and, on a terminal, one live status line."""

    def __init__(self, out: TextIO, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty()
        self.model_text = ""
        self.last_status = ""

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        if self.tty and self.last_status:
            self.out.write(self.last_status)
        self.out.flush()

    def finish(self) -> None:
        """Clears the status line for good, so the summary starts on a clean line."""
        if self.tty and not self.quiet:
            self.out.write("\r\x1b[2K")
            self.out.flush()
        self.last_status = ""
        self.quiet = True

    def status(self, stats: dict[str, Any], state: str) -> None:
        if self.quiet or not self.tty:
            return
        self.last_status = (
            f"[{state}] mic {stats['input_rms_dbfs']:6.1f} dBFS  out {stats['output_rms_dbfs']:6.1f} dBFS  "
            f"buffer {stats['playback_buffered_ms']:5.0f} ms  underruns {stats['underruns']}  "
            f"{self.model_text[-40:]}"
        )
        self.out.write("\r\x1b[2K" + self.last_status)
        self.out.flush()

    def event(self, ev: LiveEvent) -> None:
        kind = ev.kind
        if kind == "output_transcript":
            self.model_text += ev.text
        elif kind == "input_transcript":
            self.line(f"you:    {ev.text}")
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
        elif kind in ("reconnecting", "go_away", "error", "video_error", "video_ended", "video_opened"):
            self.line(f"-- {kind.replace('_', ' ')}: {ev.text}")
