"""The emulator server: TLS WebSocket listener, upgrade checks, and a thread-backed wrapper.

:class:`LiveEmulator` listens on 127.0.0.1 with a certificate made for the run and serves
the Live wire protocol to the unmodified google-genai SDK (``live_protocol.md`` §2,
Recipe A). :class:`EmulatorThread` runs one in a background thread for synchronous code,
or for serving other processes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from .certs import CertificateFiles, generate_certificate
from .connection import INPUT_RATE_HZ, Connection
from .resumption import ResumptionRegistry
from .records import Session
from .scenarios import SCENARIO_HEADER, Scenario, ScenarioError, scenario_from
from .voice import Voice

logger: logging.Logger = logging.getLogger(__name__)

#: Upgrade paths the SDK (and raw-WebSocket clients) use; leading slashes are normalised.
LIVE_PATH = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(v1beta|v1alpha|v1)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)$"
)
#: Model id used in examples and tests (any model string is accepted).
DEFAULT_MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
#: Largest client message accepted (video frames are the big ones).
MAX_CLIENT_MESSAGE_BYTES = 16 << 20


def api_key_of(request: Request) -> str | None:
    """The API key or token of an upgrade request (header or query), or None."""
    headers = request.headers
    if headers.get("x-goog-api-key"):
        return headers["x-goog-api-key"]
    auth = headers.get("authorization", "")
    for scheme in ("Token ", "Bearer "):
        if auth.startswith(scheme) and auth[len(scheme):].strip():
            return auth[len(scheme):].strip()
    query = parse_qs(request.path.partition("?")[2])
    for name in ("key", "access_token"):
        if query.get(name) and query[name][0]:
            return query[name][0]
    return None


#: Query parameters and headers that carry a credential; their values never reach a record.
SECRET_PARAMS = ("key", "access_token")
SECRET_HEADERS = ("x-goog-api-key", "authorization")


def mask_secrets(raw_path: str) -> str:
    """The upgrade path with the values of ``?key=`` / ``?access_token=`` replaced by ``<set>``."""
    path, sep, query = raw_path.partition("?")
    if not sep:
        return raw_path
    masked = re.sub(r"(^|&)(" + "|".join(SECRET_PARAMS) + r")=[^&]*", r"\1\2=<set>", query)
    return f"{path}?{masked}"


def normalise_path(raw_path: str) -> str:
    """The request path without its query and with ``//ws/...`` collapsed to ``/ws/...``."""
    # Not urlsplit(): it would read "//ws/..." as a network location.
    return "/" + raw_path.split("?", 1)[0].lstrip("/")


