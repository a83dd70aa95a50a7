"""The optional parts of duplex and the extras that install them.

The core install (``pip install duplex-engine``) is the engine and numpy. The rest is
behind extras, and whatever needs one says which, in one line:

========  ===============================================  ==========================
extra     installs                                          needed by
========  ===============================================  ==========================
live      google-genai, websockets, cryptography            :mod:`duplex.live`,
                                                            :mod:`duplex.emulator`,
                                                            ``duplex talk|emulator|demo``
video     opencv-python-headless, mss                       :mod:`duplex.video`,
                                                            ``duplex talk --video``, demo
bench     sounddevice, soxr, scipy, matplotlib, OpenCV,     ``duplex bench``
          pytest-benchmark
all       all of the above
========  ===============================================  ==========================

Checks use :func:`importlib.util.find_spec`, which looks for a module without importing
it, so asking costs microseconds rather than the second google-genai takes to import.
"""

from __future__ import annotations

import importlib.util

from .errors import DuplexError

__all__ = ["DISTRIBUTION", "EXTRAS", "MissingExtraError", "missing", "require"]

#: The name duplex is published under on PyPI (the import name stays ``duplex``).
DISTRIBUTION = "duplex-engine"

#: For each extra: the modules it provides, with the distribution that ships each one.
EXTRAS: dict[str, dict[str, str]] = {
    "live": {"google.genai": "google-genai", "websockets": "websockets", "cryptography": "cryptography"},
    "video": {"cv2": "opencv-python-headless", "mss": "mss"},
    "bench": {"matplotlib": "matplotlib", "soxr": "soxr", "scipy": "scipy", "sounddevice": "sounddevice",
              "cv2": "opencv-python-headless"},
}


class MissingExtraError(DuplexError, ModuleNotFoundError):
    """Something needs an optional dependency that is not installed; the message names the
    extra to install. Also a :class:`ModuleNotFoundError`, so ``except ImportError`` works."""


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def missing(*extras: str) -> list[str]:
    """The distributions of ``extras`` whose modules cannot be found (empty: all there)."""
    out: list[str] = []
    for extra in extras:
        for module, dist in EXTRAS[extra].items():
            if dist not in out and not _present(module):
                out.append(dist)
    return out


def install_hint(*extras: str) -> str:
    """The pip command that installs ``extras``."""
    return f"pip install '{DISTRIBUTION}[{','.join(extras)}]'"


def require(what: str, *extras: str) -> None:
    """Raises :class:`MissingExtraError` naming the extras to install unless every module of
    ``extras`` is importable. ``what`` is the feature, e.g. ``"duplex talk"``."""
    absent = missing(*extras)
    if absent:
        names = " and ".join(f"'{e}'" for e in extras)
        word = "extra" if len(extras) == 1 else "extras"
        raise MissingExtraError(
            f"{what} needs the {names} {word} ({', '.join(absent)} not installed): {install_hint(*extras)}")
