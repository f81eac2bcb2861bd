"""POST /local: find the embedded backend serving a data folder, or start one, and log in.

A backend the Jupyter server starts runs in a thread of the server process (so it stops with
Jupyter and leaves no daemon behind); one started elsewhere (``pai-magic local``, a kernel's
``%pai_local``) on the same data folder is found through its ``server.json`` and reused.
The password comes from the backend's own 0600 ``credentials.json`` and is used once, for
the login; only the token is kept, in the profile file.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pai_magic.core.errors import AuthError

_lock = threading.Lock()
_started: dict[Path, Any] = {}  # data dir -> handle of a backend this process started


def find_or_start(data_dir: str | None) -> tuple[str, Path, bool]:
    """``(cluster url, data dir, started_here)`` of a backend serving ``data_dir``."""
    from pai_magic.local import default_data_dir, find_running, start_in_thread

    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    with _lock:
        handle = _started.get(folder)
        if handle is not None:
            return handle.url, folder, False
        url = find_running(folder)
        if url:
            return url, folder, False
        handle = start_in_thread(folder)
        _started[folder] = handle
        return handle.url, folder, True


def login_local(data_dir: str | None, profile_name: str | None = None) -> Any:
    """Log into the local backend (started if needed); returns the saved Profile."""
    from pai_magic.core import auth
    from pai_magic.local import read_credentials

    url, folder, _started_here = find_or_start(data_dir)
    creds = read_credentials(folder)
    if creds is None:
        raise AuthError(f"A local backend runs at {url}, but its password is not saved in {folder}: "
                        "log in with the form (user and password you gave it).")
    user, password = creds
    return auth.login_with_password(url, user, password, profile_name=profile_name)


def stop_started() -> None:
    """Stop the backends this process started (the Jupyter server is shutting down)."""
    with _lock:
        handles = list(_started.values())
        _started.clear()
    for handle in handles:
        try:
            handle.stop()
        except Exception:  # noqa: BLE001 - shutting down: nothing left to tell
            pass
