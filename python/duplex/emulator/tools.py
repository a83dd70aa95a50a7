"""Function calling in the emulator: declarations from ``setup.tools``, calls, responses.

The emulator cannot understand speech, so a model "decides" to call a function in one of
two ways (``Scenario.tool_call`` or a text turn that names a declared function), and then
behaves as the service does (``live_service_behaviour.md`` §2):

* ``toolCall {functionCalls: [{id, name, args}]}`` goes out; ids are unique per session.
* A BLOCKING declaration makes the model wait, silent, for the matching ``toolResponse``;
  then it speaks an answer that uses the result.
* A NON_BLOCKING declaration lets the model go on talking (a short filler answer); the
  response is then handled by its ``scheduling``: ``INTERRUPT`` cuts what the model is
  saying and speaks the result now, ``WHEN_IDLE`` (also the default) speaks it after the
  current answer, ``SILENT`` takes it in without a word. ``willContinue: true`` keeps the
  call open for more responses.
* Barge-in while calls are pending sends ``toolCallCancellation {ids}``.
* A response for an id that was never issued closes the connection with 1007.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .protocol import ProtocolError, check_fields, get_field, parse_bool, to_camel

#: ``FunctionDeclaration.behavior`` values.
BEHAVIORS = ("UNSPECIFIED", "BLOCKING", "NON_BLOCKING")
#: ``FunctionResponse.scheduling`` values.
SCHEDULINGS = ("SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT")
#: Keys of one entry of ``setup.tools`` (proto ``Tool``).
TOOL_KEYS = ("functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext",
             "googleMaps", "retrieval", "computerUse", "fileSearch", "enterpriseWebSearch")
#: Keys of a ``FunctionDeclaration``.
DECLARATION_KEYS = ("name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema",
                    "behavior")
#: Keys of a ``FunctionResponse``.
RESPONSE_KEYS = ("id", "name", "response", "scheduling", "willContinue", "parts")
#: The reason the service gives for a request it refuses as invalid.
INVALID_ARGUMENT = "Request contains an invalid argument."

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Declaration:
    """One declared function, as far as the emulator acts on it.

    Attributes:
        name: the function's name.
        behavior: ``"BLOCKING"`` or ``"NON_BLOCKING"`` (after defaults were applied).
        parameters: names of the declared parameters (from ``parameters.properties``).
    """

    name: str
    behavior: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tools:
    """The tools of a session: function declarations and built-in tools (e.g. ``googleSearch``)."""

    declarations: dict[str, Declaration] = field(default_factory=dict)
    builtin: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.declarations)


def parse_tools(value: Any, default_behavior: str = "BLOCKING") -> Tools:
    """Validates ``setup.tools`` and returns the declared functions.

    ``default_behavior`` is used when a declaration has no ``behavior`` (or ``UNSPECIFIED``).

    Raises:
        ProtocolError: unknown fields, bad names, bad enum values, duplicates (1007).
    """
    if value is None:
        return Tools()
    if not isinstance(value, list):
        raise ProtocolError("Invalid value at 'setup.tools', expected a list.")
    declarations: dict[str, Declaration] = {}
    builtin: list[str] = []
    for i, tool in enumerate(value):
        where = f"setup.tools[{i}]"
        check_fields(tool, TOOL_KEYS, where)
        builtin.extend(to_camel(key) for key in tool if to_camel(key) != "functionDeclarations")
        decls = get_field(tool, "functionDeclarations", where) or []
        if not isinstance(decls, list):
            raise ProtocolError(f"Invalid value at '{where}.function_declarations', expected a list.")
        for j, decl in enumerate(decls):
            d_where = f"{where}.function_declarations[{j}]"
            check_fields(decl, DECLARATION_KEYS, d_where)
            name = get_field(decl, "name", d_where)
            if not isinstance(name, str) or not _NAME.match(name):
                raise ProtocolError(f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                                    "Invalid function name. Must start with a letter or an underscore.")
            if name in declarations:
                raise ProtocolError(f"Duplicate function declaration: {name}.")
            behavior = get_field(decl, "behavior", d_where) or "UNSPECIFIED"
            if behavior not in BEHAVIORS:
                raise ProtocolError(f"Invalid value at '{d_where}.behavior' (type.googleapis.com/"
                                    f"google.ai.generativelanguage.v1beta.FunctionDeclaration.Behavior), "
                                    f"\"{behavior}\"")
            if behavior == "UNSPECIFIED":
                behavior = default_behavior
            params = get_field(decl, "parameters", d_where) or get_field(decl, "parametersJsonSchema", d_where)
            props = get_field(params, "properties", "parameters") if isinstance(params, dict) else None
            declarations[name] = Declaration(name, behavior, tuple(props) if isinstance(props, dict) else ())
    return Tools(declarations, tuple(builtin))


@dataclass(frozen=True)
class FunctionResponse:
    """One validated entry of ``toolResponse.functionResponses``."""

    id: str
    name: str | None
    response: Any
    scheduling: str
    will_continue: bool


def parse_tool_response(body: Any) -> list[FunctionResponse]:
    """Validates a ``toolResponse`` body.

    Raises:
        ProtocolError: unknown fields, a missing id, a bad ``scheduling`` (1007).
    """
    check_fields(body, ("functionResponses",), "tool_response")
    items = get_field(body, "functionResponses", "tool_response", [])
    if not isinstance(items, list):
        raise ProtocolError("Invalid value at 'tool_response.function_responses', expected a list.")
    out: list[FunctionResponse] = []
    for i, item in enumerate(items):
        where = f"tool_response.function_responses[{i}]"
        check_fields(item, RESPONSE_KEYS, where)
        fid = get_field(item, "id", where)
        if not isinstance(fid, str) or not fid:
            raise ProtocolError(INVALID_ARGUMENT)
        name = get_field(item, "name", where)
        scheduling = get_field(item, "scheduling", where) or "SCHEDULING_UNSPECIFIED"
        if scheduling not in SCHEDULINGS:
            raise ProtocolError(f"Invalid value at '{where}.scheduling' (type.googleapis.com/"
                                f"google.ai.generativelanguage.v1beta.FunctionResponse.Scheduling), "
                                f"\"{scheduling}\"")
        response = get_field(item, "response", where)
        if response is not None and not isinstance(response, dict):
            raise ProtocolError(f"Invalid value at '{where}.response' (type.googleapis.com/google.protobuf.Struct), "
                                f"{json.dumps(response)[:40]}")
        will_continue = parse_bool(get_field(item, "willContinue", where, False), f"{where}.will_continue")
        out.append(FunctionResponse(fid, name if isinstance(name, str) else None, response, scheduling,
                                    will_continue))
    return out


@dataclass
class ToolCall:
    """One function call the emulator made, and what became of it (mutable while pending).

    Attributes:
        id: the call's id (``fc-<session>-<n>``).
        name: the function called.
        args: the arguments sent.
        behavior: ``"BLOCKING"`` or ``"NON_BLOCKING"``.
        turn_index: the user turn that asked for it.
        sent_at: when ``toolCall`` went out.
        responses: every response received for it (``willContinue`` allows several).
        responded_at: when the final response arrived.
        cancelled_at: when ``toolCallCancellation`` named it.
    """

    id: str
    name: str
    args: dict[str, Any]
    behavior: str
    turn_index: int
    sent_at: float
    responses: list[FunctionResponse] = field(default_factory=list)
    responded_at: float | None = None
    cancelled_at: float | None = None

    @property
    def pending(self) -> bool:
        """True until a final response arrives or the call is cancelled."""
        return self.responded_at is None and self.cancelled_at is None

    def wire(self) -> dict[str, Any]:
        """The ``functionCalls`` entry of this call."""
        return {"id": self.id, "name": self.name, "args": self.args}


def parse_scenario_args(spec: str) -> dict[str, Any]:
    """``"tz:UTC;n:3"`` → ``{"tz": "UTC", "n": 3}`` (numbers become numbers)."""
    args: dict[str, Any] = {}
    for item in (s for s in spec.split(";") if s.strip()):
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"bad tool argument {item!r}; use name:value;name2:value2")
        args[key.strip()] = _number_or_text(value.strip())
    return args


def calls_named_in(text: str, tools: Tools) -> list[tuple[str, dict[str, Any]]]:
    """The declared functions a text names (as whole words), with ``key=value`` arguments.

    ``"please call get_time tz=UTC"`` → ``[("get_time", {"tz": "UTC"})]`` when ``get_time``
    is declared with a ``tz`` parameter (arguments not declared are ignored).
    """
    found: list[tuple[str, dict[str, Any]]] = []
    for name, decl in tools.declarations.items():
        if re.search(rf"(?<![\w.\-]){re.escape(name)}(?![\w.\-])", text):
            args = {k: _number_or_text(v) for k, v in re.findall(r"(\w+)=(\S+)", text) if k in decl.parameters}
            found.append((name, args))
    return found


def describe_result(response: Any) -> str:
    """A speakable summary of a function's result: ``{"time": "12:00"}`` → ``"time 12:00"``."""
    if not isinstance(response, dict) or not response:
        return "nothing"
    if set(response) == {"output"} and not isinstance(response["output"], (dict, list)):
        return str(response["output"])
    words = []
    for key, value in response.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        words.append(f"{key} {text}")
    return ", ".join(words)[:300]


def _number_or_text(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value
