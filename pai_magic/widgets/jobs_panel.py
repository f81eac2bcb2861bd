"""An ipywidgets panel for the notebook: log in, see jobs, submit, stop, copy SSH commands,
read the end of a job's log.

The same things the JupyterLab sidebar does, for front ends without the labextension
(classic notebook, VS Code, Colab-like hosts). Each button calls one core function; errors
become one red line, never a traceback. The password box is an ipywidgets ``Password``
(rendered as ``<input type=password>``) and is emptied as soon as it is read, so the
password is neither echoed nor kept in the widget state a notebook may save.

Usage::

    from pai_magic.widgets import PaiPanel
    PaiPanel()
"""
from __future__ import annotations

import html
import logging
import threading
from typing import Any, Callable

import ipywidgets as W

from pai_magic.core.errors import AuthError, PaiError
from pai_magic.core.models import is_terminal

log = logging.getLogger("pai_magic.widgets")

# wrapped, never clipped: the end of the line says what to do next
ERROR_STYLE = "color: var(--jp-error-color1, #d32f2f); white-space: normal; overflow-wrap: anywhere;"
STATE_COLORS = {
    "WAITING": "#757575", "RUNNING": "#1976d2", "STOPPING": "#f57c00", "SUCCEEDED": "#388e3c",
    "FAILED": "#d32f2f", "STOPPED": "#f57c00", "UNKNOWN": "#757575",
}
MAX_INTERVAL = 60.0
LOG_LINES = 40
LOG_TAIL_CHARS = 16384


