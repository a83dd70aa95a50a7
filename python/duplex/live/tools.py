"""Function calling in a Live conversation: declarations from Python callables, calls run
as the model asks, responses sent back with matching ids.

>>> def get_time(timezone: str = "UTC") -> dict:            # doctest: +SKIP
...     '''The current time.
...
...     Args:
...         timezone: an IANA zone name such as Europe/Paris.
...     '''
...     ...
>>> LiveConfig(tools=[get_time, "google_search"])            # doctest: +SKIP

Sync functions run on a worker thread (audio never waits for them), async ones on the
event loop. A function that raises, times out or gets arguments it does not take answers
``{"error": "..."}`` instead of ending the conversation. ``NON_BLOCKING`` functions let
the model keep talking; their response is scheduled ``INTERRUPT``, ``WHEN_IDLE`` or
``SILENT``. A ``toolCallCancellation`` (sent on barge-in) or the end of the connection
cancels the calls still running: an async function is cancelled, a thread is left to
finish and its result dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from google.genai import types

__all__ = ["Behavior", "FunctionTool", "Scheduling", "ToolRunner", "ToolSet", "function_tool", "local_time"]

#: Whether the model waits for the function's response (BLOCKING) or keeps talking.
Behavior = Literal["BLOCKING", "NON_BLOCKING"]
#: How a NON_BLOCKING function's response enters the conversation.
Scheduling = Literal["INTERRUPT", "WHEN_IDLE", "SILENT"]

_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$", re.IGNORECASE)
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call, with its declaration and calling options.

    Make one with :func:`function_tool` (or pass a plain callable in ``LiveConfig.tools``)."""

    fn: Callable[..., Any]
    declaration: types.FunctionDeclaration
    behavior: Behavior = "BLOCKING"
    scheduling: Scheduling | None = None
    timeout_s: float = 30.0

    @property
    def name(self) -> str:
        """The name the model calls it by."""
        return self.declaration.name or self.fn.__name__


def function_tool(
    fn: Callable[..., Any] | None = None,
    *,
    declaration: types.FunctionDeclaration | None = None,
    name: str | None = None,
    description: str | None = None,
    behavior: Behavior = "BLOCKING",
    scheduling: Scheduling | None = None,
    timeout_s: float = 30.0,
) -> Any:
    """Declares ``fn`` as a tool; usable as ``function_tool(fn, ...)`` or as a decorator
    ``@function_tool(behavior="NON_BLOCKING", scheduling="WHEN_IDLE")``.

    Args:
        fn: the function (sync or async); its keyword arguments are the call's ``args``.
        declaration: an explicit ``types.FunctionDeclaration``; otherwise it is built from
            the signature, type hints and docstring (a Google-style ``Args:`` section gives
            each parameter its description).
        name, description: override the declared name and description.
        behavior: ``"NON_BLOCKING"`` lets the model keep talking while the function runs.
        scheduling: for NON_BLOCKING functions, how the response is used: ``"INTERRUPT"``
            (speak about it now), ``"WHEN_IDLE"`` (after the current answer; the API's
            default) or ``"SILENT"`` (only add it to the context).
        timeout_s: a call still running after this long answers with an error.
    """
    if behavior not in ("BLOCKING", "NON_BLOCKING"):
        raise ValueError(f"behavior must be 'BLOCKING' or 'NON_BLOCKING', got {behavior!r}")
    if scheduling is not None and scheduling not in ("INTERRUPT", "WHEN_IDLE", "SILENT"):
        raise ValueError(f"scheduling must be 'INTERRUPT', 'WHEN_IDLE' or 'SILENT', got {scheduling!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")

    def make(f: Callable[..., Any]) -> FunctionTool:
        if not callable(f):
            raise TypeError(f"a tool must be callable, got {f!r}")
        decl = declaration.model_copy() if declaration is not None else declaration_of(f)
        if name:
            decl.name = name
        if description:
            decl.description = description
        if behavior == "NON_BLOCKING":
            decl.behavior = types.Behavior.NON_BLOCKING
        return FunctionTool(f, decl, behavior, scheduling, timeout_s)

    return make(fn) if fn is not None else make


