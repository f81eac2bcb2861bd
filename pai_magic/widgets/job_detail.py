"""The open job in the panel: its state, task table, SSH commands and the log of any task.

A fixed set of widgets whose values are replaced on each refresh (only when they change, so a
"Copied" button the person just clicked keeps its label); the task list is one HTML table and
the task picker one dropdown whose options are replaced, never a widget per task.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

import ipywidgets as W

from pai_magic.core.diagnostics import readable_diagnostics
from pai_magic.core.kinds import kind_label
from pai_magic.core.models import is_terminal
from pai_magic.widgets.common import set_if_changed as _set
from pai_magic.widgets.views import STOP_STYLE, copy_button_html, esc, note_html, state_badge, task_table_html

log = logging.getLogger("pai_magic.widgets")

LOG_LINES = 40
LOG_TAIL_CHARS = 16384


def notebook_link(full_name: str) -> str:
    """A notebook run's executed copy, from the notebook-run index when that module exists
    (``pai_magic.core.notebook.results``); '' otherwise."""
    try:
        from pai_magic.core.notebook.results import find_result
    except ImportError:
        return ""
    try:
        result = find_result(full_name)
    except Exception:  # noqa: BLE001 - a broken index must not hide the job
        log.debug("pai_magic panel: notebook result lookup failed", exc_info=True)
        return ""
    path = getattr(result, "notebook", None) if result is not None else None
    if not path:
        return ""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    target = rel if not rel.startswith("..") else path
    outputs = getattr(result, "outputs_message", "")  # the files the notebook wrote, in the core's words
    return (f"<div class='pai-panel-notebook'>Executed notebook: <a href='{esc(target)}' target='_blank' "
            f"rel='noopener'>{esc(os.path.basename(path))}</a> <code style='opacity:.7'>{esc(path)}</code>"
            + (f"<div class='pai-panel-notebook-outputs'>{esc(outputs)}</div>" if outputs else "") + "</div>")


class JobDetail:
    """The detail box. ``on_stop`` / ``on_clone`` / ``on_close`` are the panel's actions;
    ``on_log_choice`` is called when the person picks another task, stream or follow."""

    def __init__(self, *, on_stop: Callable[[], None], on_clone: Callable[[], None], on_close: Callable[[], None],
                 on_log_choice: Callable[[], None]) -> None:
        self.header = W.HTML("")
        self.stop_button = W.Button(description="Stop", icon="stop", style=STOP_STYLE)
        self.clone_button = W.Button(description="Clone", icon="copy", tooltip="Fill the submit form from this job")
        self.close_button = W.Button(description="Close", tooltip="Close the job's detail")
        self.stop_button.on_click(lambda _b: on_stop())
        self.clone_button.on_click(lambda _b: on_clone())
        self.close_button.on_click(lambda _b: on_close())
        self.tasks = W.HTML("")
        self.ssh_box = W.HTML("")
        self.ssh_text = W.Textarea(layout=W.Layout(width="auto", height="60px", display="none"), disabled=True)
        self.log_task = W.Dropdown(options=[], description="Log of", style={"description_width": "50px"},
                                   layout=W.Layout(width="auto", flex="1 1 auto"))
        self.log_stream = W.ToggleButtons(options=["stdout", "stderr", "all"], value="stdout",
                                          style={"button_width": "72px"})
        self.log_follow = W.Checkbox(True, description="follow", indent=False, layout=W.Layout(width="auto"))
        self._on_log_choice = on_log_choice
        self._updating = False
        for widget in (self.log_task, self.log_stream, self.log_follow):
            widget.observe(self._log_choice_changed, names="value")
        self.log_box = W.HTML("")
        self.box = W.VBox(
            [self.header, W.HBox([self.stop_button, self.clone_button, self.close_button],
                                 layout=W.Layout(flex_flow="row wrap")),
             self.tasks, self.ssh_box, self.ssh_text,
             W.HBox([self.log_task, self.log_stream, self.log_follow],
                    layout=W.Layout(flex_flow="row wrap", align_items="center")),
             self.log_box],
            layout=W.Layout(display="none", width="100%", border="1px solid var(--jp-border-color2, #ccc)",
                            padding="4px"))
        self.box.add_class("pai-panel-detail")
        self.ssh_lines: list[str] = []
        self.ssh_labels: list[str] = []   # one per ssh_lines entry
        self.log_lines: list[str] = []
        self.log_message = ""             # why there are no lines, or that they are cut
        # (job, task, stream) of the last log read, and of the read made once the job had ended:
        # only the latter is final. A read made while the job ran may predate the task's last
        # output (or all of it), so it must never stand for the finished job's log.
        self.log_read_key: tuple[str, str, str] | None = None
        self.log_final_key: tuple[str, str, str] | None = None

    def forget_log(self) -> None:
        """The next render reads the log again (another job, task or stream was chosen)."""
        self.log_read_key = self.log_final_key = None

    def _log_choice_changed(self, _change: Any) -> None:
        if not self._updating:
            self.forget_log()
            self._on_log_choice()

    def clear(self) -> None:
        """Hide the box and forget the job."""
        self.forget_log()
        for widget in (self.header, self.ssh_box, self.log_box, self.tasks):
            _set(widget, "value", "")
        self.ssh_lines, self.ssh_labels, self.log_lines, self.log_message = [], [], [], ""
        _set(self.ssh_text.layout, "display", "none")
        _set(self.box.layout, "display", "none")

    def render(self, client: Any, name: str) -> None:
        """Read job ``name`` (``user~name``) and show it."""
        detail = client.get_job(name)
        label = kind_label(detail.name)
        kind = f" <span style='opacity:.75'>({esc(label)})</span>" if label else ""
        exit_text = f", exit code {detail.exit_code}" if detail.exit_code is not None else ""
        diag = note_html(readable_diagnostics(detail.diagnostics) or "") if detail.diagnostics else ""
        _set(self.header, "value",
             f"<div class='pai-panel-detail-title' style='font-weight:bold;overflow-wrap:anywhere'>"
             f"{esc(detail.full_name)}{kind}</div><div>{state_badge(detail.state)}{esc(exit_text)}</div>"
             f"{diag}{notebook_link(detail.full_name)}")
        _set(self.stop_button.layout, "display", "none" if detail.terminal or detail.state == "STOPPING" else None)
        _set(self.box.layout, "display", None)
        _set(self.tasks, "value", task_table_html(detail.tasks))
        self._render_ssh(client, name, detail)
        self._updating = True
        try:
            options = [f"{t.role}/{t.index}" for t in detail.tasks]
            if list(self.log_task.options) != options:
                current = self.log_task.value
                self.log_task.options = options
                self.log_task.value = current if current in options else (options[0] if options else None)
        finally:
            self._updating = False
        self._render_log(client, name, detail)

    def _render_ssh(self, client: Any, name: str, detail: Any) -> None:
        lines: list[str] = []
        labels: list[str] = []
        body = ""
        if detail.state == "RUNNING":
            from pai_magic.core.ssh.info import SSH_LINE_LABELS, ssh_info

            info = ssh_info(client, name)
            lines = [c["line"] for c in info.commands]
            labels = [f"{c['task']}: {SSH_LINE_LABELS[c['kind']]}" for c in info.commands]
            body = "".join(copy_button_html(c["line"], label, c["kind"]) for c, label in zip(info.commands, labels))
            if info.message:
                body = note_html(info.message) + body
            body = f"<b>SSH</b>{body}"
        self.ssh_lines, self.ssh_labels = lines, labels
        _set(self.ssh_box, "value", body)
        _set(self.ssh_text, "value", "\n".join(lines))
        _set(self.ssh_text.layout, "display", None if lines else "none")

    def _render_log(self, client: Any, name: str, detail: Any) -> None:
        """The last lines of the chosen task's log; re-read on each refresh while the job runs
        and "follow" is on; a finished job's log is read once more after it ended (whatever
        "follow" says: the view must not keep a running job's partial log), then never again."""
        from pai_magic.core.errors import NotFoundError

        stream = self.log_stream.value
        if not detail.tasks:
            self._show_log([], "No log yet: the job has no task yet.")
            return
        choice = self.log_task.value or f"{detail.tasks[0].role}/{detail.tasks[0].index}"
        role, _, index = choice.rpartition("/")
        key = (name, choice, stream)
        terminal = is_terminal(detail.state)
        if self.log_final_key == key:
            return
        if not terminal and not self.log_follow.value and self.log_read_key == key:
            return
        try:
            # tail mode: the log-manager sends only the last 16 KiB, not the whole file each refresh
            chunk = client.task_log_text(name, role, int(index), stream=stream, detail=detail, tail=True)
        except NotFoundError as exc:
            if exc.code != "NoTaskLogError":
                raise
            self._show_log([], f"No {stream} log: {choice} never started." if terminal
                           else f"No log yet: {choice} has not started; it shows here once it runs.", choice)
            self.log_read_key = key
            if terminal:
                self.log_final_key = key
            return
        self.log_read_key = key
        if terminal:
            self.log_final_key = key
        text = chunk.text[-LOG_TAIL_CHARS:]
        if not text:
            self._show_log([], f"{choice} wrote nothing to {stream}." if terminal else f"Nothing on {stream} yet.",
                           choice)
            return
        lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
        shown = lines[-LOG_LINES:]
        cut = len(shown) < len(lines) or len(chunk.text) >= LOG_TAIL_CHARS
        self._show_log(shown, f"Last {len(shown)} lines of {stream}." if cut else "", choice)

    def _show_log(self, lines: list[str], message: str, task: str = "") -> None:
        self.log_lines, self.log_message = lines, message
        title = f"<b>Log of {esc(task)}</b>" if task else "<b>Log</b>"
        text = (f"<pre class='pai-panel-log-text' style='max-height:20em;overflow:auto;white-space:pre-wrap;"
                f"overflow-wrap:anywhere'>{esc(chr(10).join(lines))}</pre>") if lines else ""
        _set(self.log_box, "value", f"<div class='pai-panel-log'>{title}{note_html(message)}{text}</div>")
