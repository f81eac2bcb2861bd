"""``%pai_local``'s bookkeeping on top of :mod:`pai_magic.local.connect`: the kernel that
started the backend stops it when the extension is unloaded or the kernel exits."""
from __future__ import annotations

import atexit
from typing import Any


def connect_local(session: Any, *, data_dir: str | None = None, port: int = 0) -> tuple[Any, Any, bool]:
    """(profile, cluster info, started_here) for the embedded backend of ``data_dir``."""
    from pai_magic.core.auth import detect_cluster
    from pai_magic.local.connect import connect_local as connect, stop_started

    conn = connect(data_dir, port=port)
    if conn.handle is not None:
        session.local_backend = conn.handle
        if conn.started_here:
            session.local_backend_started = True
            atexit.register(stop_started, conn.data_dir)
    return conn.profile, detect_cluster(conn.url), conn.started_here
