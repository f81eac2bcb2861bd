"""``GET /pai-magic/api/kernel-starts?since=VERSION&wait=SECONDS``: the start phases of the
kernels on the cluster, as a long poll.

The provisioner runs in this same Jupyter server process and records each start in
:data:`pai_magic.kernel.phases.STARTS`; this handler only reads it, so an answer costs no
request to the cluster. A request whose ``since`` is the current version waits (at most
``wait`` seconds, at most :data:`MAX_WAIT`) for the next change instead of answering the same
list again: one open request per JupyterLab page, answered the moment a phase arrives.
"""
from __future__ import annotations

import asyncio

import tornado.web

from pai_magic.kernel.phases import STARTS, StartRegistry
from pai_magic.server.handlers import PaiApiHandler

#: The longest wait a request may ask for (seconds): below the usual 60 s proxy timeouts.
MAX_WAIT = 30


async def wait_for_change(registry: StartRegistry, since: int, wait: float,
                          gone: asyncio.Event | None = None) -> None:
    """Return once ``registry.version != since``, after ``wait`` seconds, or once ``gone`` is set
    (the client went away). Woken by the registry's listener: no polling while nothing happens."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def wake() -> None:  # called from the thread that changed the registry
        try:
            loop.call_soon_threadsafe(changed.set)
        except RuntimeError:  # the loop is closed (server shutting down)
            pass

    unsubscribe = registry.subscribe(wake)
    try:
        if registry.version != since:  # changed before we subscribed
            return
        waiters = [asyncio.ensure_future(changed.wait())]
        if gone is not None:
            waiters.append(asyncio.ensure_future(gone.wait()))
        try:
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
    finally:
        unsubscribe()


class KernelStartsHandler(PaiApiHandler):
    _gone: asyncio.Event | None = None

    def on_connection_close(self) -> None:
        super().on_connection_close()  # a body being streamed ends too (PaiApiHandler streams bodies)
        if self._gone is not None:
            self._gone.set()

    @tornado.web.authenticated
    async def get(self) -> None:
        since = self.query_int("since", None, 0, 2**53)
        wait = self.query_int("wait", 0, 0, MAX_WAIT) or 0
        if since is not None and wait > 0:
            self._gone = asyncio.Event()
            await wait_for_change(STARTS, since, wait, self._gone)
            if self._gone.is_set():
                return  # nobody to answer
        self.reply(STARTS.snapshot())


def kernel_routes(prefix: str) -> list[tuple[str, type]]:
    """Registered before :func:`handlers.route_table` (whose last route catches everything)."""
    return [(rf"{prefix}/kernel-starts", KernelStartsHandler)]
