"""Scenarios: how the emulator behaves in one session (pacing, misbehaviour, lifetime).

A scenario is a :class:`Scenario` value. It is chosen per emulator (constructor default)
and refined per connection through the ``x-duplex-scenario`` request header of the
WebSocket upgrade — the only per-connect knob the SDK offers
(``config={"http_options": {"headers": {...}}}``).

The header holds tokens separated by ``+``, ``,`` or spaces, applied left to right on top
of the emulator's default: preset names (:data:`PRESETS`) and ``field=value``
overrides of any :class:`Scenario` field, e.g.::

    x-duplex-scenario: bursty+premature_turn_complete
    x-duplex-scenario: go_away,connection_lifetime_s=2,go_away_lead_s=1
    x-duplex-scenario: close_1011,close_after_s=0.5
    x-duplex-scenario: speed=8,burst_s=0.2
    x-duplex-scenario: slow+reply_template="It is sunny, and mild all weekend."

A quoted value keeps its spaces, commas and plus signs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from .tools import parse_scenario_args

#: One token of a scenario string: ``field="a quoted value"`` (or single quotes), else a run of
#: characters up to the next ``+``, ``,`` or space.
_TOKEN = re.compile(r"""[\w.]+=(?:"[^"]*"|'[^']*')|[^+,\s]+""")

#: The templates of a :class:`Scenario` and sample values of the fields each may use.
_TEMPLATE_FIELDS: dict[str, dict[str, Any]] = {
    "reply_template": {"seconds": 1.5},
    "text_reply_template": {"text": "hello"},
    "input_transcription_template": {"seconds": 1.5},
    "tool_reply_template": {"name": "local_time", "result": "12:00"},
    "tool_filler_template": {"name": "local_time"},
}

#: The header a client sets (per connect) to choose a scenario.
SCENARIO_HEADER = "x-duplex-scenario"


class ScenarioError(ValueError):
    """An unknown preset, field or a bad value in a scenario string."""


