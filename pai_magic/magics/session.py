"""The notebook's current cluster: which profile, its client, its job watcher.

One :class:`MagicSession` per IPython shell, shared by every Magics class (jobs, login,
ssh, registry, storage), so ``%pai_login`` in one cell is what ``%%pai_job`` in the next one
uses, and one background watcher serves every job of the kernel. Other magics get it with
``get_session(self.shell)`` and call ``session.client()``.

The core client (``requests``, ``yaml`` ...) is imported the first time a magic needs it,
never at ``%load_ext``.
"""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import Profile
    from pai_magic.magics.status import StatusBoard

_SESSIONS: "weakref.WeakKeyDictionary[Any, MagicSession]" = weakref.WeakKeyDictionary()
_NO_SHELL_KEY = object()
_NO_SHELL: "MagicSession | None" = None
_LOCK = threading.Lock()


class MagicSession:
    """State that lives as long as the kernel: never written to disk except through profiles."""

    def __init__(self, shell: Any = None) -> None:
        self.shell = shell
        self.profile_name: str | None = None  # set by %pai_profile NAME / %pai_login --profile
        self.local_backend: Any = None  # the handle of an embedded backend %pai_local started or found
        self.local_backend_started = False  # True when this kernel runs it (then unload stops it)
        self._clients: Any = None  # a core ClientForProfile, made on first use (keeps %load_ext light)
        self._profile: "Profile | None" = None
        self._board: "StatusBoard | None" = None
        self._lock = threading.RLock()
        self.cell_serial = 0  # counts cells run, so a handle shows its live status once per cell

    def on_pre_run_cell(self, info: Any = None) -> None:
        """IPython ``pre_run_cell`` event (registered at ``%load_ext``)."""
        self.cell_serial += 1

    # -- options -------------------------------------------------------------------------
    def options(self) -> Any:
        """The ``PaiMagics`` configurable (``%config PaiMagics.x = y``), defaults if not loaded."""
        from pai_magic.magics.options import PaiOptions

        shell = self.shell
        if shell is not None:
            registry = getattr(getattr(shell, "magics_manager", None), "registry", {}) or {}
            found = registry.get("PaiMagics")
            if found is not None:
                return found
        with self._lock:
            if not hasattr(self, "_default_options"):
                self._default_options = PaiOptions()
            return self._default_options

    # -- profile and client ----------------------------------------------------------------
    def wanted_profile_name(self) -> str | None:
        """An explicit choice in this kernel wins over ``PaiMagics.profile``, then the file's active one."""
        if self.profile_name:
            return self.profile_name
        configured = getattr(self.options(), "profile", None)
        return configured or None

    def profile(self) -> "Profile":
        """The profile to use now, read fresh (another kernel or the CLI may have logged in)."""
        from pai_magic.core.profiles import load_profile

        profile = load_profile(self.wanted_profile_name())
        self._profile = profile
        return profile

    def client(self) -> "PaiClient":
        """A client for the current profile; rebuilt when the profile or its token changed."""
        from pai_magic.core.client import ClientForProfile

        profile = self.profile()
        with self._lock:
            if self._clients is None:
                self._clients = ClientForProfile()
            client = self._clients.get(profile)
        client.http.deadline = self.request_timeout()
        return client

    def request_timeout(self) -> float | None:
        """``%config PaiMagics.request_timeout``: how long one request may wait for the cluster."""
        try:
            return float(self.options().request_timeout)
        except Exception:  # noqa: BLE001 - an odd options object must not break the client
            return None

    def known_url(self) -> str | None:
        """The cluster URL last used, for error messages; never raises."""
        if self._profile is not None:
            return self._profile.url or None
        try:
            return self.profile().url or None
        except Exception:  # noqa: BLE001 - only used to enrich an error message
            return None

    def forget_client(self) -> None:
        """After a login or a profile switch: the next call builds a fresh client."""
        with self._lock:
            old, self._clients, self._profile = self._clients, None, None
        if old is not None:
            _close_quietly(old)
        if self._board is not None:
            self._board.client_changed()

    # -- job watching --------------------------------------------------------------------------
    def board(self) -> "StatusBoard":
        """The one watcher of this kernel's jobs (created on first use)."""
        from pai_magic.magics.status import StatusBoard

        with self._lock:
            if self._board is None:
                self._board = StatusBoard(self)
            return self._board

    def close(self) -> None:
        """Stop the watcher thread and the embedded backend this kernel started."""
        board, self._board = self._board, None
        if board is not None:
            board.stop()
        self.forget_client()
        backend, self.local_backend = self.local_backend, None
        started, self.local_backend_started = self.local_backend_started, False
        if backend is not None and started:
            try:
                backend.stop()
            except Exception:  # noqa: BLE001 - best effort at unload
                pass


def _close_quietly(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - closing an old HTTP session must not fail a magic
            pass


def get_session(shell: Any = None) -> MagicSession:
    """The session of ``shell`` (or of the running IPython, or a kernel-less one)."""
    global _NO_SHELL
    if shell is None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except Exception:  # noqa: BLE001 - plain Python without IPython
            shell = None
    with _LOCK:
        if shell is None:
            if _NO_SHELL is None:
                _NO_SHELL = MagicSession(None)
            return _NO_SHELL
        session = _SESSIONS.get(shell)
        if session is None:
            session = _SESSIONS[shell] = MagicSession(shell)
        return session


def drop_session(shell: Any) -> None:
    """At ``%unload_ext``: stop what the session started and forget it."""
    with _LOCK:
        session = _SESSIONS.pop(shell, None)
    if session is not None:
        session.close()
