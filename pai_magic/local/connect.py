"""Find the embedded backend serving a data folder, or start one in this process, and log in.

Every face needs this (``%pai_local``, the panel's button, the sidebar's ``POST local``), so
it lives once, beside the backend. Two servers over one data folder would run each job twice,
so a backend another process started (``pai-magic local``, another kernel) is found through
its ``server.json`` and reused. The password comes from the backend's own 0600
``credentials.json``, is used once for the login, and only the token is kept.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_magic.core.errors import AuthError, InvalidInputError, PaiError

_lock = threading.Lock()
_started: dict[Path, Any] = {}  # data folder -> handle of a backend this process started


@dataclass
class LocalConnection:
    """What a face shows after connecting: the saved profile and whether we started it."""

    profile: Any
    url: str
    data_dir: Path
    started_here: bool
    handle: Any = None  # the ServerHandle when this process runs the backend


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def find_or_start(data_dir: str | Path | None = None, *, port: int = 0) -> tuple[str, Path, Any, bool]:
    """``(url, folder, handle, started_now)``; ``handle`` is set when this process runs it."""
    from pai_magic.local import default_data_dir, find_running, start_in_thread

    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    with _lock:
        handle = _started.get(folder)
        if handle is not None:
            return handle.url, folder, handle, False
        url = find_running(folder)
        if url:
            return url, folder, None, False
        if port and _port_busy(port):
            raise InvalidInputError(f"Port {port} is already in use: pick another port, or let it choose one (port 0).")
        try:
            handle = start_in_thread(folder, port=port)
        except (OSError, ValueError, RuntimeError) as exc:
            raise PaiError(f"The local backend could not start in {folder}: {exc}") from None
        _started[folder] = handle
        return handle.url, folder, handle, True


def connect_local(data_dir: str | Path | None = None, *, port: int = 0,
                  profile_name: str | None = "local") -> LocalConnection:
    """Find or start the backend of ``data_dir`` and log into it as its default user."""
    from pai_magic.core import auth
    from pai_magic.local import read_credentials

    url, folder, handle, started = find_or_start(data_dir, port=port)
    creds = read_credentials(folder)
    if creds is None:
        raise AuthError(f"A local backend runs at {url}, but its password is not saved in {folder}: "
                        f"log in with the user and password you gave it (%pai_login {url} --user NAME).")
    user, password = creds
    profile = auth.login_with_password(url, user, password, profile_name=profile_name)
    del password
    return LocalConnection(profile=profile, url=url, data_dir=folder, started_here=started, handle=handle)


def stop_started(data_dir: Path | None = None) -> None:
    """Stop the backends this process started (all, or the one of ``data_dir``)."""
    with _lock:
        if data_dir is None:
            handles = list(_started.values())
            _started.clear()
        else:
            handles = [h for h in [_started.pop(Path(data_dir), None)] if h is not None]
    for handle in handles:
        try:
            handle.stop()
        except Exception:  # noqa: BLE001 - shutting down: nothing left to tell
            pass