@dataclass(frozen=True)
class Scenario:
    """Everything that shapes one session's behaviour.

    Answer pacing: the first ``burst_s`` of an answer is sent at once, the rest at
    ``speed`` × real time (4 by default, as the service streams faster than real time;
    1.0 = real time, 0.8 = slower than real time), in chunks of ``chunk_ms``. With
    ``bursty_period_s`` set, chunks are held back and released in bursts every that many
    seconds. ``turnComplete`` follows when the answer would have finished playing at
    ``playout_speed`` (``duration / playout_speed`` after its start); until then a
    barge-in interrupts it. The ``realtime`` preset restores the emulator's old pacing
    (0.5 s burst, then real time).

    Bundling (on by default, as the service does): ``parts_per_message`` audio parts per
    ``modelTurn``, the output transcription in the same message as its audio, and
    ``usageMetadata`` in the ``turnComplete`` message. ``bundle=false`` (preset
    ``unbundled``) sends one item per message.

    Attributes:
        names: the presets this scenario was built from (for the records).
        chunk_ms: length of each audio chunk sent (40-200 ms is realistic).
        burst_s: audio sent immediately at the start of an answer.
        speed: pacing after the burst, relative to real time.
        bursty_period_s: release chunks only every this many seconds (None = smooth).
        playout_speed: ``turnComplete`` is due when the answer has played at this speed.
        bundle: combine items in messages as the service does.
        parts_per_message: audio parts per ``modelTurn`` message when bundling.
        answer_delay_ms: "thinking" time between the end of the user's turn and the
            first answer chunk (speech synthesis time comes on top).
        premature_turn_complete_fraction: send ``turnComplete`` after this fraction of
            the answer audio; the rest (and ``generationComplete``) follows it.
        close_code: close the connection with this code (e.g. 1011) when triggered.
        close_reason: reason sent with ``close_code``.
        close_after_answers: trigger ``close_code`` after this many completed answers.
        close_after_s: trigger ``close_code`` this long after setup (None = off).
        connection_lifetime_s: the connection ends this long after setup.
        go_away_lead_s: ``goAway`` is sent this long before the end of the lifetime.
        close_after_go_away_s: close this long after ``goAway`` (None = at the end of
            the lifetime, i.e. after ``timeLeft``).
        expiry_close_code: close code when the lifetime ends (the service: 1011).
        expiry_close_reason: reason sent with ``expiry_close_code``.
        handleless_updates: after a barge-in, say ``{"resumable": true}`` with no new
            handle (the last handle still resumes), as the service may.
        reply_template: what the voice says after speech; ``{seconds}`` = speech length.
        text_reply_template: reply to text input; ``{text}`` = the text.
        input_transcription_template: honest placeholder transcription of speech.
        tool_call: call this declared function when a user turn ends (``*`` = the first
            declared function; None = only when a text turn names a function).
        tool_args: arguments of ``tool_call`` as ``name:value;name2:value2``.
        tool_call_limit: how many user turns ``tool_call`` applies to (None = every turn).
        tool_behavior_default: behaviour of declarations without ``behavior``:
            ``BLOCKING``, ``NON_BLOCKING`` or ``auto`` (NON_BLOCKING on native-audio
            models, whose current versions call asynchronously by default; else BLOCKING).
        tool_reply_template: answer spoken with a function's result (``{name}``, ``{result}``).
        tool_filler_template: what the model says while a NON_BLOCKING call runs.
        interrupted_turn_complete: when the ``turnComplete`` of a cut turn comes:
            ``at_once`` (right after ``interrupted``), ``with_next`` (in the first audio
            message of the next answer) or ``never``. Clients must not wait for it.
        pong_delay_s: answer keepalive pings this late (the service's have taken 8-30 s).
        any_model: serve any model name (the service closes 1008 on models it does not
            serve for ``bidiGenerateContent``; so does the emulator unless this is set).
        vad_threshold_dbfs: energy VAD threshold.
        vad_start_ms: voiced time that confirms the start of speech.
        vad_end_ms: silence that confirms the end of speech.
    """

    names: tuple[str, ...] = ("normal",)
    chunk_ms: int = 40
    burst_s: float = 1.0
    speed: float = 4.0
    bursty_period_s: float | None = 0.2
    playout_speed: float = 1.0
    bundle: bool = True
    parts_per_message: int = 2
    answer_delay_ms: float = 0.0
    premature_turn_complete_fraction: float | None = None
    close_code: int | None = None
    close_reason: str = "Internal error encountered."
    close_after_answers: int | None = None
    close_after_s: float | None = None
    connection_lifetime_s: float = 600.0
    go_away_lead_s: float = 50.0
    close_after_go_away_s: float | None = None
    expiry_close_code: int = 1011
    expiry_close_reason: str = "Deadline expired before operation could complete."
    handleless_updates: bool = True
    reply_template: str = "You said something for {seconds:.1f} seconds."
    text_reply_template: str = "You wrote: {text}"
    input_transcription_template: str = "[speech {seconds:.1f} s]"
    tool_call: str | None = None
    tool_args: str = ""
    tool_call_limit: int | None = 1
    tool_behavior_default: str = "auto"
    tool_reply_template: str = "The {name} function says {result}."
    tool_filler_template: str = "Let me check with {name}."
    interrupted_turn_complete: str = "at_once"
    pong_delay_s: float = 0.0
    any_model: bool = False
    vad_threshold_dbfs: float = -40.0
    vad_start_ms: int = 100
    vad_end_ms: int = 500

    def __post_init__(self) -> None:
        if not 20 <= self.chunk_ms <= 1000:
            raise ScenarioError(f"chunk_ms must be within 20..1000, got {self.chunk_ms}")
        if self.speed <= 0 or not math.isfinite(self.speed):
            raise ScenarioError(f"speed must be > 0, got {self.speed}")
        if self.playout_speed <= 0 or not math.isfinite(self.playout_speed):
            raise ScenarioError(f"playout_speed must be > 0, got {self.playout_speed}")
        if not 1 <= self.parts_per_message <= 20:
            raise ScenarioError(f"parts_per_message must be within 1..20, got {self.parts_per_message}")
        if self.interrupted_turn_complete not in ("at_once", "with_next", "never"):
            raise ScenarioError("interrupted_turn_complete must be at_once, with_next or never")
        if not 0 <= self.pong_delay_s <= 300:
            raise ScenarioError(f"pong_delay_s must be within 0..300, got {self.pong_delay_s}")
        if self.burst_s < 0:
            raise ScenarioError(f"burst_s must be >= 0, got {self.burst_s}")
        if self.bursty_period_s is not None and self.bursty_period_s <= 0:
            raise ScenarioError("bursty_period_s must be > 0")
        f = self.premature_turn_complete_fraction
        if f is not None and not 0.0 < f < 1.0:
            raise ScenarioError("premature_turn_complete_fraction must be within (0, 1)")
        if self.close_code is not None and (not 1000 <= self.close_code <= 4999 or self.close_code in (1005, 1006)):
            raise ScenarioError(f"close_code {self.close_code} cannot be sent in a close frame")
        if self.tool_behavior_default not in ("auto", "BLOCKING", "NON_BLOCKING"):
            raise ScenarioError("tool_behavior_default must be auto, BLOCKING or NON_BLOCKING")
        try:
            parse_scenario_args(self.tool_args)
        except ValueError as exc:
            raise ScenarioError(f"tool_args: {exc}") from None
        if self.connection_lifetime_s <= 0 or self.go_away_lead_s < 0:
            raise ScenarioError("connection_lifetime_s must be > 0 and go_away_lead_s >= 0")
        # A template that cannot be filled would fail every answer of the session (a traceback
        # in the emulator and a 1011 close in a loop), so it is refused here with its fields.
        for name, fields in _TEMPLATE_FIELDS.items():
            try:
                getattr(self, name).format(**fields)
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                raise ScenarioError(f"{name} {getattr(self, name)!r} cannot be filled "
                                    f"({type(exc).__name__}: {exc}); it may use "
                                    f"{', '.join('{' + k + '}' for k in fields) or 'no fields'}, "
                                    "and a literal brace is written {{ or }}") from None

    def send_offset_s(self, audio_time_s: float) -> float:
        """Seconds after the answer's start at which audio starting at ``audio_time_s`` is sent."""
        offset = max(0.0, audio_time_s - self.burst_s) / self.speed
        if self.bursty_period_s and offset > 0:
            offset = math.ceil(offset / self.bursty_period_s - 1e-9) * self.bursty_period_s
        return offset

    def playout_s(self, duration_s: float) -> float:
        """When, after the answer's start, ``turnComplete`` is due (the answer has played)."""
        return duration_s / self.playout_speed

    @property
    def go_away_at_s(self) -> float:
        """Seconds after setup at which ``goAway`` is sent."""
        return max(0.0, self.connection_lifetime_s - self.go_away_lead_s)

    @property
    def close_at_s(self) -> float:
        """Seconds after setup at which the connection is closed for expiry."""
        if self.close_after_go_away_s is None:
            return self.connection_lifetime_s
        return min(self.connection_lifetime_s, self.go_away_at_s + self.close_after_go_away_s)

    def apply(self, spec: str) -> Scenario:
        """This scenario refined by a scenario string (presets and ``field=value`` tokens)."""
        scenario = self
        for token in _TOKEN.findall(spec):
            if "=" in token:
                key, _, raw = token.partition("=")
                raw = raw.strip()
                if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
                    raw = raw[1:-1]  # a quoted value keeps its spaces, commas and plus signs
                scenario = scenario._set(key.strip(), raw)
            elif token in PRESETS:
                names = scenario.names if scenario.names != ("normal",) else ()
                if token == "normal":
                    changes: dict[str, Any] = {}
                else:
                    changes = dict(PRESETS[token])
                    names = names + (token,)
                scenario = dataclasses.replace(scenario, names=names or ("normal",), **changes)
            else:
                raise ScenarioError(f"unknown scenario {token!r}; presets: {', '.join(PRESETS)}; "
                                    "or field=value")
        return scenario

    def _set(self, key: str, raw: str) -> Scenario:
        fields = {f.name: f for f in dataclasses.fields(self) if f.name != "names"}
        if key not in fields:
            raise ScenarioError(f"unknown scenario field {key!r}; fields: {', '.join(fields)}")
        kind = str(fields[key].type)  # annotations are strings here ("float | None", ...)
        try:
            if raw.lower() in ("none", "off", "") and "None" in kind:
                value: Any = None
            elif kind.startswith("bool"):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1", "yes", "on")
            elif kind.startswith("int"):
                value = int(raw)
            elif kind.startswith("float"):
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise ScenarioError(f"bad value for {key}: {raw!r}") from None
        return dataclasses.replace(self, **{key: value})


#: Named presets; they compose (later ones override earlier ones field by field).
PRESETS: dict[str, dict[str, Any]] = {
    "normal": {},
    "realtime": {"speed": 1.0, "burst_s": 0.5, "bursty_period_s": None, "playout_speed": 1.0},
    "unbundled": {"bundle": False, "parts_per_message": 1},
    "bursty": {"bursty_period_s": 0.6},
    "slow": {"speed": 0.8, "burst_s": 0.0, "bursty_period_s": None, "playout_speed": 0.8},
    "premature_turn_complete": {"premature_turn_complete_fraction": 0.5},
    "close_1011": {"close_code": 1011, "close_after_answers": 1},
    "go_away": {"connection_lifetime_s": 3.0, "go_away_lead_s": 1.5},
    "fast": {"speed": 8.0, "burst_s": 0.2, "bursty_period_s": None, "playout_speed": 8.0},
}


def scenario_from(value: str | Scenario | None, base: Scenario | None = None) -> Scenario:
    """A :class:`Scenario` from a scenario string, a Scenario, or None (the base/default)."""
    base = base or Scenario()
    if value is None:
        return base
    if isinstance(value, Scenario):
        return value
    return base.apply(value)
