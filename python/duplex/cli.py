"""The ``duplex`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import errors


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
    from .demo import run_demo

    result = run_demo(Path(args.out), device_rate=args.rate)
    print(f"\nwrote {result.captured_wav}, {result.output_wav}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``duplex`` command."""
    parser = argparse.ArgumentParser(
        prog="duplex",
        description="Real-time full-duplex audio for speech-to-speech models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("devices", help="list audio devices")
    p.set_defaults(run=_cmd_devices)
    p = sub.add_parser("demo", help="offline round trip on the virtual device, writes WAV files")
    p.add_argument("--out", default="duplex-out", help="folder for the WAV files (default: duplex-out)")
    p.add_argument("--rate", type=int, default=48_000, help="virtual device sample rate (default: 48000)")
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs a subcommand; user errors print one line and exit non-zero."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except errors.DuplexError as exc:
        print(f"duplex: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
