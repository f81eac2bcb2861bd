"""Starting and finding the embedded backend: in the foreground, in a thread, or already running.

``serve`` is what ``python -m pai_magic.local`` and the CLI's ``pai-magic local`` run;
``start_in_thread`` is for in-process use (``%pai_local`` in a kernel); ``find_running``
lets a face reuse a backend another process started on the same data directory. The
server writes ``<data dir>/server.json`` ({url, pid}) once it answers, and removes it when
it stops cleanly.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

import tornado.httpserver
import tornado.netutil

from pai_magic.core.paths import data_dir as default_base_dir
from pai_magic.core.paths import write_private
from pai_magic.local.backend import LocalBackend
from pai_magic.local.handlers import MAX_BODY_BYTES, PREFIX, make_app
from pai_magic.local.ratelimit import with_rate_limits

log = logging.getLogger("pai_magic.local")


def default_data_dir() -> Path:
    return default_base_dir() / "local"


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class ServerHandle:
    """A running backend: ``.url`` (cluster URL), ``.api`` (REST base), ``.stop()``."""

    def __init__(self, url: str, backend: LocalBackend, stop: Callable[[], None], user: str | None) -> None:
        self.url = url
        self.api = url + PREFIX
        self.backend = backend
        self.user = user
        self._stop = stop

    @property
    def data_dir(self) -> Path:
        return self.backend.data_dir

    def stop(self) -> None:
        self._stop()

    def __repr__(self) -> str:
        return f"ServerHandle(url={self.url!r})"


def _prepare(data_dir: Path | None, host: str, users: Mapping[Any, str | None] | None,  # key None: login name
             scrub_env: tuple[str, ...], mount_roots: tuple[Path, ...] = (),
             job_user: str | None = None, gpus: int = 0) -> tuple[LocalBackend, str | None]:
    backend = LocalBackend(Path(data_dir) if data_dir else default_data_dir(), host, scrub_env=scrub_env,
                           mount_roots=mount_roots, job_user=job_user, gpus=gpus)
    first: str | None = None
    for name, password in (users or {None: None}).items():
        created, _ = backend.ensure_user(name, password)
        first = first or created
    backend.runner.recover()
    backend.runner.start_reconciler()
    return backend, first


def _bind(host: str, port: int) -> tuple[list[socket.socket], int]:
    family = socket.AF_INET if ":" not in host else socket.AF_INET6
    sockets = tornado.netutil.bind_sockets(port, address=host, family=family)
    return sockets, sockets[0].getsockname()[1]


def _write_server_json(data_dir: Path, url: str) -> None:
    write_private(data_dir / "server.json", json.dumps({"url": url, "pid": os.getpid()}))


def _remove_server_json(data_dir: Path) -> None:
    path = data_dir / "server.json"
    try:
        data = json.loads(path.read_text())
        if data.get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def serve(host: str = "127.0.0.1", port: int = 0, data_dir: Path | str | None = None, *,
          user: str | None = None, password: str | None = None,
          on_ready: Callable[[str], None] | None = None, scrub_env: tuple[str, ...] = (),
          mount_roots: tuple[Path, ...] = (), job_user: str | None = None, gpus: int = 0) -> None:
    """Run the backend in the foreground until SIGINT/SIGTERM; ``on_ready(url)`` once it answers.

    ``mount_roots``: folders under which a job's absolute storage mountPath may be linked;
    ``job_user``: who jobs run as when the backend is root (see jobuser.py); ``gpus``: GPUs
    counted (none real), so jobs asking more than are free wait as on a full cluster.
    """
    backend, _ = _prepare(Path(data_dir) if data_dir else None, host, {user: password} if user or password
                          else None, scrub_env, mount_roots, job_user, gpus)
    sockets, bound = _bind(host, port)
    url = _url(host, bound)
    backend.public_url = url

    async def main() -> None:
        server = tornado.httpserver.HTTPServer(with_rate_limits(make_app(backend), backend), xheaders=False,
                                               max_body_size=MAX_BODY_BYTES * 10)
        server.add_sockets(sockets)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, done.set)
            except RuntimeError:  # NotImplementedError is one
                pass
        _write_server_json(backend.data_dir, url)
        if on_ready:
            on_ready(url)
        await done.wait()
        server.stop()

    try:
        asyncio.run(main())
    finally:
        _remove_server_json(backend.data_dir)
        backend.close()


def start_in_thread(data_dir: Path | str | None = None, host: str = "127.0.0.1", port: int = 0,
                    users: Mapping[str, str | None] | None = None,
                    mount_roots: tuple[Path, ...] = ()) -> ServerHandle:
    """Start a backend on its own event loop thread; returns once it accepts connections.

    ``users`` maps user names to passwords (None: generated and saved in the data dir);
    without it the login name is created. ``handle.stop()`` ends the jobs, the server and
    the thread.
    """
    backend, first = _prepare(Path(data_dir) if data_dir else None, host, users, (), mount_roots)
    sockets, bound = _bind(host, port)
    url = _url(host, bound)
    backend.public_url = url
    ready = threading.Event()
    state: dict[str, object] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stop_event = asyncio.Event()
        state["loop"], state["event"] = loop, stop_event

        async def main() -> None:
            server = tornado.httpserver.HTTPServer(with_rate_limits(make_app(backend), backend),
                                                   max_body_size=MAX_BODY_BYTES * 10)
            server.add_sockets(sockets)
            _write_server_json(backend.data_dir, url)
            ready.set()
            await stop_event.wait()
            server.stop()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="pai-magic-local", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the embedded backend did not start within 30 s")
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        loop = state["loop"]
        event = state["event"]
        loop.call_soon_threadsafe(event.set)  # type: ignore[attr-defined]
        thread.join(timeout=30)
        _remove_server_json(backend.data_dir)
        backend.close()

    return ServerHandle(url, backend, stop, first)


def find_running(data_dir: Path | str | None = None, timeout: float = 2.0) -> str | None:
    """The URL of a backend serving ``data_dir`` right now (its process alive and answering)."""
    folder = Path(data_dir) if data_dir else default_data_dir()
    try:
        info = json.loads((folder / "server.json").read_text())
        url, pid = str(info["url"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        with urllib.request.urlopen(url + PREFIX + "/info", timeout=timeout) as resp:  # noqa: S310 (loopback)
            data = json.loads(resp.read())
        if data.get("name") != "PAI RESTful API":
            return None
    except (OSError, ValueError):
        return None
    return url
