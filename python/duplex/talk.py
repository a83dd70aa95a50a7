"""``duplex talk``: a spoken conversation from the command line.

Talks to the real Gemini Live API when ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` is set (the
SDK also honours ``GOOGLE_GEMINI_BASE_URL`` and ``SSL_CERT_FILE``), otherwise to the local
emulator, and says which. Audio runs on real devices, or on the virtual device when a WAV
input or output is given. A status line shows the transcript, levels, buffer health and
underruns; Ctrl-C ends cleanly and the output WAV is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .devices import VirtualDevice
from .engine import AudioEngine, Stats
from .errors import DuplexError
from .live import DEFAULT_MODEL, LiveConfig, LiveConversation, LiveEvent, LiveSessionError, local_time
from .live.transport import recommended_websocket_args
from .status import SessionFigures, StatusLine, format_summary


class TalkError(DuplexError):
    """A user error of ``duplex talk`` (printed as one line)."""


@dataclass
class TalkOptions:
    """What ``duplex talk`` was asked to do."""

    model: str = DEFAULT_MODEL
    voice: str | None = None
    video: str = "none"
    video_fps: float = 1.0
    media_resolution: str | None = None
    input_device: Any = None
    output_device: Any = None
    input_wav: Path | None = None
    output_wav: Path | None = None
    duration: float | None = None
    emulator: bool | None = None  # None: only when there is no API key
    scenario: str | None = None
    system_instruction: str | None = None
    prebuffer_ms: int = 200
    latency: str | float | None = None  # device buffer: "low", "high" or ms (None: the default)
    host: str | None = None  # real devices through "auto", "pulse" or "alsa" (None: the default)
    quiet: bool = False
    demo_tool: bool = False  # give the model duplex.live.local_time to call
    typing: bool = True  # a line typed on stdin goes to the model as a user turn
    #: Cancel the speaker's echo on real devices (WAV files have no echo path).
    echo_cancellation: bool = True


@dataclass
class TalkResult:
    """What a conversation produced."""

    service: str
    transcript: list[tuple[str, str]]
    stats: Stats
    events: list[LiveEvent] = field(default_factory=list)
    chunks_sent: int = 0
    frames_sent: int = 0
    session: SessionFigures | None = None  # levels over the whole session


def api_key() -> str | None:
    """The Gemini API key from the environment, if any."""
    return os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")


def _make_engine(opts: TalkOptions) -> AudioEngine:
    if opts.input_wav is not None or opts.output_wav is not None:
        if opts.input_wav is not None and not Path(opts.input_wav).is_file():
            raise TalkError(f"--input-wav {opts.input_wav}: no such file")
        device = VirtualDevice(
            input=opts.input_wav,
            output=opts.output_wav if opts.output_wav is not None else None,
            speed=1.0,
        )
        return AudioEngine(backend=device, prebuffer_ms=opts.prebuffer_ms)
    extra: dict[str, Any] = {} if opts.latency is None else {"latency": opts.latency}
    if opts.host is not None:
        extra["host"] = opts.host
    return AudioEngine(opts.input_device, opts.output_device, prebuffer_ms=opts.prebuffer_ms,
                       echo_cancellation=opts.echo_cancellation, **extra)


def _make_video(opts: TalkOptions) -> Any:
    if opts.video in (None, "", "none"):
        return None
    from .video import VideoSourceError, VideoStreamer, open_source

    try:
        source = open_source(opts.video)
    except (VideoSourceError, ValueError, OSError) as exc:
        raise TalkError(f"--video {opts.video}: {exc}") from exc
    return VideoStreamer(source, fps=opts.video_fps)


def _stop_on_ctrl_c(conv: LiveConversation, display: StatusLine) -> None:
    """The first Ctrl-C ends the conversation cleanly (transcript, stats, a complete WAV);
    a second one interrupts at once."""
    loop = asyncio.get_running_loop()

    def first_ctrl_c() -> None:
        display.line("-- stopping (Ctrl-C again to quit at once)")
        conv.stop()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, first_ctrl_c)


#: Typed commands of ``duplex talk`` (anything else is sent to the model).
TYPED_COMMANDS = {"/mute": "mute the microphone", "/unmute": "unmute it", "/quit": "end the conversation"}


def typed_line(conv: LiveConversation, line: str) -> None:
    """What a line typed during ``duplex talk`` does: a command, or a user turn."""
    text = line.strip()
    if not text:
        return
    if text == "/mute":
        conv.mute()
    elif text == "/unmute":
        conv.unmute()
    elif text == "/quit":
        conv.stop()
    else:
        conv.send_text(text)


def _read_typed_lines(conv: LiveConversation, stream: TextIO) -> None:
    """Forwards lines typed on ``stream`` to the conversation, from a daemon thread (a
    blocking read never holds up the event loop or the end of the program)."""
    import threading

    loop = asyncio.get_running_loop()

    def reader() -> None:
        for line in stream:
            if loop.is_closed():
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(typed_line, conv, line)

    threading.Thread(target=reader, name="duplex-talk-stdin", daemon=True).start()


async def _watch_wav_input(engine: AudioEngine, conv: LiveConversation, last_activity: list[float]) -> None:
    """With a WAV as the microphone: end once it has played and the model has finished."""
    while True:
        await asyncio.sleep(0.2)
        s = engine.stats()
        idle_for = time.monotonic() - last_activity[0]
        if s.input_ended and s.playback_buffered_ms == 0 and idle_for > 2.5:
            conv.stop()
            return


async def talk(opts: TalkOptions, out: TextIO = sys.stdout) -> TalkResult:
    """Runs one conversation as ``duplex talk`` does; raises TalkError or LiveSessionError."""
    display = StatusLine(out, opts.quiet)
    use_emulator = opts.emulator if opts.emulator is not None else api_key() is None
    if not use_emulator and api_key() is None:
        raise TalkError(
            "no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or leave out --no-emulator to "
            "talk to the local emulator"
        )
    engine = _make_engine(opts)
    video = _make_video(opts)
    emulator_thread = None
    try:
        if use_emulator:
            from .emulator import LiveEmulator

            emulator_thread = LiveEmulator(scenario=opts.scenario).run_in_thread()
            client = emulator_thread.make_client()
            service = f"the local Live API emulator at {emulator_thread.base_url} (no API key set)"
        else:
            from google import genai

            # duplex runs its own keepalive (the service's pongs can be late) and bounds the close.
            client = genai.Client(api_key=api_key(), http_options={
                "api_version": "v1beta", "async_client_args": recommended_websocket_args()})
            base = os.environ.get("GOOGLE_GEMINI_BASE_URL", "generativelanguage.googleapis.com")
            service = f"the Gemini Live API at {base}"
        display.line(f"duplex: talking to {service}, model {opts.model}")
        config = LiveConfig(model=opts.model, voice=opts.voice, media_resolution=opts.media_resolution,
                            system_instruction=opts.system_instruction,
                            tools=[local_time] if opts.demo_tool else [])
        engine.start()
        if video is not None:
            await video.__aenter__()
        conv = LiveConversation(engine, client, config, video=video)
        events: list[LiveEvent] = []
        last_activity = [time.monotonic()]

        async def show() -> None:
            async for ev in conv.events():
                events.append(ev)
                if ev.kind in ("output_transcript", "turn_complete", "interrupted", "input_transcript"):
                    last_activity[0] = time.monotonic()
                if ev.kind == "stats":
                    if ev.data["playback_buffered_ms"] > 0:
                        last_activity[0] = time.monotonic()
                    display.status(ev.data, "talking" if ev.data["playback_buffered_ms"] else "listening")
                else:
                    display.event(ev)

        shower = asyncio.create_task(show())
        _stop_on_ctrl_c(conv, display)
        if opts.typing and sys.stdin is not None and not sys.stdin.closed:
            _read_typed_lines(conv, sys.stdin)
            display.line("-- type a line to send it to the model (" + ", ".join(
                f"{c} to {what}" for c, what in TYPED_COMMANDS.items()) + ")")
        watcher = (asyncio.create_task(_watch_wav_input(engine, conv, last_activity))
                   if opts.input_wav is not None else None)
        try:
            await conv.run(opts.duration)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
            if watcher is not None:
                watcher.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(shower, 2.0)
        display.finish()
        return TalkResult(service=service, transcript=list(conv.transcript), stats=engine.stats(),
                          events=events, chunks_sent=conv.chunks_sent, frames_sent=conv.frames_sent,
                          session=display.session)
    finally:
        if video is not None:
            await video.aclose()
        engine.close()  # finishes the output WAV
        if emulator_thread is not None:
            emulator_thread.stop()


def print_summary(result: TalkResult, out: TextIO = sys.stdout) -> None:
    """The transcript and the stats, for the end of a run."""
    out.write("transcript\n")
    for role, text in result.transcript:
        out.write(f"  {role:<6} {text}\n")
    if not result.transcript:
        out.write("  (empty)\n")
    out.write(f"\nsent {result.chunks_sent} audio chunks and {result.frames_sent} video frames\n")
    out.write(format_summary(result.stats, result.session) + "\n")