def declaration_of(fn: Callable[..., Any]) -> types.FunctionDeclaration:
    """The ``FunctionDeclaration`` of a callable: name, docstring as the description, one
    property per parameter from its type hint (parameters without a default are required),
    and per-parameter descriptions from a Google-style ``Args:`` docstring section."""
    # The SDK logs a one-time warning recommending JSON schema; Live declarations use the
    # Schema form, which every Live model takes.
    sdk_logger = logging.getLogger("google_genai.types")
    level = sdk_logger.level
    sdk_logger.setLevel(logging.ERROR)
    try:
        decl = types.FunctionDeclaration.from_callable_with_api_option(callable=fn, api_option="GEMINI_API")
    except Exception as exc:
        raise TypeError(
            f"cannot declare {getattr(fn, '__name__', fn)!r} as a tool from its signature ({exc}); "
            "give its parameters simple type hints (str, int, float, bool, list, dict, Literal) "
            "or pass declaration=types.FunctionDeclaration(...)"
        ) from exc
    finally:
        sdk_logger.setLevel(level)
    described = _arg_descriptions(inspect.getdoc(fn) or "")
    if decl.parameters is not None and decl.parameters.properties:
        for key, schema in decl.parameters.properties.items():
            if key in described and not schema.description:
                schema.description = described[key]
    return decl


