"""The ``duplex`` command.

Start-up is kept short: only the chosen sub-command's arguments are defined, so
``duplex --help``, ``duplex --version`` and ``duplex devices`` never import google-genai,
OpenCV or matplotlib. A sub-command that needs an extra says which one to install before
doing any work. Every user error is one line on stderr and exit status 2; a Live session
that fails is exit status 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from . import errors
from .extras import DISTRIBUTION, require

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``duplex talk: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types: each rejects a bad value with a message naming the allowed range --------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _int_range(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number{unit}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}{unit}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _device_ref(text: str) -> int | str:
    """A device index (0 or more) or a device name."""
    if text.lstrip("-").isdigit():
        value = int(text)
        if value < 0:
            raise argparse.ArgumentTypeError(
                f"a device index is 0 or more, got {value}: `duplex devices` lists them "
                "(for the virtual device, use --input-wav / --output-wav)")
        return value
    return _non_empty(text)


# -- sub-commands ------------------------------------------------------------------------


def _latency(text: str) -> str | float:
    if text in ("low", "high"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--latency takes low, high or milliseconds of device buffer (4-1000), got {text!r}"
        ) from None


def _add_devices(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probe", action="store_true",
                   help="open the default output and input briefly and show what the host grants "
                        "(period, delay, thread priority) for --latency")
    p.add_argument("--latency", type=_latency, default=None,
                   help="device buffer to probe with: low (20 ms), high (the default: 150 ms on the "
                        "native PulseAudio host, 80 ms on ALSA) or milliseconds")
    p.add_argument("--host", choices=HOSTS, default=None,
                   help="audio system to probe with: " + HOSTS_HELP)
    p.set_defaults(run=_cmd_devices)


#: The audio systems real devices open through (AudioEngine's ``host``).
HOSTS = ("auto", "pulse", "alsa")
HOSTS_HELP = ("auto (the default: pulse where a PulseAudio server answers, else alsa), pulse "
              "(duplex's own PulseAudio client: a real-time device thread, interrupts that take back "
              "what the server holds) or alsa (cpal's ALSA host)")


def _probe(direction: str, latency: str | float | None, host: str | None = None) -> str:
    """Opens the default device of one direction for about half a second and says what the
    host granted."""
    from .engine import DEFAULT_LATENCY, AudioEngine

    closed = {"output_device": False} if direction == "input" else {"input_device": False}
    try:
        extra: dict[str, Any] = {} if host is None else {"host": host}
        engine = AudioEngine(**closed, latency=DEFAULT_LATENCY if latency is None else latency,
                             echo_cancellation=False, **extra)  # type: ignore[arg-type]
        with engine:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                s = engine.stats()
                if (s.output_callbacks if direction == "output" else s.input_callbacks) >= 20:
                    break
                time.sleep(0.05)
            s = engine.stats()
    except errors.DuplexError as exc:
        return f"default {direction}: cannot open it: {exc}"
    rate = s.output_rate_hz if direction == "output" else s.input_rate_hz
    period = s.output_period_frames if direction == "output" else s.input_period_frames
    delay = s.output_delay_ms if direction == "output" else s.input_delay_ms
    thread = s.output_thread if direction == "output" else s.input_thread
    period_ms = 1000 * period / rate if rate else 0.0
    granted_buffer = (f", a {s.output_buffer_ms:.0f} ms buffer" if direction == "output" and s.output_buffer_ms
                      else "")
    return (f"default {direction}: {rate} Hz; asked for {s.latency_requested_ms:.0f} ms of buffer, granted "
            f"{period}-frame periods ({period_ms:.1f} ms){granted_buffer}; host delay {delay:.1f} ms; thread "
            f"{thread or 'did not run'}; host {s.host or '?'}")


def _cmd_devices(args: argparse.Namespace) -> int:
    from .devices import devices

    found = devices()
    hosts = sorted({d.host for d in found if d.host != "virtual"})
    print(f"host: {', '.join(hosts) or 'none'}")
    print("index  id                           direction   channels         rate  default")
    for d in found:
        print(d)
    real = [d for d in found if d.host != "virtual" and d.direction != "unavailable"]
    if not any(d.is_default_output and d.output_channels for d in real):
        print(
            "\nNo default output device can be opened (no sound card or sound server?). "
            "The virtual device works anywhere: duplex demo."
        )
    elif args.probe:
        print()
        for direction in ("output", "input"):
            print(_probe(direction, args.latency, args.host))
    return 0


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="duplex-out", help="folder for the WAV files (default: duplex-out)")
    p.set_defaults(run=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from .demo import run_demo

    asyncio.run(run_demo(Path(args.out)))
    return 0


def _add_talk(p: argparse.ArgumentParser) -> None:
    from .live import DEFAULT_MODEL

    p.add_argument("--model", type=_non_empty, default=DEFAULT_MODEL, help=f"Live model (default: {DEFAULT_MODEL})")
    p.add_argument("--voice", type=_non_empty, help="prebuilt voice name, e.g. Kore, Puck, Charon")
    p.add_argument("--video", default="none", help="camera, camera:N, screen, screen:N, a video or image PATH, or none")
    p.add_argument("--video-fps", type=_positive, default=1.0, help="video frames per second (default: 1)")
    p.add_argument("--media-resolution", choices=["low", "medium", "high"], help="media resolution of video frames")
    p.add_argument("--input-device", type=_device_ref, help="input device index or name (see `duplex devices`)")
    p.add_argument("--output-device", type=_device_ref, help="output device index or name")
    p.add_argument("--input-wav", help="use the virtual device with this WAV as the microphone")
    p.add_argument("--output-wav", help="use the virtual device and write the speaker to this WAV")
    p.add_argument("--duration", type=_positive, help="stop after this many seconds")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--emulator", dest="emulator", action="store_true", default=None,
                       help="use the local emulator even if an API key is set")
    group.add_argument("--no-emulator", dest="emulator", action="store_false",
                       help="never fall back to the emulator")
    p.add_argument("--scenario", type=_non_empty,
                   help="emulator scenario, e.g. bursty, slow, go_away (see `duplex emulator --help`)")
    p.add_argument("--system-instruction", help="system instruction for the model")
    p.add_argument("--prebuffer-ms", type=_int_range(0, 10_000, " ms"), default=200,
                   help="jitter buffer before a turn plays, 0 to 10000 (default: 200)")
    p.add_argument("--latency", type=_latency, default=None,
                   help="device buffer: low (20 ms), high (the default, survives a busy machine: "
                        "150 ms on the native PulseAudio host, 80 ms on ALSA) or milliseconds")
    p.add_argument("--host", choices=HOSTS, default=None, help="audio system of real devices: " + HOSTS_HELP)
    p.add_argument("--demo-tool", action="store_true",
                   help="give the model a local_time function to call (ask it the time to see function calling)")
    p.add_argument("--no-typing", dest="typing", action="store_false",
                   help="do not read typed lines from stdin (by default each line goes to the model)")
    p.add_argument("--no-echo-cancellation", dest="echo_cancellation", action="store_false", default=True,
                   help="do not remove the speaker's sound from the microphone (it is removed by default, "
                        "so the model does not interrupt itself on speakers; with headphones it is not needed)")
    p.set_defaults(run=_cmd_talk)


def _cmd_talk(args: argparse.Namespace) -> int:
    import asyncio

    if args.video not in (None, "", "none"):
        require("duplex talk --video", "video")
    if args.scenario is not None:
        from .emulator.scenarios import ScenarioError, scenario_from

        try:
            scenario_from(args.scenario)
        except ScenarioError as exc:
            raise errors.InvalidInputError(f"--scenario {args.scenario}: {exc}") from None
    from .talk import TalkOptions, print_summary, talk

    options = TalkOptions(
        model=args.model,
        voice=args.voice,
        video=args.video,
        video_fps=args.video_fps,
        media_resolution=args.media_resolution,
        input_device=args.input_device,
        output_device=args.output_device,
        input_wav=Path(args.input_wav) if args.input_wav else None,
        output_wav=Path(args.output_wav) if args.output_wav else None,
        duration=args.duration,
        emulator=args.emulator,
        scenario=args.scenario,
        system_instruction=args.system_instruction,
        prebuffer_ms=args.prebuffer_ms,
        latency=args.latency,
        host=args.host,
        demo_tool=args.demo_tool,
        typing=args.typing,
        echo_cancellation=args.echo_cancellation,
    )
    result = asyncio.run(talk(options))
    print_summary(result)
    return 0


def _add_emulator(p: argparse.ArgumentParser) -> None:
    from .emulator import cli as emulator_cli

    emulator_cli.add_arguments(p)
    # The emulator's own parser takes any integer; the command line checks the range.
    for action in p._actions:
        if action.dest == "port":
            action.type = _int_range(0, 65_535)
    p.set_defaults(run=_cmd_emulator)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import cli as emulator_cli

    return emulator_cli.run(args)


def _add_bench(p: argparse.ArgumentParser) -> None:
    from .bench import cli as bench_cli

    bench_cli.add_arguments(p)
    p.set_defaults(run=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import cli as bench_cli

    return bench_cli.run(args)


#: name -> (help, extras it needs, function adding its arguments)
COMMANDS: dict[str, tuple[str, tuple[str, ...], Callable[[argparse.ArgumentParser], None]]] = {
    "devices": ("list audio devices", (), _add_devices),
    "demo": ("a full offline conversation: emulator, virtual devices, WAV files", ("live", "video"), _add_demo),
    "talk": ("talk to Gemini Live (or the local emulator when no API key is set)", ("live",), _add_talk),
    "bench": ("duplex against a pure-Python baseline: tables, JSON and plots", ("bench",), _add_bench),
    "emulator": ("serve the local Live API emulator for other clients", ("live",), _add_emulator),
}


def _version() -> str:
    from . import __version__

    return __version__


def build_parser(command: str | None = None, *, check_extras: bool = True) -> argparse.ArgumentParser:
    """The argument parser of the ``duplex`` command.

    Only ``command``'s arguments are defined (all of them if ``command`` is None), so
    parsing never imports what other sub-commands need. With ``check_extras`` a command
    whose extra is missing raises :class:`~duplex.extras.MissingExtraError` first.
    """
    parser = _Parser(
        prog="duplex",
        description="Real-time full-duplex audio for speech-to-speech models such as the Gemini Live API.",
        epilog=f"Installed from PyPI as {DISTRIBUTION}: pip install '{DISTRIBUTION}[all]' for every "
               "command (the core install is the engine and `duplex devices`).",
    )
    parser.add_argument("--version", action="version", version=f"duplex ({DISTRIBUTION}) {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, extras, add) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        if command is None or command == name:
            if extras and check_extras:
                require(f"duplex {name}", *extras)
            add(p)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    """The sub-command in ``argv``: the first word that is not an option (the top-level
    options take no values)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs a subcommand; user errors print one line and exit non-zero."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        command = _chosen_command(argv)
        args = build_parser(command if command is not None else "").parse_args(argv)
        return int(args.run(args))
    except errors.DuplexError as exc:
        print(f"duplex: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        live: Any = sys.modules.get("duplex.live")  # only loaded if a command needed it
        if live is not None and isinstance(exc, live.LiveSessionError):
            print(f"duplex: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
