"""The ``duplex`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import errors
from .live import LiveSessionError


def _cmd_devices(args: argparse.Namespace) -> int:
    from .devices import devices

    found = devices()
    print("index  id                           direction   channels         rate  default")
    for d in found:
        print(d)
    real = [d for d in found if d.host != "virtual" and d.direction != "unavailable"]
    if not any(d.is_default_output and d.output_channels for d in real):
        print(
            "\nNo default output device can be opened (no sound card or sound server?). "
            "The virtual device works anywhere: duplex demo."
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from .demo import run_demo

    asyncio.run(run_demo(Path(args.out)))
    return 0


def _device_ref(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _cmd_talk(args: argparse.Namespace) -> int:
    import asyncio

    from .talk import TalkOptions, print_summary, talk

    options = TalkOptions(
        model=args.model,
        voice=args.voice,
        video=args.video,
        video_fps=args.video_fps,
        media_resolution=args.media_resolution,
        input_device=_device_ref(args.input_device),
        output_device=_device_ref(args.output_device),
        input_wav=Path(args.input_wav) if args.input_wav else None,
        output_wav=Path(args.output_wav) if args.output_wav else None,
        duration=args.duration,
        emulator=args.emulator,
        scenario=args.scenario,
        system_instruction=args.system_instruction,
        prebuffer_ms=args.prebuffer_ms,
    )
    result = asyncio.run(talk(options))
    print_summary(result)
    return 0


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import cli as emulator_cli

    return emulator_cli.run(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import cli as bench_cli

    return bench_cli.run(args)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``duplex`` command."""
    parser = argparse.ArgumentParser(
        prog="duplex",
        description="Real-time full-duplex audio for speech-to-speech models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("devices", help="list audio devices")
    p.set_defaults(run=_cmd_devices)
    p = sub.add_parser("demo", help="a full offline conversation: emulator, virtual devices, WAV files")
    p.add_argument("--out", default="duplex-out", help="folder for the WAV files (default: duplex-out)")
    p.set_defaults(run=_cmd_demo)

    from .live import DEFAULT_MODEL

    p = sub.add_parser("talk", help="talk to Gemini Live (or the local emulator when no API key is set)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"Live model (default: {DEFAULT_MODEL})")
    p.add_argument("--voice", help="prebuilt voice name, e.g. Kore, Puck, Charon")
    p.add_argument("--video", default="none", help="camera, camera:N, screen, screen:N, a video or image PATH, or none")
    p.add_argument("--video-fps", type=_positive, default=1.0, help="video frames per second (default: 1)")
    p.add_argument("--media-resolution", choices=["low", "medium", "high"], help="media resolution of video frames")
    p.add_argument("--input-device", help="input device index or name (see `duplex devices`)")
    p.add_argument("--output-device", help="output device index or name")
    p.add_argument("--input-wav", help="use the virtual device with this WAV as the microphone")
    p.add_argument("--output-wav", help="use the virtual device and write the speaker to this WAV")
    p.add_argument("--duration", type=_positive, help="stop after this many seconds")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--emulator", dest="emulator", action="store_true", default=None,
                       help="use the local emulator even if an API key is set")
    group.add_argument("--no-emulator", dest="emulator", action="store_false",
                       help="never fall back to the emulator")
    p.add_argument("--scenario", help="emulator scenario, e.g. bursty, slow, go_away (see `duplex emulator --help`)")
    p.add_argument("--system-instruction", help="system instruction for the model")
    p.add_argument("--prebuffer-ms", type=int, default=200, help="jitter buffer before a turn plays (default: 200)")
    p.set_defaults(run=_cmd_talk)

    p = sub.add_parser("bench", help="duplex against a pure-Python baseline: tables, JSON and plots")
    from .bench import cli as bench_cli

    bench_cli.add_arguments(p)
    p.set_defaults(run=_cmd_bench)

    from .emulator import cli as emulator_cli

    p = sub.add_parser("emulator", help="serve the local Live API emulator for other clients")
    emulator_cli.add_arguments(p)
    p.set_defaults(run=_cmd_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs a subcommand; user errors print one line and exit non-zero."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except errors.DuplexError as exc:
        print(f"duplex: error: {exc}", file=sys.stderr)
        return 2
    except LiveSessionError as exc:
        print(f"duplex: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
