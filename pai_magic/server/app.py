"""The ExtensionApp: routes under ``/pai-magic/api/`` and a swappable backend.

The backend is a traitlets ``Type`` (the jupyter-scheduler habit) so a deployment or a test
swaps it through config (``c.PaiMagicExtension.backend_class = "my.Backend"``) without
touching the handlers. Core calls block (requests, SSH), so they run on a small thread pool
owned here, never on the server's event loop.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from jupyter_server.extension.application import ExtensionApp
from traitlets import Instance, Int, Type

from pai_magic.server.backend import CoreBackend, PaiBackend
from pai_magic.server.ledger import SubmissionLedger

API_PREFIX = "/pai-magic/api"


class PaiMagicExtension(ExtensionApp):
    """pai_magic's server extension: the sidebar's only door to the core."""

    name = "pai_magic"
    description = "OpenPAI jobs for the JupyterLab sidebar (pai_magic)"
    load_other_extensions = True

    backend_class = Type(
        default_value=CoreBackend,
        klass=PaiBackend,
        config=True,
        help="The class that answers the API by calling pai_magic.core (swap it in tests or deployments).",
    )
    workers = Int(4, config=True, help="Threads for blocking core calls (HTTP to the cluster, SSH).")

    backend = Instance(PaiBackend, allow_none=True)

    def initialize_settings(self) -> None:
        self.backend = self.backend_class(parent=self, log=self.log)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pai-magic")
        self.settings.update({
            "pai_magic_backend": self.backend,
            "pai_magic_executor": self._executor,
            "pai_magic_ledger": SubmissionLedger(),
        })
        self.log.info("pai_magic: server extension ready at %s/ (backend %s)",
                      API_PREFIX, type(self.backend).__name__)

    def initialize_handlers(self) -> None:
        from pai_magic.server.handlers import route_table
        from pai_magic.server.kernel_handlers import kernel_routes
        from pai_magic.server.notebook_handlers import notebook_routes

        self.handlers.extend(notebook_routes(API_PREFIX))  # before route_table's catch-all
        self.handlers.extend(kernel_routes(API_PREFIX))
        self.handlers.extend(route_table(API_PREFIX))

    async def stop_extension(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self.backend is not None:
            self.backend.close()
