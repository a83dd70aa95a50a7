"""Command line of the emulator: ``python -m duplex.emulator`` and ``duplex emulator``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .scenarios import PRESETS, ScenarioError, scenario_from
from .server import DEFAULT_MODEL, LiveEmulator
from .voice import Voice


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the emulator's options to ``parser`` (shared with the ``duplex`` command)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: 0 = pick a free one)")
    parser.add_argument("--scenario", default="normal",
                        help=f"default scenario: presets {', '.join(PRESETS)} joined with '+', "
                             "and field=value overrides (default: normal)")
    parser.add_argument("--cert-dir", default=None,
                        help="folder for cert.pem/key.pem (default: a new temporary folder)")
    parser.add_argument("--no-espeak", action="store_true", help="answer with the synthetic voice")
    parser.add_argument("--quiet", action="store_true", help="do not log each session")
    return parser


def usage_text(emu: LiveEmulator) -> str:
    """How to point the google-genai SDK at a running emulator."""
    url, cert = emu.base_url, emu.cert_path
    return f"""duplex Live API emulator (speech detection by energy, answers spoken by {emu.voice.engine})
  base URL     {url}
  certificate  {cert}   (trust it; made for this run only)
  scenario     {'+'.join(emu.default_scenario.names)}

From another shell, set both BEFORE the genai.Client is constructed (the SDK builds its
WebSocket TLS context in Client.__init__ from SSL_CERT_FILE):
  export GOOGLE_GEMINI_BASE_URL={url}
  export SSL_CERT_FILE={cert}
  export GOOGLE_API_KEY=emulator      # any non-empty key
  (SSL_CERT_FILE replaces the default CA bundle in that process: real HTTPS calls will fail.)

Or in Python, without environment variables:
  import ssl; from google import genai
  client = genai.Client(api_key="emulator", http_options={{
      "base_url": "{url}", "api_version": "v1beta",
      "async_client_args": {{"ssl": ssl.create_default_context(cafile="{cert}")}}}})
  async with client.aio.live.connect(model="{DEFAULT_MODEL}",
                                     config={{"response_modalities": ["AUDIO"]}}) as session: ...

Per-connect scenario: config={{"http_options": {{"headers": {{"x-duplex-scenario": "bursty+close_1011"}}}}}}
Ctrl-C to stop."""


async def serve(args: argparse.Namespace) -> None:
    """Runs the emulator until SIGINT/SIGTERM."""
    emu = LiveEmulator(args.host, args.port, scenario=scenario_from(args.scenario),
                       voice=Voice(use_espeak=not args.no_espeak), cert_dir=args.cert_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emu:
        print(usage_text(emu), flush=True)
        await stop.wait()
        print("\nstopping", flush=True)


def run(args: argparse.Namespace) -> int:
    """Runs the emulator with parsed arguments; returns the exit status."""
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        scenario_from(args.scenario)
    except ScenarioError as exc:
        print(f"duplex emulator: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"duplex emulator: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m duplex.emulator``."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m duplex.emulator",
        description="Local Gemini Live API emulator for the google-genai SDK (TLS on 127.0.0.1)."))
    return run(parser.parse_args(argv))
