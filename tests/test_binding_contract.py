"""The binding contract: the typed Python records agree with the engine's field lists.

The field lists of Stats, InterruptReport, DeviceInfo and the device parameters are declared
once, in the engine crate (``rust/engine/src/fields.rs``), and converted generically by the
bindings. These tests fail when the Python classes (and their docs) drift from them.
"""

from __future__ import annotations

import dataclasses

import pytest

import duplex
from duplex import _engine
from duplex.devices import DeviceInfo
from duplex.engine import InterruptReport, Stats


def _declared(cls: type) -> list[tuple[str, str]]:
    # Annotations are strings here (``from __future__ import annotations``).
    return [(f.name, str(f.type)) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(
    ("cls", "engine_fields"),
    [
        (Stats, _engine.STATS_FIELDS),
        (InterruptReport, _engine.INTERRUPT_FIELDS),
        (DeviceInfo, _engine.DEVICE_INFO_FIELDS),
    ],
    ids=["Stats", "InterruptReport", "DeviceInfo"],
)
def test_python_record_matches_engine_field_list(cls: type, engine_fields: tuple[tuple[str, str], ...]) -> None:
    assert _declared(cls) == list(engine_fields)


def test_stats_and_reports_come_back_with_engine_types() -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=0)) as engine:
        assert engine.read(timeout=2.0) is not None
        engine.play(b"\x00\x01" * 2400)
        report = engine.interrupt()
        stats = engine.stats()
        params = engine.device_params
    for record, fields in ((stats, _engine.STATS_FIELDS), (report, _engine.INTERRUPT_FIELDS)):
        for name, kind in fields:
            value = getattr(record, name)
            assert type(value).__name__ == kind, (name, value)
    assert isinstance(report.heard_frames, int)
    assert list(params) == [name for name, _ in _engine.DEVICE_PARAMS_FIELDS]
    assert params["output_rate_hz"] == 48_000 and params["period_frames"] == 480


def test_device_listing_converts_generically() -> None:
    for info in duplex.devices():
        for name, kind in _engine.DEVICE_INFO_FIELDS:
            assert type(getattr(info, name)).__name__ == kind
