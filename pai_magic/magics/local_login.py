"""``%pai_local``: an embedded OpenPAI backend for this notebook, started or found, logged in.

A backend another process started on the same data directory (``pai-magic local``, another
kernel) is reused: two servers over one data directory would run each job twice. The
password of its default user is the one the backend generated and saved 0600 in its data
directory; it is read here, sent once to log in, and never shown.
"""
from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

LOCAL_PROFILE = "local"


def connect_local(session: Any, *, data_dir: str | None = None, port: int = 0) -> tuple[Any, Any, bool]:
    """(profile, cluster info, started_here) for the embedded backend of ``data_dir``."""
    from pai_magic.core.auth import detect_cluster, login_with_password
    from pai_magic.local import default_data_dir, find_running, read_credentials, start_in_thread

    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    started = False
    handle = session.local_backend
    url = handle.url if handle is not None and Path(handle.data_dir) == folder else find_running(folder)
    if url is None:
        if port and _port_busy(port):
            raise UsageError(f"Port {port} is already in use: pick another with --port N, or omit --port.")
        try:
            handle = start_in_thread(folder, port=port)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UsageError(f"The local backend could not start in {folder}: {exc}") from None
        session.local_backend = handle
        session.local_backend_started = True
        atexit.register(_stop_quietly, handle)
        url = handle.url
        started = True
    creds = read_credentials(folder)
    if creds is None:
        raise UsageError(f"A local backend runs at {url}, but its password is not in {folder}: "
                         f"log in with %pai_login {url} --user NAME.")
    user, password = creds
    profile = login_with_password(url, user, password, profile_name=LOCAL_PROFILE)
    del password
    info = detect_cluster(url)
    return profile, info, started


def _port_busy(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _stop_quietly(handle: Any) -> None:
    try:
        handle.stop()
    except Exception:  # noqa: BLE001 - at interpreter exit nothing may raise
        pass