def _arg_descriptions(doc: str) -> dict[str, str]:
    """``{parameter: description}`` from a Google-style ``Args:`` section."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    inside, current, indent = False, None, None
    for line in lines:
        if _ARGS_SECTION.match(line):
            inside, current, indent = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break  # the next section
        match = _ARG_LINE.match(line)
        if width == indent and match:
            current = match.group(1).lstrip("*")
            out[current] = match.group(3).strip()
        elif current is not None:
            out[current] = (out[current] + " " + line.strip()).strip()
    return out


class ToolSet:
    """The tools of a conversation: what is declared at setup and what runs on a call.

    Args:
        items: callables, :class:`FunctionTool` values, ``"google_search"``, or
            ``types.Tool`` values (passed through; their functions, if any, have no
            implementation here and answer with an error).
    """

    def __init__(self, items: list[Any] | tuple[Any, ...] = ()) -> None:
        self.functions: dict[str, FunctionTool] = {}
        self.extra: list[types.Tool] = []
        for item in items:
            if isinstance(item, FunctionTool):
                tool = item
            elif isinstance(item, str):
                if item.lower().replace("-", "_") not in ("google_search", "search"):
                    raise ValueError(f"unknown built-in tool {item!r}: the built-in tool is 'google_search'")
                self.extra.append(types.Tool(google_search=types.GoogleSearch()))
                continue
            elif isinstance(item, types.Tool):
                self.extra.append(item)
                continue
            elif isinstance(item, types.FunctionDeclaration):
                raise TypeError(
                    f"a FunctionDeclaration alone ({item.name!r}) has no implementation; pass "
                    "function_tool(fn, declaration=...) instead"
                )
            elif callable(item):
                tool = function_tool(item)
            else:
                raise TypeError(f"unsupported tool {item!r}: pass a callable, function_tool(...), "
                                "'google_search' or a google.genai types.Tool")
            if tool.name in self.functions:
                raise ValueError(f"two tools are named {tool.name!r}")
            self.functions[tool.name] = tool

    def __bool__(self) -> bool:
        return bool(self.functions or self.extra)

    def declarations(self) -> list[Any] | None:
        """The ``tools`` of the setup message (None when there are none)."""
        tools: list[Any] = list(self.extra)
        if self.functions:
            tools.insert(0, types.Tool(function_declarations=[t.declaration for t in self.functions.values()]))
        return tools or None


def _jsonable(value: Any) -> Any:
    """The value as plain JSON data (anything else becomes its string form)."""
    return json.loads(json.dumps(value, default=str))


class ToolRunner:
    """Runs the calls of ``toolCall`` messages and sends their responses.

    Args:
        tools: what may be called.
        emit: ``emit(kind, text, **data)`` for ``tool_call`` / ``tool_result`` /
            ``tool_cancelled`` events.
    """

    def __init__(self, tools: ToolSet, emit: Callable[..., None]) -> None:
        self.tools = tools
        self._emit = emit
        self._running: dict[str, asyncio.Task[None]] = {}
        self._names: dict[str, str] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.calls: int = 0
        self.errors: int = 0
        self.cancelled: int = 0

    def handle_call(self, session: Any, tool_call: types.LiveServerToolCall) -> None:
        """Starts every function call of a ``toolCall`` message (returns at once)."""
        for call in tool_call.function_calls or []:
            call_id = call.id or f"call-{self.calls + 1}"
            name = call.name or ""
            args = dict(call.args or {})
            self.calls += 1
            self._emit("tool_call", name, id=call_id, name=name, args=args)
            task = asyncio.create_task(self._run(session, call_id, name, args), name=f"duplex-tool-{name}")
            self._running[call_id] = task
            self._names[call_id] = name
            task.add_done_callback(functools.partial(self._forget, call_id))

    def _forget(self, call_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(call_id, None)
        self._names.pop(call_id, None)

    def cancel(self, ids: list[str] | None, reason: str) -> None:
        """Cancels the running calls with these ids (all when None); no response is sent."""
        for call_id in list(self._running) if ids is None else ids:
            task = self._running.pop(call_id, None)
            name = self._names.pop(call_id, "")
            if task is None:
                continue
            task.cancel()
            self.cancelled += 1
            self._emit("tool_cancelled", name, id=call_id, name=name, reason=reason)

    @property
    def running(self) -> list[str]:
        """Ids of the calls still running."""
        return list(self._running)

    async def aclose(self) -> None:
        """Cancels every running call and frees the worker threads."""
        tasks = list(self._running.values())
        self.cancel(None, "the conversation ended")
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, session: Any, call_id: str, name: str, args: dict[str, Any]) -> None:
        started = time.monotonic()
        tool = self.tools.functions.get(name)
        error = True
        if tool is None:
            known = ", ".join(self.tools.functions) or "none"
            response: dict[str, Any] = {"error": f"no function named {name!r} is available (declared: {known})"}
        else:
            try:
                result = await asyncio.wait_for(self._call(tool, args), tool.timeout_s)
                response = result if isinstance(result, dict) else {"output": result}
                response = _jsonable(response)
                error = False
            except asyncio.TimeoutError:
                response = {"error": f"{name} did not finish within {tool.timeout_s:g} s"}
            except Exception as exc:
                response = {"error": f"{type(exc).__name__}: {exc}"}
        if error:
            self.errors += 1
        scheduling = None
        if tool is not None and tool.behavior == "NON_BLOCKING":
            scheduling = types.FunctionResponseScheduling(tool.scheduling or "WHEN_IDLE")
        reply = types.FunctionResponse(id=call_id, name=name, response=response, scheduling=scheduling)
        await session.send_tool_response(function_responses=[reply])
        self._emit("tool_result", name, id=call_id, name=name, response=response, error=error,
                   elapsed_ms=(time.monotonic() - started) * 1000,
                   scheduling=scheduling.value if scheduling is not None else None)

    async def _call(self, tool: FunctionTool, args: dict[str, Any]) -> Any:
        fn = tool.fn
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
            return await fn(**args)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="duplex-tool")
        result = await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, **args))
        if inspect.isawaitable(result):  # a sync wrapper that returned a coroutine
            result = await result
        return result


def local_time(timezone: str = "") -> dict[str, str]:
    """The current local date and time, for questions such as "what time is it?".

    Args:
        timezone: an IANA time zone such as "Europe/Paris"; empty for this computer's zone.
    """
    import datetime

    now = datetime.datetime.now().astimezone()
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            now = now.astimezone(ZoneInfo(timezone))
    return {"time": now.strftime("%H:%M"), "date": now.strftime("%A %d %B %Y"),
            "timezone": str(now.tzinfo), "iso": now.isoformat(timespec="seconds")}
