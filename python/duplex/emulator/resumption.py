"""Session resumption as the service runs it: session state, handles, and their rules.

* A handle resumes the session state it was issued for, once: a second resume with the
  same handle is refused (1007).
* A handle cannot resume while the connection that issued it is still open: the service
  refuses that with 1011 (``live_service_behaviour.md`` §5). A client must close the old
  socket (after ``goAway``, say) before it resumes.
* A handle never issued here is refused (1007).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

from .protocol import ProtocolError
from .tools import INVALID_ARGUMENT


class ResumableState:
    """Session state that continues when a client reconnects with a resumption handle."""

    def __init__(self, state_id: str) -> None:
        self.id = state_id
        self.turn_index = 0
        self.connections = 0
        self.audio_samples = 0
        self.context_tokens = 0  # what the model's context holds (usage counts grow with it)


class ResumptionRegistry:
    """Issued resumption handles and the session state each one resumes (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[str, tuple[ResumableState, Callable[[], bool]]] = {}
        self._used: set[str] = set()
        self._count = 0

    def new_state(self) -> ResumableState:
        """A fresh session state."""
        with self._lock:
            self._count += 1
            return ResumableState(f"session-{self._count}")

    def issue(self, state: ResumableState, issuer_open: Callable[[], bool] = lambda: False) -> str:
        """A new handle for ``state``; ``issuer_open()`` says whether the issuing connection is open."""
        handle = secrets.token_urlsafe(24)
        with self._lock:
            self._handles[handle] = (state, issuer_open)
        return handle

    def resume(self, handle: str) -> ResumableState:
        """The state ``handle`` resumes; the handle is used up.

        Raises:
            ProtocolError: 1007 for a handle never issued or already used, 1011 while the
                issuing connection is still open.
        """
        with self._lock:
            entry = self._handles.get(handle)
            if entry is None:
                raise ProtocolError(INVALID_ARGUMENT, detail="session resumption handle never issued here")
            if handle in self._used:
                raise ProtocolError(INVALID_ARGUMENT, detail="session resumption handle already used (single-use)")
            state, issuer_open = entry
            if issuer_open():
                raise ProtocolError("Internal error encountered.", code=1011,
                                    detail="resumed while the connection that issued the handle is still open")
            self._used.add(handle)
            return state

    def lookup(self, handle: str) -> ResumableState | None:
        """The state a handle was issued for (used or not), or None."""
        with self._lock:
            entry = self._handles.get(handle)
            return entry[0] if entry else None
