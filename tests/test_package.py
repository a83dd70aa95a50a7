"""duplex as an installed package: one version, lazy imports, extras that say what to install,
and a command line whose every bad argument is one line and exit status 2."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys

import pytest

import duplex
from duplex import cli, extras

DUPLEX = [sys.executable, "-m", "duplex"]
HEAVY = ("numpy", "google.genai", "cv2", "matplotlib", "websockets", "cryptography", "asyncio")


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", code] if code is not None else [*DUPLEX, *args]
    env = {k: v for k, v in os.environ.items() if k not in {"GEMINI_API_KEY", "GOOGLE_API_KEY"}}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


def test_one_version_everywhere():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"duplex ({extras.DISTRIBUTION}) {duplex.__version__}"
    assert duplex.__version__ == importlib.metadata.version(extras.DISTRIBUTION)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", duplex.__version__)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["devices"]])
def test_the_command_starts_without_the_heavy_imports(argv):
    """What `duplex --help` / `devices` import, seen from inside the process (a behaviour, not
    a timing: google-genai alone takes over a second to import)."""
    code = ("import sys, json\nfrom duplex import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))" % (argv,))
    result = run(code=code)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_library_imports_numpy_only_when_used():
    result = run(code="import sys, duplex; print('numpy' in sys.modules); duplex.AudioEngine; print('numpy' in sys.modules)")
    assert result.stdout.split() == ["False", "True"], result.stderr


@pytest.mark.parametrize(
    ("module", "extra"),
    [("duplex.live", "live"), ("duplex.emulator", "live"), ("duplex.video.sources", "video")],
)
def test_importing_without_an_extra_names_the_extra(module, extra):
    blocked = {"live": "google.genai", "video": "cv2"}[extra]
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"try:\n    import {module}\nexcept ImportError as e:\n"
            "    print(type(e).__name__, '|', e)")
    result = run(code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingExtraError | "), result.stdout
    assert f"pip install '{extras.DISTRIBUTION}[{extra}]'" in result.stdout


def test_the_live_layer_needs_no_opencv():
    result = run(code="import sys; sys.modules['cv2'] = None\nimport duplex.live\n"
                      "from duplex.video import media_resolution_enum\nprint(media_resolution_enum('low').name)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MEDIA_RESOLUTION_LOW"


@pytest.mark.parametrize(
    ("argv", "blocked", "hint"),
    [
        (["talk", "--input-wav", "x.wav"], "google.genai", "[live]"),
        (["emulator"], "websockets", "[live]"),
        (["demo"], "cv2", "[live,video]"),
        (["bench", "--quick"], "matplotlib", "[bench]"),
        (["bench", "--quick"], "soxr", "[bench]"),
    ],
)
def test_a_command_without_its_extra_says_what_to_install_before_any_work(argv, blocked, hint, monkeypatch, capsys, tmp_path):
    real = extras._present
    monkeypatch.setattr(extras, "_present", lambda name: name != blocked and real(name))
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install '{extras.DISTRIBUTION}{hint}'" in err[0], err
    assert list(tmp_path.iterdir()) == []  # nothing was written: it stopped before any work


def one_error_line(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["talk", "--prebuffer-ms", "-5"], r"--prebuffer-ms: must be from 0 to 10000 ms, got -5"),
        (["talk", "--prebuffer-ms", "lots"], r"--prebuffer-ms: must be a whole number"),
        (["talk", "--scenario", "bogus"], r"--scenario bogus: unknown scenario 'bogus'"),
        (["talk", "--input-device", "-1"], r"--input-device: a device index is 0 or more, got -1"),
        (["talk", "--output-device", ""], r"--output-device: must not be empty"),
        (["emulator", "--port", "99999"], r"--port: must be from 0 to 65535, got 99999"),
        (["emulator", "--scenario", "bogus"], r"unknown scenario 'bogus'"),
        (["talk", "--model", ""], r"--model: must not be empty"),
        (["talk", "--duration", "nan"], r"--duration: must be a positive number, got nan"),
        (["talk", "--duration", "inf"], r"--duration: must be a positive number, got inf"),
        (["talk", "--video-fps", "0"], r"--video-fps: must be a positive number"),
        (["talk", "--media-resolution", "ultra"], r"invalid choice: 'ultra'"),
        (["bench", "--seconds", "nan"], r"--seconds: must be a positive number"),
        (["bench", "--scenarios", "nope"], r"unknown scenario 'nope'"),
        (["bench", "--implementations", "nope"], r"unknown implementation 'nope'"),
        (["fly"], r"invalid choice: 'fly'"),
        ([], r"the following arguments are required: command"),
    ],
)
def test_every_bad_argument_is_one_line_and_exit_2(args, pattern):
    one_error_line(run(*args), pattern)


def test_devices_stays_the_function_after_the_lazy_imports():
    result = run(code="import duplex, duplex.engine, duplex.devices; print(callable(duplex.devices), "
                      "duplex.AudioEngine.__module__)")
    assert result.stdout.split() == ["True", "duplex.engine"], result.stderr
