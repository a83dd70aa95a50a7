"""The `duplex` command: every user error is one clear line and a non-zero exit, and
`duplex talk` works against a `duplex emulator` running in another process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import read_wav, write_wav

from duplex.demo import speak

DUPLEX = [sys.executable, "-m", "duplex"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "SSL_CERT_FILE"}}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DUPLEX, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(), stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def mic(tmp_path_factory) -> Path:
    """A short question followed by silence, as a 16-bit WAV."""
    voice, _ = speak("What time is it?", 0)
    pcm = np.concatenate([np.zeros(4_410, np.float32), voice, np.zeros(22_050 * 2, np.float32)])
    return write_wav(tmp_path_factory.mktemp("cli") / "mic.wav", (pcm * 32767).astype(np.int16), 22_050)


def one_error_line(result: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_no_key_and_no_emulator(mic):
    one_error_line(run("talk", "--no-emulator", "--input-wav", str(mic)), 2,
                   r"^duplex: error: no API key: set GEMINI_API_KEY")


def test_unknown_device():
    one_error_line(run("talk", "--input-device", "no-such-microphone"), 2,
                   r"no audio device named 'no-such-microphone'; see duplex.devices\(\)")


def test_bad_video_source(mic, tmp_path):
    one_error_line(run("talk", "--input-wav", str(mic), "--video", str(tmp_path / "missing.mp4")), 2,
                   r"^duplex: error: --video .*missing.mp4")


def test_missing_input_wav(tmp_path):
    one_error_line(run("talk", "--input-wav", str(tmp_path / "nope.wav")), 2, r"--input-wav .*nope.wav: no such file")


def test_connection_refused(mic, tmp_path):
    env = clean_env(GOOGLE_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL="https://127.0.0.1:9")
    result = run("talk", "--no-emulator", "--input-wav", str(mic), "--output-wav", str(tmp_path / "o.wav"), env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"^duplex: error: cannot reach the Live API at https://127.0.0.1:9", result.stderr, re.M)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["talk", "--media-resolution", "ultra"], r"invalid choice: 'ultra'"),
        (["talk", "--duration", "-3"], r"must be a positive number"),
        (["talk", "--emulator", "--no-emulator"], r"not allowed with argument"),
        (["fly"], r"invalid choice: 'fly'"),
        ([], r"the following arguments are required: command"),
    ],
)
def test_bad_options(args, pattern):
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(pattern, result.stderr.splitlines()[-1]), result.stderr


def test_devices_lists_the_virtual_device():
    result = run("devices")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s*-1\s+virtual\s+duplex", result.stdout, re.M)


def test_talk_against_an_emulator_in_another_process(mic, tmp_path):
    server = subprocess.Popen([*DUPLEX, "emulator", "--quiet"], stdout=subprocess.PIPE, text=True,
                              env=clean_env(), stdin=subprocess.DEVNULL)
    try:
        url = cert = None
        deadline = time.monotonic() + 30
        while (url is None or cert is None) and time.monotonic() < deadline:
            line = server.stdout.readline()
            if m := re.match(r"\s*base URL\s+(\S+)", line):
                url = m.group(1)
            if m := re.match(r"\s*certificate\s+(\S+)", line):
                cert = m.group(1)
        assert url and cert, "the emulator printed its base URL and certificate"
        out = tmp_path / "answer.wav"
        env = clean_env(GOOGLE_API_KEY="emulator", GOOGLE_GEMINI_BASE_URL=url, SSL_CERT_FILE=cert)
        result = run("talk", "--input-wav", str(mic), "--output-wav", str(out), env=env, timeout=90)
        assert result.returncode == 0, result.stderr
        assert f"talking to the Gemini Live API at {url}" in result.stdout
        assert re.search(r"^\s+model\s+You said something for \d\.\d seconds\.", result.stdout, re.M), result.stdout
        assert "0 underruns" in result.stdout
        audio, rate, channels = read_wav(out)
        assert rate == 48_000
        assert np.sum(np.abs(audio[:, 0]) > 1e-3) > 0.5 * rate, "the answer is in the output WAV"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)
    assert server.returncode == 0


def test_demo_runs_a_whole_offline_conversation(tmp_path):
    result = run("demo", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "talking to the local Live API emulator" in out
    assert "[interrupted after" in out
    assert re.search(r"sent \d+ audio chunks and \d+ video frames", out)
    assert (tmp_path / "speaker.wav").stat().st_size > 100_000
