"""The `duplex talk` display: fits the terminal, colour only on a terminal, session figures."""

from __future__ import annotations

import io
import re

import pytest

import duplex
from duplex.live import LiveEvent
from duplex.status import SessionFigures, StatusLine, format_summary

ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def stats(**over):
    base = {"input_rms_dbfs": -23.4, "input_peak_dbfs": -6.0, "output_rms_dbfs": -18.0,
            "output_peak_dbfs": -3.0, "playback_buffered_ms": 12_345.0, "underruns": 1234}
    return {**base, **over}


def screen_rows(written: str, width: int) -> list[str]:
    """What a terminal of ``width`` columns shows for ``written`` (CR, LF, erase-line, and
    autowrap at the last column), so a wrapped status line shows up as a stale row."""
    rows, col = [""], 0
    for token in re.split(r"(\x1b\[[0-9;]*[A-Za-z]|\r|\n)", written):
        if token == "\r":
            col = 0
        elif token == "\n":
            rows.append("")
            col = 0
        elif token == "\x1b[2K":
            rows[-1] = ""
        elif token.startswith("\x1b"):
            continue
        else:
            for ch in token:
                if col >= width:
                    rows.append("")
                    col = 0
                rows[-1] = rows[-1][:col].ljust(col) + ch
                col += 1
    return rows


@pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 200])
def test_the_status_line_fits_the_terminal_and_leaves_no_stale_rows(width):
    out = Tty()
    display = StatusLine(out, width=width, colour=True)
    display.model_text = "a long answer from the model " * 20
    for k in range(5):
        display.status(stats(underruns=10 ** k), "talking" if k % 2 else "listening")
        display.line(f"you: {k}")
    rows = screen_rows(out.getvalue(), width)
    assert all(len(r) < width for r in rows), [r for r in rows if len(r) >= width]
    # Five permanent lines and one status line, nothing else left on screen.
    assert rows[:5] == [f"you: {k}" for k in range(5)]
    assert len(rows) == 6 and rows[5].startswith("talking" if 4 % 2 else "listening")
    if width >= 80:
        assert "underruns 10000" in rows[5] and rows[5].rstrip().endswith("the model")


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    piped = io.StringIO()
    StatusLine(piped).line("you:    hello")
    assert not ESCAPE.search(piped.getvalue())
    tty = Tty()
    display = StatusLine(tty, width=80)
    display.status(stats(), "talking")
    assert "\x1b[36m" in tty.getvalue() and "\x1b[31m" in tty.getvalue()  # state and underruns
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    display = StatusLine(tty, width=80)
    display.status(stats(), "talking")
    assert not re.search(r"\x1b\[\d+m", tty.getvalue())


def test_no_status_line_when_piped_but_the_session_is_still_counted():
    out = io.StringIO()
    display = StatusLine(out)
    display.status(stats(), "talking")
    display.event(LiveEvent("input_transcript", "[speech 1.0 s]"))
    assert out.getvalue() == "you:    [speech 1.0 s]\n"
    assert display.session.periods == 1


def fragment(text: str, aggregate: str, finished: bool) -> LiveEvent:
    return LiveEvent("input_transcript", text, {"finished": finished, "aggregate": aggregate})


def test_an_utterance_is_one_line_when_silent_events_arrive_between_its_fragments():
    out = io.StringIO()
    display = StatusLine(out)
    display.event(fragment("[speech", "[speech", False))
    display.event(LiveEvent("video", "frame 3"))  # a video frame each second prints nothing
    display.event(LiveEvent("usage", "120 tokens"))
    display.event(fragment(" 2.2 s]", "[speech 2.2 s]", True))
    assert out.getvalue() == "you:    [speech 2.2 s]\n"


def test_a_line_printed_inside_an_utterance_shows_it_so_far_and_then_only_the_rest():
    out = io.StringIO()
    display = StatusLine(out)
    display.event(fragment("what is", "what is", False))
    display.event(LiveEvent("muted", "microphone muted"))
    display.event(fragment(" the time", "what is the time", True))
    display.event(fragment("thanks", "thanks", True))
    assert out.getvalue().splitlines() == [
        "you:    what is", "-- muted: microphone muted", "you:    ... the time", "you:    thanks"]


def test_session_figures_average_the_whole_session_not_the_last_period():
    session = SessionFigures()
    for _ in range(5):
        session.update(stats(input_rms_dbfs=-20.0, input_peak_dbfs=-3.0, output_rms_dbfs=-10.0))
    for _ in range(5):  # a silent end: the last period says -120
        session.update(stats(input_rms_dbfs=-120.0, input_peak_dbfs=-120.0, output_rms_dbfs=-120.0))
    assert session.input_avg_dbfs == pytest.approx(-20.0 - 3.0103, abs=0.01)  # half the time at -20
    assert session.input_peak_dbfs == -3.0
    assert session.output_avg_dbfs == pytest.approx(-10.0)  # while playing
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=20.0)) as engine:
        engine.read(timeout=2.0)
        text = format_summary(engine.stats(), session)
    assert "mic -23.0 dBFS mean, -3.0 peak" in text and "-120" not in text.split("levels")[1].split("\n")[0]
    assert text.splitlines()[0].startswith("devices ")
    # The virtual device has echo cancellation off unless asked: the summary says so, and
    # says so when it is on, with the canceller's figures.
    assert "echo        not cancelled" in text and "host virtual" in text
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=20.0), echo_cancellation=True) as engine:
        engine.read(timeout=2.0)
        on = format_summary(engine.stats(), None)
    assert "echo        cancelled (sonora)" in on and "us per 10 ms frame" in on


def test_device_gaps_show_on_the_status_line_when_there_are_any():
    display = StatusLine(Tty(), width=100, colour=False)
    quiet = stats(underruns=0, output_device_underruns=0, input_device_overruns=0)
    assert "dev gaps 0/0" in display.render(quiet, "listening")
    gaps = stats(underruns=0, output_device_underruns=3, input_device_overruns=1)
    display.model_text = "a long answer from the model " * 20
    line = display.render(gaps, "talking")
    assert "dev gaps 3/1" in line and len(line) < 100
    assert "dev gaps" not in display.render(quiet, "talking"), "none: they give way to the words"
