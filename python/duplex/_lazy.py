"""Lazy package attributes (PEP 562), shared by ``duplex`` and ``duplex.video``: a name is
imported from its submodule on first use, so importing the package stays cheap (the
``duplex`` command starts without numpy, the Live layer imports video's framing without
OpenCV)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``:
    ``exports`` maps each lazy name to the submodule (relative to the package) it comes
    from. A name, once imported, is stored in the package, so it is looked up only once."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
