"""Every script in examples/ runs, offline: against the local emulator on the virtual device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GEMINI_API_KEY", "GOOGLE_API_KEY"}}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL, cwd=EXAMPLES)


def test_own_live_client_plays_the_answer():
    result = run("own_live_client.py", "--offline")
    assert result.returncode == 0, result.stderr
    assert "You said something for 1.0 seconds." in result.stdout and "[turn complete]" in result.stdout
    played = int(result.stdout.split("played ")[1].split()[0])
    assert played > 48_000  # more than a second of the answer at the device's 48 kHz


def test_conversation_events_shows_the_exchange():
    result = run("conversation_events.py", "--offline")
    assert result.returncode == 0, result.stderr
    assert "[connected]" in result.stdout and "[turn complete] model: You said something" in result.stdout
    assert result.stdout.rstrip().endswith("model: You said something for 1.0 seconds.")


@pytest.mark.parametrize("name", ["test_with_virtual_device.py"])
def test_the_example_test_file_passes(name):
    result = run("-m", "pytest", "-q", "-p", "no:cacheprovider", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
