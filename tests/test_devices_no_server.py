"""Device listing and opening with no sound server and no sound card.

Every sound-server variable is removed and XDG_RUNTIME_DIR points at an empty directory,
so neither a PulseAudio/PipeWire server of this machine nor one started by another test
can be reached. libpulse is also told not to autospawn a daemon (it would as a non-root
user when ALSA's `pulse` PCM is probed).
"""

from __future__ import annotations

import os

import pytest

import duplex
from duplex.errors import DeviceError


def _pulseaudio_pids() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "pulseaudio":
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


def _has_sound_card() -> bool:
    try:
        with open("/proc/asound/cards") as f:
            text = f.read()
    except OSError:
        return False
    return "no soundcards" not in text and bool(text.strip())


needs_no_card = pytest.mark.skipif(
    _has_sound_card(), reason="this machine has a sound card: ALSA `default` opens it"
)


@pytest.fixture
def no_sound_server(monkeypatch, tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    client_conf = tmp_path / "client.conf"
    client_conf.write_text("autospawn = no\n")
    for var in (
        "PULSE_SERVER",
        "PULSE_COOKIE",
        "PULSE_RUNTIME_PATH",
        "PULSE_STATE_PATH",
        "PULSE_SINK",
        "PULSE_SOURCE",
        "PIPEWIRE_RUNTIME_DIR",
        "PIPEWIRE_REMOTE",
        "JACK_DEFAULT_SERVER",
        "DISPLAY",  # libpulse can find a server through X11 root-window properties
        "ALSA_CONFIG_PATH",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PULSE_CLIENTCONFIG", str(client_conf))
    monkeypatch.setenv("PULSE_COOKIE", str(tmp_path / "cookie"))  # keep ~/.config/pulse out
    before = _pulseaudio_pids()
    yield
    started = _pulseaudio_pids() - before
    assert not started, f"a pulseaudio daemon was autospawned: {started}"


def test_devices_without_a_sound_server(no_sound_server):
    devs = duplex.devices()
    listing = "\n".join(str(d) for d in devs)
    assert devs, "devices() returned nothing"
    assert devs[-1].id == "virtual" and devs[-1].index == -1, listing
    assert devs[-1].direction == "duplex", listing
    assert [d.index for d in devs[:-1]] == list(range(len(devs) - 1)), listing
    for d in devs:
        assert d.direction in ("duplex", "input", "output", "unavailable"), d
        assert str(d)  # printable
    # Without a server, ALSA's `pulse` PCM is listed but cannot be opened.
    for d in devs:
        if d.id == "alsa:pulse":
            assert d.direction == "unavailable", listing


@needs_no_card
def test_default_devices_without_a_sound_server_raise_a_helpful_error(no_sound_server):
    with pytest.raises(DeviceError) as info:
        with duplex.AudioEngine():  # cpal, default devices
            pass
    msg = str(info.value)
    assert "sound server" in msg or "sound card" in msg, msg
    assert "virtual" in msg, msg  # says what to do without one
    assert isinstance(info.value, OSError)
    del info  # hold no engine state past the test


@needs_no_card
def test_output_only_default_device_without_a_sound_server(no_sound_server):
    with pytest.raises(DeviceError, match="virtual"):
        duplex.AudioEngine(input_device=False).start()


def test_devices_lists_again_after_the_failed_open(no_sound_server):
    """Nothing of the failed opens stays behind: a fresh listing still works (cpal reloads
    ALSA's configuration only once every cpal object is gone)."""
    first = [d.id for d in duplex.devices()]
    second = [d.id for d in duplex.devices()]
    assert first == second
