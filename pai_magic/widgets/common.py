"""What every part of the panel shares: the error sentence, in-place assignment, guarded
callbacks, and counting the widget models a kernel holds."""
from __future__ import annotations

import html
import logging
import re
from typing import Any, Callable

import ipywidgets as W

from pai_magic.core.errors import PaiError
from pai_magic.widgets.views import error_html

log = logging.getLogger("pai_magic.widgets")


def one_line(exc: BaseException) -> str:
    """A PaiError's own sentence; anything else is a bug, logged with its traceback."""
    if isinstance(exc, PaiError):
        return str(exc)
    log.error("pai_magic panel: unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return f"Internal error ({type(exc).__name__}): see the kernel log, and please report it."


def set_if_changed(widget: Any, name: str, value: Any) -> None:
    """Assign only a changed value: an equal HTML value re-sent would re-render it (and reset
    a "Copied" button the person just clicked)."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


def guarded(fn: Callable[[], Any], line: W.HTML) -> Any:
    """Run a callback; a failure becomes ``line``'s red sentence and None, a success clears it
    (a widget callback must never raise into the front end)."""
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001
        set_if_changed(line, "value", error_html(one_line(exc)))
        return None
    set_if_changed(line, "value", "")
    return result


def text_of(markup: str) -> str:
    """What an HTML widget says, without its markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def widget_count() -> int:
    """How many widget models exist in this kernel (each costs the front end a model)."""
    from ipywidgets.widgets import widget as widget_module

    instances = getattr(widget_module, "_instances", None)
    if instances is None:  # ipywidgets 7
        instances = W.Widget.widgets
    return len(instances)


def owned_widgets(root: W.Widget) -> list[W.Widget]:
    """``root`` and every widget reachable from its traits (children, layout, style ...)."""
    seen: dict[int, W.Widget] = {}
    stack = [root]
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen[id(widget)] = widget
        for name in widget.keys:
            value = getattr(widget, name, None)
            items = value if isinstance(value, (list, tuple)) else (value,)
            stack.extend(v for v in items if isinstance(v, W.Widget))
    return list(seen.values())