class LiveEmulator:
    """A local Gemini Live API endpoint for the real google-genai SDK.

    Usage::

        async with LiveEmulator() as emu:
            client = emu.make_client()
            async with client.aio.live.connect(model="any", config={...}) as session:
                ...
        emu.sessions[0].answers  # what happened

    Args:
        host: address to listen on (the certificate covers 127.0.0.1 and localhost).
        port: TCP port; 0 picks a free one.
        scenario: default scenario for every connection (a preset string such as
            ``"bursty+close_1011"`` or a :class:`Scenario`); refined per connection by the
            ``x-duplex-scenario`` upgrade header.
        voice: the answer voice (espeak-ng when installed).
        require_api_key: refuse upgrades without a key (HTTP 403), like the service.
        accepted_input_rates: sample rates accepted in ``audio/pcm;rate=N``.
        cert_dir: where to write the per-run certificate (a new temporary folder if None).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, scenario: str | Scenario | None = None,
                 voice: Voice | None = None, require_api_key: bool = True,
                 accepted_input_rates: tuple[int, ...] = (INPUT_RATE_HZ,),
                 cert_dir: str | Path | None = None) -> None:
        self.host = host
        self.port: int = port
        self.default_scenario: Scenario = scenario_from(scenario)
        self.voice: Voice = voice or Voice()
        self.require_api_key = require_api_key
        self.accepted_input_rates: tuple[int, ...] = tuple(accepted_input_rates)
        self._cert_dir = cert_dir
        self._certs: CertificateFiles | None = None
        self._server: Server | None = None
        self._registry = ResumptionRegistry()
        self._lock = threading.Lock()
        self._sessions: list[Session] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> LiveEmulator:
        """Makes the certificate and starts listening. Returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._certs = generate_certificate(self._cert_dir)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self._certs.server_context(),
            process_request=self._check_request,
            compression=None,
            max_size=MAX_CLIENT_MESSAGE_BYTES,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("Live emulator listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        """Closes every connection (1001 going away), stops listening, deletes the certificate."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        if self._certs is not None:
            self._certs.remove()

    async def __aenter__(self) -> LiveEmulator:
        """Starts the emulator (``async with LiveEmulator() as emu``)."""
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        """Stops the emulator."""
        await self.stop()

    def run_in_thread(self) -> EmulatorThread:
        """Starts this emulator in a background thread; use the result as a context manager."""
        return EmulatorThread(self).start()

    async def serve_forever(self) -> None:
        """Serves until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    # -- how clients reach it ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT`` (the SDK turns it into ``wss://``)."""
        if not self.running:
            raise RuntimeError("the emulator is not running; call start() first")
        return f"https://{self.host}:{self.port}"

    @property
    def cert_path(self) -> Path:
        """The PEM certificate clients must trust (valid for this run only)."""
        if self._certs is None or not self.running:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._certs.cert_path

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the emulator's certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def client_http_options(self, *, scenario: str | None = None,
                            headers: dict[str, str] | None = None) -> dict[str, Any]:
        """``http_options`` for ``genai.Client`` pointing at this emulator.

        Args:
            scenario: scenario string sent on every connect of that client.
            headers: extra upgrade headers.
        """
        all_headers = dict(headers or {})
        if scenario:
            all_headers[SCENARIO_HEADER] = scenario
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "api_version": "v1beta",
            "async_client_args": {"ssl": self.ssl_context()},
        }
        if all_headers:
            options["headers"] = all_headers
        return options

    def make_client(self, api_key: str = "emulator-key", *, scenario: str | None = None,
                    headers: dict[str, str] | None = None) -> Any:
        """A ``google.genai.Client`` that talks to this emulator."""
        from google import genai

        return genai.Client(api_key=api_key, http_options=self.client_http_options(scenario=scenario,
                                                                                    headers=headers))

    @staticmethod
    def scenario_http_options(scenario: str) -> dict[str, Any]:
        """Per-connect ``http_options`` choosing a scenario:
        ``config={"http_options": LiveEmulator.scenario_http_options("bursty"), ...}``."""
        return {"headers": {SCENARIO_HEADER: scenario}}

    # -- observations ------------------------------------------------------------------------

    @property
    def sessions(self) -> list[Session]:
        """One record per WebSocket connection so far, oldest first (a snapshot list)."""
        with self._lock:
            return list(self._sessions)

    def wait_for_sessions(self, count: int, timeout: float = 5.0) -> list[Session]:
        """Blocks (polling) until ``count`` connections have been accepted; any thread."""
        deadline = time.monotonic() + timeout
        while len(self.sessions) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.sessions)} of {count} sessions after {timeout} s")
            time.sleep(0.01)
        return self.sessions

    # -- serving -----------------------------------------------------------------------------

    def _scenario_for(self, request: Request) -> Scenario:
        spec = request.headers.get(SCENARIO_HEADER)
        return self.default_scenario.apply(spec) if spec else self.default_scenario

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = normalise_path(request.path)
        if not LIVE_PATH.match(path):
            return connection.respond(HTTPStatus.NOT_FOUND, f"Not Found: {path}\n")
        if self.require_api_key and not api_key_of(request):
            return connection.respond(HTTPStatus.FORBIDDEN, "Method doesn't allow unregistered callers "
                                      "(callers without established identity). Please use API Key.\n")
        try:
            self._scenario_for(request)
        except ScenarioError as exc:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{SCENARIO_HEADER}: {exc}\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        headers = {k: ("<set>" if k.lower() in SECRET_HEADERS else v) for k, v in request.headers.raw_items()}
        with self._lock:
            record = Session(len(self._sessions), mask_secrets(request.path), headers, self._scenario_for(request),
                             time.monotonic())
            self._sessions.append(record)
        connection = Connection(ws, record, record.scenario, self.voice, self._registry, self.accepted_input_rates)
        try:
            await connection.run()
        except Exception:  # never let one session take the server down
            logger.exception("session %d failed", record.index)
            if record.close_code is None:
                record._set(close=(1011, "Internal error encountered.", "server", time.monotonic()))
        logger.info("session %d ended: %s", record.index, record.summary())


class EmulatorThread:
    """Runs a :class:`LiveEmulator` on its own event loop in a daemon thread.

    Usage::

        with LiveEmulator().run_in_thread() as emu:
            print(emu.base_url, emu.cert_path)
            ...  # sync code, other threads or other processes talk to it

    Attribute access falls through to the emulator (``base_url``, ``cert_path``,
    ``sessions``, ``make_client()``, ...).
    """

    def __init__(self, emulator: LiveEmulator | None = None, start_timeout_s: float = 10.0) -> None:
        self.emulator: LiveEmulator = emulator or LiveEmulator()
        self.start_timeout_s = start_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> EmulatorThread:
        """Starts the thread and waits until the emulator listens. Returns self."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="duplex-live-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            raise TimeoutError("the emulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.emulator.start())
        except BaseException as exc:  # report to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.emulator.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the emulator and joins the thread."""
        if self._thread is None or self._loop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        """Starts the thread unless it already runs (``with emu.run_in_thread() as emu``)."""
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stops the emulator and joins the thread."""
        self.stop()

    def __getattr__(self, name: str) -> Any:
        """Everything else comes from the wrapped :class:`LiveEmulator`."""
        if name == "emulator":
            raise AttributeError(name)
        return getattr(self.emulator, name)