def one_line(exc: BaseException) -> str:
    """A PaiError's own sentence; anything else is a bug, logged with its traceback."""
    if isinstance(exc, PaiError):
        return str(exc)
    log.error("pai_magic panel: unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return f"Internal error ({type(exc).__name__}): see the kernel log, and please report it."


def state_badge(state: str) -> str:
    color = STATE_COLORS.get(state, "#757575")
    return (f'<span class="pai-magic-state" style="background:{color};color:#fff;border-radius:3px;'
            f'padding:0 4px;font-size:smaller">{html.escape(state)}</span>')


def copy_button_html(line: str, label: str = "", kind: str = "") -> str:
    """A line of SSH info with a button that copies it (navigator.clipboard in the page)."""
    quoted = html.escape(line, quote=True)
    head = (f'<div class="pai-magic-ssh-label" style="opacity:.75;font-size:smaller">{html.escape(label)}</div>'
            if label else "")
    return (f'{head}<div class="pai-magic-ssh-line" data-kind="{html.escape(kind, quote=True)}"><code>{quoted}</code> '
            f'<button class="jupyter-button" data-line="{quoted}" '
            f'onclick="navigator.clipboard.writeText(this.dataset.line);this.textContent=\'Copied\'">'
            f'Copy</button></div>')


class PaiPanel:
    """The panel. ``PaiPanel()`` in a cell shows it; ``.widget`` is the ipywidgets box.

    ``profile`` pins a profile name (default: the active one, as everywhere else).
    ``refresh_interval`` seconds between job refreshes in the background (None: only on
    demand); failures back off up to a minute.
    """

    def __init__(self, profile: str | None = None, *, refresh_interval: float | None = 5.0,
                 job_limit: int = 20, local_data_dir: str | None = None) -> None:
        self.profile_name = profile
        self.job_limit = job_limit
        self.local_data_dir = local_data_dir
        from pai_magic.core.client import ClientForProfile

        self._clients = ClientForProfile()
        self._submit_lock = threading.Lock()
        self.job_states: dict[str, str] = {}
        self.selected: str | None = None
        self.ssh_lines: list[str] = []
        self.ssh_labels: list[str] = []  # one per ssh_lines entry
        self.log_lines: list[str] = []  # the end of the selected job's first task log
        self.log_message: str = ""  # why there are no lines, or that they are cut
        self._log_final_key: tuple[str, str, str] | None = None  # a finished job's log is read once
        self.last_submitted: str | None = None
        self._action_error: str | None = None
        self._refresh_error: str | None = None
        self._build()
        self._stop_event = threading.Event()
        if not refresh_interval:
            self.refresh()
        self._thread: threading.Thread | None = None
        if refresh_interval:
            self._thread = threading.Thread(target=self._auto_refresh, args=(float(refresh_interval),),
                                            name="pai-magic-panel", daemon=True)
            self._thread.start()

    # ---- display ---------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"PaiPanel(profile={self.profile_name!r}, jobs={len(self.job_states)})"

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        self._stop_event.set()
        self.widget.close()
        self._clients.close()

    # ---- building ------------------------------------------------------------------------------

    def _build(self) -> None:
        full = W.Layout(width="100%")
        self.title = W.HTML("<b>OpenPAI</b>")
        self.cluster_label = W.HTML("Not logged in")
        self.error = W.HTML("")
        self.url = W.Text(placeholder="http://10.0.0.1 or http://127.0.0.1:PORT", description="Cluster URL",
                          layout=full, style={"description_width": "90px"})
        self.user = W.Text(placeholder="user name", description="User", layout=full,
                           style={"description_width": "90px"})
        self.password = W.Password(placeholder="password (or a token)", description="Password", layout=full,
                                   style={"description_width": "90px"})
        self.use_token = W.Checkbox(False, description="paste a token instead (OIDC clusters)", indent=False)
        self.login_button = W.Button(description="Log in", button_style="primary")
        self.local_button = W.Button(description="Start local backend")
        self.login_button.on_click(lambda _b: self.login())
        self.local_button.on_click(lambda _b: self.start_local())
        self.login_box = W.VBox([self.url, self.user, self.password, self.use_token,
                                 W.HBox([self.login_button, self.local_button])])

        self.job_name = W.Text(placeholder="name stem, e.g. train", description="Name", layout=full,
                               style={"description_width": "90px"})
        self.image = W.Text("ubuntu:22.04", description="Image", layout=full, style={"description_width": "90px"})
        self.commands = W.Textarea(placeholder="shell commands, one per line", description="Commands",
                                   layout=W.Layout(width="100%", height="80px"), style={"description_width": "90px"})
        self.gpu = W.BoundedIntText(0, min=0, max=64, description="GPUs", style={"description_width": "90px"})
        self.ssh = W.Checkbox(False, description="SSH into the task (keeps it alive)", indent=False)
        self.submit_button = W.Button(description="Submit", button_style="success")
        self.submit_button.on_click(lambda _b: self.submit())
        self.submit_box = W.VBox([self.job_name, self.image, self.commands, self.gpu, self.ssh, self.submit_button])

        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.jobs_box = W.VBox([])
        self.detail = W.HTML("")
        self.ssh_box = W.HTML("")
        self.ssh_text = W.Textarea(layout=W.Layout(width="100%", height="60px", display="none"), disabled=True)
        self.log_stderr = W.Checkbox(False, description="stderr", indent=False,
                                     layout=W.Layout(width="auto", display="none"))
        self.log_stderr.observe(self._on_log_stream, names="value")
        self.log_box = W.HTML("")
        self.close_detail_button = W.Button(description="Close", tooltip="Close the job's detail (stops reading its log)",
                                            layout=W.Layout(width="auto", display="none"))
        self.close_detail_button.on_click(lambda _b: self.close_detail())

        self.tabs = W.Tab(children=[self.jobs_panel(), self.submit_box, self.login_box])
        for i, title in enumerate(("Jobs", "Submit", "Login")):
            self.tabs.set_title(i, title)
        self.widget = W.VBox([self.title, self.cluster_label, self.error, self.tabs])
        self.widget.add_class("pai-magic-panel")

    def jobs_panel(self) -> W.Widget:
        return W.VBox([self.refresh_button, self.jobs_box, self.detail, self.ssh_box, self.ssh_text,
                       self.log_stderr, self.log_box, self.close_detail_button])

    # ---- helpers -------------------------------------------------------------------------------

    def _show_error(self, message: str | None) -> None:
        """An action's error (login, submit, stop): it stays until the user's next action, so
        the background refresh a few seconds later never wipes what the user must read."""
        self._action_error = message
        self._render_error()

    def _show_refresh_error(self, message: str | None) -> None:
        """The refresh's own error: set and cleared by each refresh."""
        self._refresh_error = message
        self._render_error()

    def _render_error(self) -> None:
        message = self._action_error or self._refresh_error
        self.error.value = (f'<div class="pai-magic-error" style="{ERROR_STYLE}">{html.escape(message)}</div>'
                            if message else "")

    @property
    def error_text(self) -> str:
        """The red line as plain text ('' when there is none)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.error.value))

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run a callback; any failure becomes the red line (and None)."""
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - a widget callback must never raise into the front end
            self._show_error(one_line(exc))
            return None
        self._show_error(None)
        return result

    def _profile(self):
        from pai_magic.core.profiles import load_profile

        return load_profile(self.profile_name)

    def _client(self):
        prof = self._profile()
        if not prof.token:
            raise AuthError(f"Not logged in to {prof.url}: use the Login tab.")
        return self._clients.get(prof)

    def _show_profile(self, prof) -> None:
        self.cluster_label.value = (f"{html.escape(prof.user or '?')} @ {html.escape(prof.url)} "
                                    f"<span style='opacity:.7'>(profile {html.escape(prof.name)})</span>")
        if not self.url.value:
            self.url.value = prof.url
        if not self.user.value and prof.user:
            self.user.value = prof.user

    # ---- callbacks -------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in with the form; the password box is emptied before anything else happens."""
        secret = self.password.value
        self.password.value = ""

        def work():
            from pai_magic.core import auth

            url, user = self.url.value.strip(), self.user.value.strip()
            if not url:
                raise PaiError("Give the cluster URL, e.g. http://10.0.0.1.")
            if not secret:
                raise PaiError("Give the password (or tick the token box and paste a token).")
            if self.use_token.value:
                prof, _status = auth.login_with_token(url, secret, user=user or None, profile_name=self.profile_name)
            else:
                if not user:
                    raise PaiError("Give the user name for a password login.")
                prof = auth.login_with_password(url, user, secret, profile_name=self.profile_name)
            self.profile_name = prof.name
            return prof

        prof = self._guard(work)
        if prof is not None:
            self._show_profile(prof)
            self.tabs.selected_index = 0
            self.refresh()

    def start_local(self) -> None:
        """Start (or find) the embedded backend and log into it."""
        def work():
            # the same find-or-start the server extension uses; here the backend, when started,
            # lives in this kernel's process and stops with it
            from pai_magic.local.connect import connect_local

            prof = connect_local(self.local_data_dir, profile_name=self.profile_name).profile
            self.profile_name = prof.name
            return prof

        self.cluster_label.value = "Starting the local backend..."
        prof = self._guard(work)
        if prof is not None:
            self._show_profile(prof)
            self.tabs.selected_index = 0
            self.refresh()
        else:
            self.cluster_label.value = "Not logged in"

    def refresh(self) -> bool:
        """Read the profile and the newest jobs; True when it worked."""
        def work():
            prof = self._profile()
            self._show_profile(prof)
            client = self._client()
            page = client.list_jobs(username=client.user or None, limit=self.job_limit)
            return list(page.items)

        try:
            jobs = work()
        except AuthError as exc:
            self._show_refresh_error(str(exc))
            self.tabs.selected_index = 2
            return False
        except Exception as exc:  # noqa: BLE001
            self._show_refresh_error(one_line(exc))
            return False
        self._render_jobs(jobs)
        selected = self.selected
        if selected:
            try:
                self._render_detail(selected)
            except Exception as exc:  # noqa: BLE001 - a failing detail must not stop the list
                self._show_refresh_error(one_line(exc))
                return True
        self._show_refresh_error(None)
        return True

    def submit(self) -> str | None:
        """Submit the form's job once (a second click while it runs is ignored)."""
        if not self._submit_lock.acquire(blocking=False):
            return None
        self.submit_button.disabled = True
        try:
            def work():
                from pai_magic.core.jobs import submit_job
                from pai_magic.core.protocol import JobSpec, build_protocol

                client = self._client()
                lines = [ln for ln in self.commands.value.splitlines() if ln.strip()]
                if not lines:
                    raise PaiError("Give at least one shell command.")
                spec = JobSpec(name=self.job_name.value.strip() or "panel", image=self.image.value.strip(),
                               commands=lines, gpu=int(self.gpu.value),
                               virtual_cluster=client.profile.virtual_cluster or "default",
                               keep_alive=bool(self.ssh.value))
                if self.ssh.value:
                    from pai_magic.core.ssh.keys import ensure_key

                    spec.ssh_public_key = ensure_key(client.profile.ssh_key).public_line
                return submit_job(client, build_protocol(spec))

            name = self._guard(work)
            if name:
                self.last_submitted = name
                self.selected = name
                self.commands.value = ""
                self.tabs.selected_index = 0
                self.refresh()
            return name
        finally:
            self.submit_button.disabled = False
            self._submit_lock.release()

    def stop(self, name: str) -> None:
        def work():
            self._client().stop(name)
            return True

        if self._guard(work):
            self.refresh()

    def select(self, name: str) -> None:
        """Show one job's tasks, the end of its first task's log and, while it runs with SSH,
        its SSH commands. Each refresh re-reads them until :meth:`close_detail`."""
        if name != self.selected:
            self._log_final_key = None
        self.selected = name
        self._guard(lambda: self._render_detail(name))

    def close_detail(self) -> None:
        """Close the detail: refreshes then read only the list (no detail, SSH or log)."""
        self.selected = None
        self._log_final_key = None
        self.detail.value = self.ssh_box.value = self.log_box.value = ""
        self.ssh_lines, self.ssh_labels, self.log_lines, self.log_message = [], [], [], ""
        self.ssh_text.layout.display = "none"
        self.log_stderr.layout.display = "none"
        self.close_detail_button.layout.display = "none"

    def _on_log_stream(self, _change: Any) -> None:
        if self.selected:
            self.select(self.selected)

    # ---- rendering -------------------------------------------------------------------------------

    def _render_jobs(self, jobs: list[Any]) -> None:
        self.job_states = {j.name: j.state for j in jobs}
        rows: list[W.Widget] = []
        for job in jobs:
            name = W.Button(description=job.name, tooltip=f"{job.user}~{job.name}: details",
                            layout=W.Layout(width="auto"))
            name.on_click(lambda _b, n=job.name: self.select(n))
            parts: list[W.Widget] = [name, W.HTML(state_badge(job.state))]
            if not is_terminal(job.state):
                stop = W.Button(description="Stop", button_style="warning", tooltip=f"Stop {job.name}",
                                layout=W.Layout(width="60px"))
                stop.on_click(lambda _b, n=job.name: self.stop(n))
                parts.append(stop)
            row = W.HBox(parts)
            row.add_class("pai-magic-job")
            rows.append(row)
        self.jobs_box.children = rows or [W.HTML("<i>No jobs yet.</i>")]

    def _render_detail(self, name: str) -> None:
        client = self._client()
        detail = client.get_job(name)
        tasks = "".join(f"<li>{html.escape(t.role)}/{t.index}: {state_badge(t.state)}</li>" for t in detail.tasks)
        exit_text = f", exit code {detail.exit_code}" if detail.exit_code is not None else ""
        diag = f"<div style='opacity:.8'>{html.escape(detail.diagnostics)}</div>" if detail.diagnostics else ""
        self.detail.value = (f"<h4>{html.escape(detail.name)}</h4><div>{state_badge(detail.state)}{exit_text}</div>"
                             f"{diag}<ul>{tasks}</ul>")
        self.close_detail_button.layout.display = None
        self.ssh_lines = []
        self.ssh_labels = []
        self.ssh_box.value = ""
        self.ssh_text.layout.display = "none"
        if detail.state == "RUNNING":
            from pai_magic.core.ssh.info import SSH_LINE_LABELS, ssh_info

            info = ssh_info(client, name)
            commands = info.commands
            lines = [c["line"] for c in commands]
            self.ssh_lines = lines
            self.ssh_labels = [f"{c['task']}: {SSH_LINE_LABELS[c['kind']]}" for c in commands]
            body = "".join(copy_button_html(c["line"], label, c["kind"])
                           for c, label in zip(commands, self.ssh_labels))
            if info.message:
                body = f"<div style='white-space:pre-wrap;opacity:.8'>{html.escape(info.message)}</div>" + body
            self.ssh_box.value = f"<b>SSH</b>{body}"
            if lines:
                self.ssh_text.value = "\n".join(lines)
                self.ssh_text.layout.display = None
        self._render_log(client, name, detail)

    def _render_log(self, client: Any, name: str, detail: Any) -> None:
        """The last lines of the first task's stdout (or stderr), read on each refresh while
        the job runs and the detail is open; a finished job's log is read once."""
        from pai_magic.core.errors import NotFoundError

        stream = "stderr" if self.log_stderr.value else "stdout"
        self.log_stderr.layout.display = None
        if not detail.tasks:
            self._show_log([], "No log yet: the job has no task yet.")
            return
        first = detail.tasks[0]
        task = f"{first.role}/{first.index}"
        key = (name, task, stream)
        terminal = is_terminal(detail.state)
        if terminal and self._log_final_key == key:
            return
        try:
            # tail mode: the log-manager sends only the last 16 KiB, not the whole file each refresh
            chunk = client.task_log_text(name, first.role, first.index, stream=stream, detail=detail, tail=True)
        except NotFoundError as exc:
            if exc.code != "NoTaskLogError":
                raise
            self._show_log([], f"No {stream} log: {task} never started." if terminal
                           else f"No log yet: {task} has not started; it shows here once it runs.", task)
            if terminal:
                self._log_final_key = key
            return
        if terminal:
            self._log_final_key = key
        text = chunk.text[-LOG_TAIL_CHARS:]
        if not text:
            self._show_log([], f"{task} wrote nothing to {stream}." if terminal else f"Nothing on {stream} yet.", task)
            return
        lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
        shown = lines[-LOG_LINES:]
        cut = len(shown) < len(lines) or len(chunk.text) >= LOG_TAIL_CHARS
        self._show_log(shown, f"Last {len(shown)} lines of {stream}." if cut else "", task)

    def _show_log(self, lines: list[str], message: str, task: str = "") -> None:
        self.log_lines, self.log_message = lines, message
        title = f"<b>Log of {html.escape(task)}</b>" if task else "<b>Log</b>"
        note = f"<div style='opacity:.75'>{html.escape(message)}</div>" if message else ""
        text = (f"<pre class='pai-magic-log-text' style='max-height:20em;overflow:auto;white-space:pre-wrap;"
                f"overflow-wrap:anywhere'>{html.escape(chr(10).join(lines))}</pre>") if lines else ""
        self.log_box.value = f"<div class='pai-magic-log'>{title}{note}{text}</div>"

    def _auto_refresh(self, interval: float) -> None:
        """Refresh in the background (the first one at once, so showing the panel never waits
        on the network); back off after failures, stop when closed."""
        wait = interval
        while not self._stop_event.is_set():
            ok = self.refresh()
            wait = interval if ok else min(wait * 2, MAX_INTERVAL)
            if self._stop_event.wait(wait):
                return
