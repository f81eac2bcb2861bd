"""A backend subclass for the config-swap test: the real CoreBackend, its status labelled."""
from __future__ import annotations

from typing import Any

from pai_magic.server.backend import CoreBackend


class PinnedStatusBackend(CoreBackend):
    def status(self) -> dict[str, Any]:
        data = super().status()
        data["message"] = "served by PinnedStatusBackend"
        return data
