"""The command line the extra benchmarks share (``python -m duplex.bench.resampler``,
``python -m duplex.bench.scale``): ``--quick``, the benchmark's own options, ``--json``;
prints the result's Markdown table and a summary, or the whole result as JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = ["extra_main"]


def extra_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    quick_help: str,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    summary: Callable[[dict[str, Any]], str],
    add_options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parses ``argv``, runs ``run(args)`` and prints ``result["markdown"]`` followed by
    ``summary(result)``, or the result as JSON with ``--json``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    if add_options is not None:
        add_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["markdown"])
        print(summary(result))
