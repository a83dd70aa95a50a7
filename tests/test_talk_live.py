"""`duplex talk`'s conversation flow: a typed line and the demo tool reach the model, and
the first Ctrl-C ends the talk at once even when the server is frozen."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import write_wav

from duplex.emulator.certs import generate_certificate
from duplex.live import LiveConversation
from duplex.talk import TalkOptions, talk, typed_line


def test_a_typed_line_and_the_demo_tool_reach_the_model(tmp_path, monkeypatch):
    mic = write_wav(tmp_path / "mic.wav", np.zeros(16_000 * 4, np.int16), 16_000)
    monkeypatch.setattr(sys, "stdin", io.StringIO("What does local_time say?\n"))
    opts = TalkOptions(input_wav=mic, output_wav=tmp_path / "out.wav", emulator=True, demo_tool=True, quiet=True)
    result = asyncio.run(asyncio.wait_for(talk(opts, out=io.StringIO()), 60))
    kinds = [e.kind for e in result.events]
    assert "text_sent" in kinds and "tool_call" in kinds and "tool_result" in kinds
    call = next(e for e in result.events if e.kind == "tool_call")
    assert call.text == "local_time"
    answer = next(e for e in result.events if e.kind == "tool_result").data["response"]
    assert result.transcript[0] == ("user", "What does local_time say?")
    assert any(role == "model" and answer["time"] in text for role, text in result.transcript)


def test_typed_commands_mute_unmute_and_quit():
    calls = []

    class Conv:
        def mute(self):
            calls.append("mute")

        def unmute(self):
            calls.append("unmute")

        def stop(self):
            calls.append("stop")

        def send_text(self, text):
            calls.append(text)

    conv = Conv()
    for line in ("/mute\n", "/unmute\n", "  \n", "hello there\n", "/quit\n"):
        typed_line(conv, line)  # type: ignore[arg-type]
    assert calls == ["mute", "unmute", "hello there", "stop"]
    assert LiveConversation.send_text  # the real method the lines go to


def test_first_ctrl_c_ends_talk_at_once_with_a_frozen_server(tmp_path):
    # A server that accepts TCP and then never answers (as a stopped process would): the
    # TLS handshake waits forever.
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(8)
    port = frozen.getsockname()[1]
    certs = generate_certificate()
    mic = write_wav(tmp_path / "mic.wav", np.zeros(16_000 * 30, np.int16), 16_000)
    env = {**os.environ, "GEMINI_API_KEY": "fake", "GOOGLE_GEMINI_BASE_URL": f"https://127.0.0.1:{port}",
           "SSL_CERT_FILE": str(certs.cert_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "duplex", "talk", "--no-emulator", "--no-typing", "--input-wav", str(mic),
         "--output-wav", str(tmp_path / "out.wav")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "talking to the Gemini Live API" in line, line
        time.sleep(1.5)  # inside the connect, waiting for the frozen server
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        frozen.close()
        certs.remove()
    assert proc.returncode == 0, out
    assert "stopping" in out and "transcript" in out
    assert "Traceback" not in out
    # It used to wait for the connect to time out (or for ever); now it ends at once.
    print(f"Ctrl-C to exit with a frozen server: {took:.2f} s")
    assert took < 3.0, f"took {took:.2f} s after Ctrl-C"
    assert Path(tmp_path / "out.wav").stat().st_size > 44
