"""Render helpers: the same information as HTML in a notebook and as text in a terminal.

Everything shown by the magics is a :class:`View`: an object carrying both a text and an
HTML form, so IPython's display machinery picks the richest one the front end takes
(``_repr_html_`` in a notebook, ``_repr_pretty_`` in terminal IPython) and one object serves
both. :class:`Table` is the tabular case (job lists, tasks), :func:`kv_view` a short
key/value card. Other magics (ssh, registry, storage) are welcome to use these.

No core client and no heavy import here: rendering must not slow ``%load_ext``.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from pai_magic.core.diagnostics import readable_diagnostics

STATE_COLORS = {
    "WAITING": "#8a6d00", "RUNNING": "#0b62c4", "STOPPING": "#8a6d00", "SUCCEEDED": "#1a7f37",
    "FAILED": "#cf222e", "STOPPED": "#6e7781", "UNKNOWN": "#6e7781",
}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt_epoch_ms(ms: int | float | None) -> str:
    """OpenPAI times are epoch milliseconds; show local wall-clock time."""
    if not ms:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ms) / 1000.0))
    except (OverflowError, OSError, ValueError):
        return "-"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def job_duration(submitted_ms: int | None, completed_ms: int | None, now: float | None = None) -> float | None:
    """Seconds since submission, up to completion when the job ended."""
    if not submitted_ms:
        return None
    end = (completed_ms / 1000.0) if completed_ms else (now if now is not None else time.time())
    return max(0.0, end - submitted_ms / 1000.0)


def state_html(state: str | None) -> str:
    state = (state or "UNKNOWN").upper()
    color = STATE_COLORS.get(state, "#6e7781")
    return f'<span style="color:{color};font-weight:600">{esc(state)}</span>'


def truncate(text: str | None, limit: int = 300) -> str:
    """One line: the text's own lines joined with "; " (diagnostics are often several)."""
    from pai_magic.core.models import summary_line

    return summary_line(text, limit)


class View:
    """A text form and an HTML form of one thing; IPython shows the richest one."""

    def __init__(self, text: str, html_text: str | None = None) -> None:
        self.text = text
        self.html = html_text if html_text is not None else f"<pre>{esc(text)}</pre>"

    def _repr_html_(self) -> str:
        return self.html

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


@dataclass
class Table:
    """Rows of cells; HTML table in a notebook, aligned columns in a terminal.

    Cells are plain values; ``html_cells`` may give a pre-rendered HTML form for some
    cells (a coloured state) keyed by (row index, column index).
    """

    columns: Sequence[str]
    rows: list[list[Any]] = field(default_factory=list)
    title: str | None = None
    empty: str = "Nothing to show."
    footer: str | None = None
    html_cells: dict[tuple[int, int], str] = field(default_factory=dict)

    def text(self) -> str:
        lines: list[str] = []
        if self.title:
            lines.append(self.title)
        if not self.rows:
            lines.append(self.empty)
        else:
            cells = [[str(c) for c in self.columns]] + [["-" if v is None else str(v) for v in r] for r in self.rows]
            widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
            for n, row in enumerate(cells):
                lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
                if n == 0:
                    lines.append("  ".join("-" * w for w in widths))
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = []
        if self.title:
            parts.append(f"<div style='font-weight:600;margin:2px 0'>{esc(self.title)}</div>")
        if not self.rows:
            parts.append(f"<div><i>{esc(self.empty)}</i></div>")
        else:
            head = "".join(f"<th style='text-align:left'>{esc(c)}</th>" for c in self.columns)
            body = []
            for r, row in enumerate(self.rows):
                tds = []
                for c, value in enumerate(row):
                    inner = self.html_cells.get((r, c), esc("-" if value is None else value))
                    tds.append(f"<td style='text-align:left'>{inner}</td>")
                body.append("<tr>" + "".join(tds) + "</tr>")
            parts.append(f"<table class='pai-magic-table'><thead><tr>{head}</tr></thead>"
                         f"<tbody>{''.join(body)}</tbody></table>")
        if self.footer:
            parts.append(f"<div style='color:#6e7781'>{esc(self.footer)}</div>")
        return "".join(parts)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def __repr__(self) -> str:
        return self.text()


def kv_view(title: str, pairs: Iterable[tuple[str, Any]], html_values: dict[str, str] | None = None) -> View:
    """A small card of labelled values (who is logged in where, a job's header)."""
    pairs = [(k, v) for k, v in pairs if v not in (None, "")]
    html_values = html_values or {}
    width = max((len(k) for k, _ in pairs), default=0)
    text = "\n".join([title] + [f"  {k.ljust(width)}  {v}" for k, v in pairs])
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{esc(k)}</th>"
        f"<td style='text-align:left'>{html_values.get(k, esc(v))}</td></tr>" for k, v in pairs)
    return View(text, f"<div style='font-weight:600'>{esc(title)}</div><table>{rows}</table>")


