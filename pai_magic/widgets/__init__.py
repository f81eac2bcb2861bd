"""ipywidgets face of pai_magic: ``PaiPanel()`` shows jobs (search, filters, paging, tasks, logs,
SSH, stop, clone), a submit form with YAML import/export, registry images, storages and login.

Imported only when asked for (``from pai_magic.widgets import PaiPanel``), so that
``%load_ext pai_magic`` never pays for ipywidgets.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PaiPanel", "panel", "close_all"]


def __getattr__(name: str) -> Any:
    if name == "PaiPanel":
        from pai_magic.widgets.jobs_panel import PaiPanel

        return PaiPanel
    raise AttributeError(name)


_PANELS: dict[str | None, Any] = {}   # profile -> the panel panel() returns for it


def panel(profile: str | None = None, **kwargs: Any) -> Any:
    """The kernel's :class:`PaiPanel` for ``profile`` (default: the notebook's, see
    :func:`~pai_magic.widgets.session_profile.notebook_profile`; display it by leaving it last in a cell).

    The same panel each time: re-running the cell shows the same widgets again instead of
    making ~500 more widget models and another refresh. With options (``refresh_interval=``,
    ``page_size=`` ...) a new panel replaces it, and the previous one is closed.
    """
    from pai_magic.widgets.jobs_panel import PaiPanel
    from pai_magic.widgets.session_profile import notebook_profile

    profile = profile or notebook_profile()
    current = _PANELS.get(profile)
    if current is not None and not current.closed:
        if not kwargs:
            return current
        current.close()
    _PANELS[profile] = PaiPanel(profile, **kwargs)
    return _PANELS[profile]


def close_all() -> int:
    """Close every open panel of this kernel (their widget models and their refresh); how many."""
    from pai_magic.widgets.jobs_panel import open_panels

    panels = open_panels()
    for item in panels:
        item.close()
    _PANELS.clear()
    return len(panels)
