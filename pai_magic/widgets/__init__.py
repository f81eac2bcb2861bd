"""ipywidgets face of pai_magic: ``PaiPanel()`` shows jobs (search, filters, paging, tasks, logs,
SSH, stop, clone), a submit form with YAML import/export, registry images, storages and login.

Imported only when asked for (``from pai_magic.widgets import PaiPanel``), so that
``%load_ext pai_magic`` never pays for ipywidgets.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PaiPanel", "panel"]


def __getattr__(name: str) -> Any:
    if name == "PaiPanel":
        from pai_magic.widgets.jobs_panel import PaiPanel

        return PaiPanel
    raise AttributeError(name)


def panel(profile: str | None = None, **kwargs: Any) -> Any:
    """A new :class:`PaiPanel` (display it by leaving it last in a cell)."""
    from pai_magic.widgets.jobs_panel import PaiPanel

    return PaiPanel(profile, **kwargs)