def _kind_label(name: str) -> str:
    from pai_magic.core.kinds import kind_label

    return kind_label(name)


def job_table(jobs: Sequence[Any], *, total: int | None = None, now: float | None = None) -> Table:
    """``%pai_jobs``: one row per ``models.JobSummary``."""
    table = Table(["name", "user", "state", "vc", "gpus", "submitted", "duration", "exit code"],
                  empty="No jobs match.")
    for r, job in enumerate(jobs):
        table.rows.append([
            job.name, job.user, job.state, job.virtual_cluster or "-", job.gpus,
            fmt_epoch_ms(job.submission_time),
            fmt_duration(job_duration(job.submission_time, job.completed_time, now)),
            "-" if job.exit_code is None else job.exit_code,
        ])
        table.html_cells[(r, 2)] = state_html(job.state)
        label = _kind_label(job.name)
        if label:  # a kernel / notebook-run job pai_magic started: say so beside its name
            table.rows[-1][0] = f"{job.name} ({label})"
            table.html_cells[(r, 0)] = f"{esc(job.name)} <span style='color:#6e7781'>({esc(label)})</span>"
    if total is not None and total > len(jobs):
        table.footer = f"{len(jobs)} of {total} jobs shown; use --limit N or --state S to see others."
    return table


def job_detail_view(detail: Any, *, now: float | None = None, ssh_lines: Sequence[str] = ()) -> View:
    """``%pai_job NAME``: header card plus one row per task."""
    duration = fmt_duration(job_duration(detail.submission_time, detail.completed_time, now))
    pairs = [("state", detail.state), ("user", detail.user), ("virtual cluster", detail.virtual_cluster),
             ("submitted", fmt_epoch_ms(detail.submission_time)), ("duration", duration),
             ("exit code", detail.exit_code), ("retries", detail.retries or None),
             ("diagnostics", truncate(readable_diagnostics(detail.diagnostics) or "", 500) if detail.diagnostics
              else None)]
    header = kv_view(f"Job {detail.name}", pairs, {"state": state_html(detail.state)})
    tasks = Table(["task", "state", "ip", "ports", "exit code", "diagnostics"], empty="No tasks yet.")
    for r, task in enumerate(detail.tasks):
        ports = ", ".join(f"{k}:{','.join(str(p) for p in v)}" for k, v in sorted(task.ports.items())) or "-"
        tasks.rows.append([f"{task.role}/{task.index}", task.state, task.container_ip or "-", ports,
                           "-" if task.exit_code is None else task.exit_code,
                           truncate(task.diagnostics, 120) if task.diagnostics else "-"])
        tasks.html_cells[(r, 1)] = state_html(task.state)
    text = header.text + "\n" + tasks.text()
    html_text = header.html + tasks._repr_html_()
    if ssh_lines:
        text += "\n" + "\n".join(ssh_lines)
        html_text += "<pre>" + esc("\n".join(ssh_lines)) + "</pre>"
    return View(text, html_text)


@dataclass
class StatusSnapshot:
    """What the live status line shows for one job at one moment."""

    name: str
    state: str = "SUBMITTED"
    elapsed: float | None = None
    exit_code: int | None = None
    diagnostics: str | None = None
    note: str | None = None  # "detached", "watch stopped: ..."
    extra: list[str] = field(default_factory=list)  # e.g. SSH info lines added by other magics

    @property
    def terminal(self) -> bool:
        from pai_magic.core.models import is_terminal

        return is_terminal(self.state)

    def text(self) -> str:
        parts = [f"[pai] {self.name}: {self.state}"]
        if self.elapsed is not None:
            parts.append(fmt_duration(self.elapsed))
        if self.terminal and self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        line = ", ".join(parts)
        if self.terminal and self.diagnostics:
            line += f" — {truncate(self.diagnostics, 300)}"
        if self.note:
            line += f" ({self.note})"
        return "\n".join([line] + list(self.extra))

    def view(self) -> View:
        bits = [f"<b>{esc(self.name)}</b>", state_html(self.state)]
        if self.elapsed is not None:
            bits.append(esc(fmt_duration(self.elapsed)))
        if self.terminal and self.exit_code is not None:
            bits.append(f"exit code {esc(self.exit_code)}")
        html_line = " · ".join(bits)
        if self.terminal and self.diagnostics:
            html_line += f"<div style='color:#6e7781'>{esc(truncate(self.diagnostics, 500))}</div>"
        if self.note:
            html_line += f" <i style='color:#6e7781'>({esc(self.note)})</i>"
        if self.extra:
            html_line += "<pre style='margin:2px 0'>" + esc("\n".join(self.extra)) + "</pre>"
        return View(self.text(), f"<div class='pai-magic-status'>{html_line}</div>")
