"""HTML pieces of the panel: pure functions from the core's data to escaped markup.

The panel shows lists (a job's tasks, the cluster's storages, an image's platforms) as ONE
``HTML`` widget each whose ``value`` is replaced, never as a widget per row: a value
assignment is one message to the front end and creates no model that could leak.
"""
from __future__ import annotations

import html
import time
from typing import Any, Iterable

STATE_COLORS = {
    "WAITING": "#616161", "RUNNING": "#1565c0", "STOPPING": "#e65100", "SUCCEEDED": "#2e7d32",
    "FAILED": "#c62828", "STOPPED": "#e65100", "UNKNOWN": "#616161",
}
# the Stop buttons: white on a dark red reads in both themes (ipywidgets' "warning" orange
# gave white text a contrast of 2.7)
STOP_STYLE = {"button_color": "#c62828", "text_color": "white"}
# wrapped, never clipped: the end of the line says what to do next
ERROR_STYLE = "color: var(--jp-error-color1, #d32f2f); white-space: normal; overflow-wrap: anywhere;"
NOTE_STYLE = "opacity:.8; white-space: normal; overflow-wrap: anywhere;"
# a narrow output scrolls the table sideways instead of breaking words ("ta sk") mid-token
_TABLE = ("<div style='overflow-x:auto;max-width:100%'><table class='pai-panel-table' style='border-collapse:collapse;"
          "width:100%;font-size:smaller;table-layout:auto'>")
_CELL = "style='padding:1px 6px;text-align:left;vertical-align:top;white-space:nowrap'"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def state_badge(state: str) -> str:
    """The state in words on its colour (colour alone is not enough to read it)."""
    color = STATE_COLORS.get(state, "#616161")
    return (f'<span class="pai-panel-state" data-state="{esc(state)}" style="background:{color};color:#fff;'
            f'border-radius:3px;padding:0 4px;font-size:smaller;white-space:nowrap">{esc(state)}</span>')


def error_html(message: str | None) -> str:
    return f'<div class="pai-panel-error" style="{ERROR_STYLE}">{esc(message)}</div>' if message else ""


def note_html(message: str | None) -> str:
    return f'<div class="pai-panel-note" style="{NOTE_STYLE}">{esc(message)}</div>' if message else ""


def table_html(headers: Iterable[str], rows: Iterable[Iterable[Any]], *, raw_columns: Iterable[int] = ()) -> str:
    """A table; cells are escaped except the columns in ``raw_columns`` (already markup)."""
    raw = set(raw_columns)
    head = "".join(f"<th {_CELL}>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td {_CELL}>{cell if i in raw else esc(cell)}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"{_TABLE}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def copy_button_html(line: str, label: str = "", kind: str = "") -> str:
    """A line of SSH info with a button that copies it (navigator.clipboard in the page). The
    panel reassigns this HTML only when its text changes, so "Copied" stays after a refresh."""
    quoted = esc(line)
    head = (f'<div class="pai-panel-ssh-label" style="opacity:.75;font-size:smaller">{esc(label)}</div>'
            if label else "")
    return (f'{head}<div class="pai-panel-ssh-line" data-kind="{esc(kind)}" style="overflow-wrap:anywhere">'
            f'<code>{quoted}</code> <button class="jupyter-button" data-line="{quoted}" '
            f'onclick="navigator.clipboard.writeText(this.dataset.line);this.textContent=\'Copied\'">'
            f'Copy</button></div>')


def when(epoch_ms: int | None, now: float | None = None) -> str:
    """'3 min ago' for a submission time in epoch milliseconds."""
    if not epoch_ms:
        return ""
    seconds = max(0.0, (now if now is not None else time.time()) - epoch_ms / 1000.0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def page_label(offset: int, shown: int, total: int | None) -> str:
    """'1–20 of 345' (or '1–20' when the cluster does not count)."""
    if not shown:
        return "no jobs" if not offset else f"nothing past {offset}"
    span = f"{offset + 1}–{offset + shown}"
    return f"{span} of {total}" if total is not None else span


def task_table_html(tasks: Iterable[Any]) -> str:
    """Task, state, IP, ports, exit code, attempt: the portal's task list."""
    rows = []
    for t in tasks:
        ports = ", ".join(f"{k}: {','.join(str(p) for p in v)}" for k, v in sorted((t.ports or {}).items()))
        rows.append((f"{esc(t.role)}/{t.index}", state_badge(t.state), esc(t.container_ip or "-"), esc(ports or "-"),
                     esc("" if t.exit_code is None else t.exit_code), esc(t.attempt_id)))
    if not rows:
        return note_html("No task yet: the job is waiting for resources.")
    return table_html(("task", "state", "IP", "ports", "exit", "attempt"), rows, raw_columns=range(6))


def storages_html(rows: list[Any]) -> str:
    """The cluster's storages (``StorageOverview``) with where each is mounted here and its usage."""
    if not rows:
        return note_html("The cluster has no storage for you.")
    return table_html(("storage", "type", "source", "default", "mounted here", "usage"),
                      [(r.name, r.type or "-", r.source or "-", "yes" if r.default else "",
                        r.mountpoint or "not mounted", r.usage or "-") for r in rows])


def image_details_html(details: Iterable[Any]) -> str:
    """One row per platform of a tag: size, created, platform, digest."""
    from pai_magic.core.storage.usage import human_bytes

    rows = [(f"{d.repository}:{d.tag}", human_bytes(d.size) if d.size else "-",
             (d.created or "-")[:19].replace("T", " "), d.platform, (d.digest or "")[:19], d.error or "")
            for d in details]
    return table_html(("image", "size", "created", "platform", "digest", "problem"), rows)
