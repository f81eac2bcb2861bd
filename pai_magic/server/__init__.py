"""The Jupyter server extension behind the pai_magic sidebar.

It runs the core in the Jupyter server process, so the sidebar works with no kernel at all.
Enabled by ``jupyter-config/jupyter_server_config.d/pai_magic.json``
(``ServerApp.jpserver_extensions: {"pai_magic.server": true}``), which the wheel installs into
``etc/jupyter/jupyter_server_config.d/``.
"""
from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from pai_magic.server.app import PaiMagicExtension

    return [{"module": "pai_magic.server", "app": PaiMagicExtension}]
