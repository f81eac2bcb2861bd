"""An ipywidgets panel for the notebook: log in, find jobs, read their tasks and logs, stop,
clone and submit them, pick an image from the registry, see the storages.

The same things the JupyterLab sidebar does, for front ends without the labextension
(classic notebook, VS Code, Colab-like hosts). Each button calls one core function; errors
become one red line (or a line under the form field concerned), never a traceback.

Why it is built the way it is:

- A FIXED set of widgets, made once in ``__init__`` and updated in place. The job rows are a
  pool of ``page_size`` rows whose texts change (unused rows are hidden); tables (tasks,
  storages, image details) are one ``HTML`` each. A refresh therefore creates no widget
  model: the old panel made new rows on every refresh and a kernel grew to 22,427 models.
  ``close()`` closes every model the panel made (layouts and styles included).
- ONE refresh loop per kernel (:mod:`pai_magic.widgets.poller`), however many panels are open.
- Errors do not go stale: the red line is cleared by the next successful refresh; a form
  error sits under its field and is replaced when another field is the problem.
- The password box is an ipywidgets ``Password`` emptied as soon as it is read, so the
  password is neither echoed nor kept in the widget state a notebook may save.

Usage::

    from pai_magic.widgets import PaiPanel
    PaiPanel()
"""
from __future__ import annotations

import html
import logging
import os
import re
import threading
from typing import Any, Callable

import ipywidgets as W

from pai_magic.core.errors import AuthError, InvalidInputError, PaiError
from pai_magic.core.kinds import kind_label
from pai_magic.core.models import JOB_STATES, is_terminal
from pai_magic.widgets.form import SubmitForm
from pai_magic.widgets.poller import shared_poller
from pai_magic.widgets.views import (
    ERROR_STYLE,
    copy_button_html,
    error_html,
    esc,
    image_details_html,
    note_html,
    page_label,
    state_badge,
    storages_html,
    task_table_html,
    when,
)

log = logging.getLogger("pai_magic.widgets")

__all__ = ["PaiPanel", "ERROR_STYLE", "one_line", "widget_count", "owned_widgets"]

LOG_LINES = 40
LOG_TAIL_CHARS = 16384
MAX_IMAGE_OPTIONS = 500
TAB_JOBS, TAB_SUBMIT, TAB_IMAGES, TAB_STORAGE, TAB_LOGIN = range(5)
_ALL = "all states"


def one_line(exc: BaseException) -> str:
    """A PaiError's own sentence; anything else is a bug, logged with its traceback."""
    if isinstance(exc, PaiError):
        return str(exc)
    log.error("pai_magic panel: unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return f"Internal error ({type(exc).__name__}): see the kernel log, and please report it."


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


def _text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _set(widget: Any, name: str, value: Any) -> None:
    """Assign only a changed value: an equal HTML value re-sent would re-render it (and reset
    a "Copied" button the person just clicked)."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


class _JobRow:
    """One row of the job list, reused for whichever job sits at its place on the page."""

    def __init__(self, index: int, on_open: Callable[[int], None], on_stop: Callable[[int], None]) -> None:
        self.name = W.Button(description="", layout=W.Layout(flex="1 1 auto", min_width="0", width="auto"))
        self.name.add_class("pai-panel-job-name")
        # kind, state and age in one HTML: three models fewer per row
        self.status = W.HTML("", layout=W.Layout(flex="0 0 auto"))
        self.stop = W.Button(description="Stop", button_style="warning", layout=W.Layout(width="60px", display="none"))
        self.name.on_click(lambda _b: on_open(index))
        self.stop.on_click(lambda _b: on_stop(index))
        self.box = W.HBox([self.name, self.status, self.stop],
                          layout=W.Layout(display="none", width="100%", align_items="center"))
        self.box.add_class("pai-panel-job")

    def show(self, job: Any) -> None:
        _set(self.name, "description", job.name)
        _set(self.name, "tooltip", f"{job.full_name}: open its tasks and logs")
        label = kind_label(job.name)
        kind = (f"<span class='pai-panel-kind' style='opacity:.75;font-size:smaller'>{esc(label)}</span> "
                if label else "")
        _set(self.status, "value", f"{kind}{state_badge(job.state)} <span style='opacity:.7;font-size:smaller;"
                                   f"white-space:nowrap'>{esc(when(job.submission_time))}</span>")
        _set(self.stop, "tooltip", f"Stop {job.full_name}")
        _set(self.stop.layout, "display", None if not is_terminal(job.state) and job.state != "STOPPING" else "none")
        _set(self.box.layout, "display", None)

    def hide(self) -> None:
        _set(self.box.layout, "display", "none")


class PaiPanel:
    """The panel. ``PaiPanel()`` in a cell shows it; ``.widget`` is the ipywidgets box.

    ``profile`` pins a profile name (default: the active one, as everywhere else).
    ``refresh_interval`` seconds between refreshes by the kernel's shared loop (None: only on
    demand); failures back off up to a minute. ``page_size`` jobs per page.
    """

    def __init__(self, profile: str | None = None, *, refresh_interval: float | None = 5.0,
                 page_size: int = 20, job_limit: int | None = None, local_data_dir: str | None = None) -> None:
        self.profile_name = profile
        self.page_size = int(job_limit or page_size)
        self.local_data_dir = local_data_dir
        from pai_magic.core.client import ClientForProfile

        self._clients = ClientForProfile()
        self._lock = threading.RLock()       # the loop's refresh and the person's clicks, one at a time
        self._submit_lock = threading.Lock()
        self.offset = 0
        self.total: int | None = None
        self.jobs: list[Any] = []            # the page shown
        self.job_states: dict[str, str] = {}
        self.selected: str | None = None     # user~name of the open job
        self.ssh_lines: list[str] = []
        self.ssh_labels: list[str] = []
        self.log_lines: list[str] = []
        self.log_message = ""
        self._log_final_key: tuple[str, str, str] | None = None
        self._vcs_loaded_for: str | None = None
        self._images: dict[str, tuple[str, str]] = {}   # option -> (repository, tag)
        self._registry_host: str | None = None
        self.last_submitted: str | None = None
        self.refreshes = 0
        self._closed = False
        self._poll_key: int | None = None
        self._build()
        if refresh_interval:
            self._poll_key = shared_poller().subscribe(self.refresh, float(refresh_interval))
        else:
            self.refresh()

    # ---- display ---------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"PaiPanel(profile={self.profile_name!r}, jobs={len(self.job_states)})"

    def close(self) -> None:
        """Leave the refresh loop and close every widget model the panel made."""
        if self._closed:
            return
        self._closed = True
        if self._poll_key is not None:
            shared_poller().unsubscribe(self._poll_key)
            self._poll_key = None
        with self._lock:
            for widget in owned_widgets(self.widget):
                widget.close()
            self._clients.close()

    # ---- building ------------------------------------------------------------------------------

    def _build(self) -> None:
        desc = {"description_width": "110px"}

        def full() -> W.Layout:
            return W.Layout(width="auto", max_width="100%")

        # job names read like a list (left-aligned, ellipsized, full name on hover)
        self.title = W.HTML("<style>.pai-panel .pai-panel-job-name{text-align:left;justify-content:flex-start;"
                            "overflow:hidden;text-overflow:ellipsis;white-space:nowrap}</style><b>OpenPAI</b>")
        self.cluster_label = W.HTML("Not logged in")
        self.error = W.HTML("")

        # -- jobs tab
        self.search = W.Text(placeholder="search job names", continuous_update=False,
                             layout=W.Layout(flex="1 1 120px", min_width="0", width="auto"))
        self.state_filter = W.Dropdown(options=[_ALL, *JOB_STATES], value=_ALL,
                                       layout=W.Layout(flex="0 1 130px", width="auto"))
        self.vc_filter = W.Dropdown(options=[("all virtual clusters", "")], value="",
                                    layout=W.Layout(flex="0 1 170px", width="auto"))
        self.all_users = W.Checkbox(False, description="all users", indent=False,
                                    layout=W.Layout(flex="0 0 auto", width="auto"))
        self.refresh_button = W.Button(icon="refresh", tooltip="Refresh now", layout=W.Layout(width="40px"))
        self.prev_button = W.Button(description="‹ Newer", layout=W.Layout(width="auto"), disabled=True)
        self.next_button = W.Button(description="Older ›", layout=W.Layout(width="auto"), disabled=True)
        self.page_info = W.HTML("")
        self.rows = [_JobRow(i, self._open_row, self._stop_row) for i in range(self.page_size)]
        self.empty = W.HTML("")
        self.search.observe(self._on_filter, names="value")
        self.state_filter.observe(self._on_filter, names="value")
        self.all_users.observe(self._on_filter, names="value")
        self.vc_filter.observe(self._on_filter, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.prev_button.on_click(lambda _b: self.page(-1))
        self.next_button.on_click(lambda _b: self.page(+1))

        self.detail = W.HTML("")
        self.detail_stop = W.Button(description="Stop", button_style="warning", icon="stop")
        self.clone_button = W.Button(description="Clone", icon="copy", tooltip="Fill the submit form from this job")
        self.close_detail_button = W.Button(description="Close", tooltip="Close the job's detail")
        self.detail_stop.on_click(lambda _b: self.stop(self.selected) if self.selected else None)
        self.clone_button.on_click(lambda _b: self.clone(self.selected) if self.selected else None)
        self.close_detail_button.on_click(lambda _b: self.close_detail())
        self.tasks = W.HTML("")
        self.ssh_box = W.HTML("")
        self.ssh_text = W.Textarea(layout=W.Layout(width="auto", height="60px", display="none"), disabled=True)
        self.log_task = W.Dropdown(options=[], description="Log of", style={"description_width": "50px"},
                                   layout=W.Layout(width="auto", flex="1 1 auto"))
        self.log_stream = W.ToggleButtons(options=["stdout", "stderr", "all"], value="stdout",
                                          style={"button_width": "72px"})
        self.log_follow = W.Checkbox(True, description="follow", indent=False, layout=W.Layout(width="auto"))
        self.log_task.observe(self._on_log_choice, names="value")
        self.log_stream.observe(self._on_log_choice, names="value")
        self.log_follow.observe(self._on_log_choice, names="value")
        self.log_box = W.HTML("")
        self.detail_box = W.VBox(
            [self.detail, W.HBox([self.detail_stop, self.clone_button, self.close_detail_button],
                                 layout=W.Layout(flex_flow="row wrap")),
             self.tasks, self.ssh_box, self.ssh_text,
             W.HBox([self.log_task, self.log_stream, self.log_follow],
                    layout=W.Layout(flex_flow="row wrap", align_items="center")),
             self.log_box],
            layout=W.Layout(display="none", width="100%", border="1px solid var(--jp-border-color2, #ccc)",
                            padding="4px"))
        self.detail_box.add_class("pai-panel-detail")
        # the detail first: opening a job never puts it below the fold of a long list
        self.jobs_tab = W.VBox(
            [W.HBox([self.search, self.state_filter, self.vc_filter, self.all_users, self.refresh_button],
                    layout=W.Layout(width="100%", flex_flow="row wrap", align_items="center")),
             self.detail_box,
             W.HBox([self.prev_button, self.page_info, self.next_button],
                    layout=W.Layout(width="100%", align_items="center", justify_content="space-between")),
             self.empty, *[row.box for row in self.rows]],
            layout=W.Layout(width="100%"))

        # -- submit tab
        self.form = SubmitForm()
        self.form.submit_button.on_click(lambda _b: self.submit())
        self.form.to_yaml_button.on_click(lambda _b: self.export_yaml())
        self.form.from_yaml_button.on_click(lambda _b: self.import_yaml())
        self.form.submit_yaml_button.on_click(lambda _b: self.submit_yaml())
        # the names earlier versions (and their notebooks) used
        self.job_name, self.image, self.commands, self.gpu, self.ssh = (
            self.form.name, self.form.image, self.form.commands, self.form.gpu, self.form.ssh)
        self.submit_button = self.form.submit_button

        # -- images tab
        self.images_filter = W.Text(placeholder="filter repositories, e.g. team/*", continuous_update=False,
                                    layout=W.Layout(flex="1 1 auto", width="auto", min_width="0"))
        self.images_button = W.Button(description="List images", icon="list")
        self.images_list = W.Select(options=[], rows=8, layout=full())
        self.image_detail = W.HTML("")
        self.use_image_button = W.Button(description="Use this image", icon="arrow-right", disabled=True,
                                         tooltip="Put this image into the submit form")
        self.images_status = W.HTML("")
        self.images_button.on_click(lambda _b: self.load_images())
        self.images_filter.observe(lambda _c: self.load_images(), names="value")
        self.images_list.observe(self._on_image_pick, names="value")
        self.use_image_button.on_click(lambda _b: self.use_image())
        self.images_tab = W.VBox([W.HBox([self.images_filter, self.images_button], layout=W.Layout(width="100%")),
                                  self.images_status, self.images_list, self.image_detail, self.use_image_button],
                                 layout=W.Layout(width="100%"))

        # -- storage tab
        self.storage_button = W.Button(description="Show storages", icon="hdd-o")
        self.storage_table = W.HTML("")
        self.storage_status = W.HTML("")
        self.storage_button.on_click(lambda _b: self.load_storages())
        self.storage_tab = W.VBox([self.storage_button, self.storage_status, self.storage_table],
                                  layout=W.Layout(width="100%"))

        # -- login tab
        self.url = W.Text(placeholder="http://10.0.0.1 or http://127.0.0.1:PORT", description="Cluster URL",
                          layout=full(), style=desc)
        self.user = W.Text(placeholder="user name", description="User", layout=full(), style=desc)
        self.password = W.Password(placeholder="password (or a token)", description="Password", layout=full(),
                                   style=desc)
        self.use_token = W.Checkbox(False, description="paste a token instead (OIDC clusters)", indent=False,
                                    layout=W.Layout(width="auto"))
        self.login_button = W.Button(description="Log in", button_style="primary")
        self.local_button = W.Button(description="Start local backend")
        self.login_message = W.HTML("")
        self.profiles = W.Dropdown(options=[], description="Profile", layout=full(), style=desc)
        self.switch_button = W.Button(description="Switch", tooltip="Use this profile (cluster)")
        self.logout_button = W.Button(description="Log out", tooltip="Forget this profile's token")
        self.login_button.on_click(lambda _b: self.login())
        self.local_button.on_click(lambda _b: self.start_local())
        self.switch_button.on_click(lambda _b: self.switch_profile(self.profiles.value))
        self.logout_button.on_click(lambda _b: self.logout())
        self.login_tab = W.VBox([self.url, self.user, self.password, self.use_token,
                                 W.HBox([self.login_button, self.local_button], layout=W.Layout(flex_flow="row wrap")),
                                 self.login_message, W.HTML("<hr style='opacity:.3'>"), self.profiles,
                                 W.HBox([self.switch_button, self.logout_button])],
                                layout=W.Layout(width="100%"))

        self.tabs = W.Tab(children=[self.jobs_tab, self.form.box, self.images_tab, self.storage_tab, self.login_tab],
                          titles=("Jobs", "Submit", "Images", "Storage", "Login"), layout=W.Layout(width="100%"))
        self.widget = W.VBox([self.title, self.cluster_label, self.error, self.tabs],
                             layout=W.Layout(width="100%", max_width="900px"))
        self.widget.add_class("pai-panel")
        self._list_profiles()

    # ---- errors ------------------------------------------------------------------------------

    def _show_error(self, message: str | None) -> None:
        """The red line: set by a failed refresh or action, cleared by the next one that works."""
        _set(self.error, "value", error_html(message))

    @property
    def error_text(self) -> str:
        """The red line as plain text ('' when there is none)."""
        return _text_of(self.error.value)

    def _guard(self, fn: Callable[[], Any], *, where: W.HTML | None = None) -> Any:
        """Run a callback; a failure becomes the red line (or ``where``'s line) and None."""
        target = where if where is not None else self.error
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - a widget callback must never raise into the front end
            _set(target, "value", error_html(one_line(exc)))
            return None
        _set(target, "value", "")
        return result

    # ---- profile and client --------------------------------------------------------------------

    def _profile(self) -> Any:
        from pai_magic.core.profiles import load_profile

        return load_profile(self.profile_name)

    def _profile_or_none(self) -> Any:
        try:
            return self._profile()
        except PaiError:
            return None

    def _client(self) -> Any:
        prof = self._profile()
        if not prof.token:
            raise AuthError(f"Not logged in to {prof.url}: use the Login tab.")
        return self._clients.get(prof)

    def _show_profile(self, prof: Any) -> None:
        _set(self.cluster_label, "value",
             f"{esc(prof.user or '?')} @ {esc(prof.url)} <span style='opacity:.7'>(profile {esc(prof.name)})</span>")
        if not self.url.value:
            self.url.value = prof.url
        if not self.user.value and prof.user:
            self.user.value = prof.user

    def _list_profiles(self) -> None:
        from pai_magic.core.profiles import active_profile_name, list_profiles

        try:
            names = [p.name for p in list_profiles()]
            active = self.profile_name or active_profile_name()
        except PaiError:
            names, active = [], None
        if list(self.profiles.options) != names:
            self.profiles.options = names
        if active in names and self.profiles.value != active:
            self.profiles.value = active

    # ---- login tab -------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in with the form; the password box is emptied before anything else happens."""
        secret = self.password.value
        self.password.value = ""

        def work() -> Any:
            from pai_magic.core import auth

            url, user = self.url.value.strip(), self.user.value.strip()
            if not url:
                raise InvalidInputError("Give the cluster URL, e.g. http://10.0.0.1.")
            if not secret:
                raise InvalidInputError("Give the password (or tick the token box and paste a token).")
            if self.use_token.value:
                prof, _status = auth.login_with_token(url, secret, user=user or None, profile_name=self.profile_name)
            else:
                if not user:
                    raise InvalidInputError("Give the user name for a password login.")
                prof = auth.login_with_password(url, user, secret, profile_name=self.profile_name)
            self.profile_name = prof.name
            return prof

        self._after_login(self._guard(work, where=self.login_message))

    def start_local(self) -> None:
        """Start (or find) the embedded backend and log into it."""
        def work() -> Any:
            # the same find-or-start the server extension uses; here the backend, when started,
            # lives in this kernel's process and stops with it
            from pai_magic.local.connect import connect_local

            prof = connect_local(self.local_data_dir, profile_name=self.profile_name).profile
            self.profile_name = prof.name
            return prof

        _set(self.login_message, "value", note_html("Starting the local backend..."))
        self._after_login(self._guard(work, where=self.login_message))

    def _after_login(self, prof: Any) -> None:
        if prof is None:
            return
        self._show_profile(prof)
        self._list_profiles()
        self._vcs_loaded_for = None
        self.tabs.selected_index = TAB_JOBS
        self.refresh()

    def switch_profile(self, name: str | None) -> None:
        """Use another saved profile (another cluster) in this panel and as the active one."""
        def work() -> Any:
            from pai_magic.core.profiles import select_profile

            if not name:
                raise InvalidInputError("No saved profile yet: log in first.")
            prof = select_profile(name)
            self.profile_name = prof.name
            return prof

        prof = self._guard(work, where=self.login_message)
        if prof is not None:
            self.close_detail()
            self.offset = 0
            self._after_login(prof)

    def logout(self) -> None:
        """Forget the profile's token (the URL and user stay for the next login)."""
        def work() -> Any:
            from pai_magic.core.profiles import update_profile

            prof = self._profile()
            return update_profile(prof.name, token="")

        prof = self._guard(work, where=self.login_message)
        if prof is not None:
            self.close_detail()
            self._clients.close()
            _set(self.login_message, "value", note_html(f"Logged out of {prof.url}."))
            self.refresh()

    # ---- jobs tab --------------------------------------------------------------------------------

    def _on_filter(self, _change: Any) -> None:
        if getattr(self, "_filters_quiet", False):
            return
        self.offset = 0
        self.refresh()

    def page(self, step: int) -> None:
        """One page newer (-1) or older (+1)."""
        self.offset = max(0, self.offset + step * self.page_size)
        self.refresh()

    def _list_filters(self, client: Any) -> dict[str, Any]:
        state = self.state_filter.value
        return {"username": None if self.all_users.value else (client.user or None),
                "state": None if state == _ALL else state,
                "vc": self.vc_filter.value or None, "keyword": self.search.value.strip() or None}

    def refresh(self) -> bool:
        """Read the profile, the page of jobs and the open job; True when it worked. A success
        clears the red line, whatever put it there."""
        if self._closed:
            return False
        with self._lock:
            try:
                prof = self._profile()
                self._show_profile(prof)
                client = self._client()
                page = client.list_jobs(offset=self.offset, limit=self.page_size, **self._list_filters(client))
                if not page.items and self.offset and page.total:
                    self.offset = max(0, (page.total - 1) // self.page_size * self.page_size)
                    page = client.list_jobs(offset=self.offset, limit=self.page_size, **self._list_filters(client))
                self._render_jobs(page)
                self._load_virtual_clusters(client, prof)
                if self.selected:
                    self._render_detail(client, self.selected)
            except AuthError as exc:
                from pai_magic.core.profiles import NO_PROFILE_HINT

                self._show_error("Not logged in: use the Login tab (cluster URL, user, password) or Start local "
                                 "backend." if str(exc) == NO_PROFILE_HINT.strip() else str(exc))
                if self.tabs.selected_index == TAB_JOBS:
                    self.tabs.selected_index = TAB_LOGIN
                return False
            except Exception as exc:  # noqa: BLE001 - the loop keeps going; the line says why
                self._show_error(one_line(exc))
                return False
            self.refreshes += 1
            self._show_error(None)
            return True

    def _render_jobs(self, page: Any) -> None:
        self.jobs = list(page.items)[: self.page_size]
        self.total = page.total
        self.job_states = {j.name: j.state for j in self.jobs}
        for i, row in enumerate(self.rows):
            if i < len(self.jobs):
                row.show(self.jobs[i])
            else:
                row.hide()
        label = page_label(self.offset, len(self.jobs), self.total)
        _set(self.page_info, "value", f"<span class='pai-panel-page'>{esc(label)}</span>")
        _set(self.prev_button, "disabled", self.offset == 0)
        _set(self.next_button, "disabled", not page.has_more)
        filtered = self.search.value.strip() or self.state_filter.value != _ALL
        _set(self.empty, "value", "" if self.jobs else note_html(
            "No job matches the search or state." if filtered else "No jobs yet: submit one in the Submit tab."))

    def _load_virtual_clusters(self, client: Any, prof: Any) -> None:
        """The form's virtual cluster choices, read once per login (they rarely change)."""
        key = f"{prof.name}@{prof.url}"
        if self._vcs_loaded_for == key:
            return
        self._vcs_loaded_for = key
        try:
            names = sorted(client.virtual_clusters())
        except PaiError:
            names = []
        if list(self.form.virtual_cluster.options) != names:
            self.form.virtual_cluster.options = names
        choices = [("all virtual clusters", ""), *[(n, n) for n in names]]
        if list(self.vc_filter.options) != choices:
            self._filters_quiet = True   # new choices are not a new filter: no second refresh
            try:
                current = self.vc_filter.value
                self.vc_filter.options = choices
                self.vc_filter.value = current if current in names else ""
            finally:
                self._filters_quiet = False

    def _open_row(self, index: int) -> None:
        if index < len(self.jobs):
            self.select(self.jobs[index].full_name)

    def _stop_row(self, index: int) -> None:
        if index < len(self.jobs):
            self.stop(self.jobs[index].full_name)

    def select(self, name: str) -> None:
        """Open a job: its state, task table, SSH commands while it runs, and a task's log.
        Each refresh re-reads them until :meth:`close_detail`."""
        with self._lock:
            if name != self.selected:
                self._log_final_key = None
            self.selected = name
            self._guard(lambda: self._render_detail(self._client(), name))

    def close_detail(self) -> None:
        """Close the detail: refreshes then read only the list (no detail, SSH or log)."""
        with self._lock:
            self.selected = None
            self._log_final_key = None
            for widget in (self.detail, self.ssh_box, self.log_box, self.tasks):
                _set(widget, "value", "")
            self.ssh_lines, self.ssh_labels, self.log_lines, self.log_message = [], [], [], ""
            _set(self.ssh_text.layout, "display", "none")
            _set(self.detail_box.layout, "display", "none")

    def stop(self, name: str) -> None:
        def work() -> bool:
            self._client().stop(name)
            return True

        with self._lock:
            if self._guard(work):
                self.refresh()

    def clone(self, name: str) -> None:
        """Fill the submit form from a job's config (a fresh name is made at submit)."""
        def work() -> Any:
            from pai_magic.core.jobform import form_from_protocol

            return form_from_protocol(self._client().job_config(name))

        with self._lock:
            form = self._guard(work)
            if form is not None:
                self.form.fill(form)
                self.form.show_result(f"Filled from {name}: change what you need, then Submit.")
                self.tabs.selected_index = TAB_SUBMIT

    def _on_log_choice(self, _change: Any) -> None:
        if self.selected and not getattr(self, "_updating_tasks", False):
            self._log_final_key = None
            self.select(self.selected)

    def _render_detail(self, client: Any, name: str) -> None:
        detail = client.get_job(name)
        label = kind_label(detail.name)
        kind = f" <span style='opacity:.75'>({esc(label)})</span>" if label else ""
        exit_text = f", exit code {detail.exit_code}" if detail.exit_code is not None else ""
        diag = note_html(detail.diagnostics) if detail.diagnostics else ""
        _set(self.detail, "value",
             f"<div class='pai-panel-detail-title' style='font-weight:bold;overflow-wrap:anywhere'>"
             f"{esc(detail.full_name)}{kind}</div><div>{state_badge(detail.state)}{esc(exit_text)}</div>"
             f"{diag}{self._notebook_link(detail.full_name)}")
        _set(self.detail_stop.layout, "display", "none" if detail.terminal or detail.state == "STOPPING" else None)
        _set(self.detail_box.layout, "display", None)
        _set(self.tasks, "value", task_table_html(detail.tasks))
        self._render_ssh(client, name, detail)
        self._updating_tasks = True
        try:
            options = [f"{t.role}/{t.index}" for t in detail.tasks]
            if list(self.log_task.options) != options:
                current = self.log_task.value
                self.log_task.options = options
                self.log_task.value = current if current in options else (options[0] if options else None)
        finally:
            self._updating_tasks = False
        self._render_log(client, name, detail)

    @staticmethod
    def _notebook_link(full_name: str) -> str:
        """A notebook run's executed copy (from the notebook-run index, when that module exists)."""
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
        return (f"<div class='pai-panel-notebook'>Executed notebook: <a href='{esc(target)}' target='_blank' "
                f"rel='noopener'>{esc(os.path.basename(path))}</a> <code style='opacity:.7'>{esc(path)}</code></div>")

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
        and "follow" is on; a finished job's log is read once."""
        from pai_magic.core.errors import NotFoundError

        stream = self.log_stream.value
        if not detail.tasks:
            self._show_log([], "No log yet: the job has no task yet.")
            return
        choice = self.log_task.value or f"{detail.tasks[0].role}/{detail.tasks[0].index}"
        role, _, index = choice.rpartition("/")
        key = (name, choice, stream)
        terminal = is_terminal(detail.state)
        if self._log_final_key == key and (terminal or not self.log_follow.value):
            return
        try:
            # tail mode: the log-manager sends only the last 16 KiB, not the whole file each refresh
            chunk = client.task_log_text(name, role, int(index), stream=stream, detail=detail, tail=True)
        except NotFoundError as exc:
            if exc.code != "NoTaskLogError":
                raise
            self._show_log([], f"No {stream} log: {choice} never started." if terminal
                           else f"No log yet: {choice} has not started; it shows here once it runs.", choice)
            if terminal:
                self._log_final_key = key
            return
        self._log_final_key = key
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

    # ---- submit tab ------------------------------------------------------------------------------

    def _ssh_key(self) -> str:
        from pai_magic.core.ssh.keys import ensure_key

        prof = self._profile_or_none()
        return ensure_key(getattr(prof, "ssh_key", None)).public_line

    def _submit_job(self, build: Callable[[], Any]) -> str | None:
        """Build (the core's one check) and submit once; a second click while it runs is ignored.
        An error goes under the field it concerns (the form's own line otherwise)."""
        if not self._submit_lock.acquire(blocking=False):
            return None
        self.form.submit_button.disabled = True
        try:
            try:
                from pai_magic.core.jobs import submit_job

                job = build()
                name = submit_job(self._client(), job)
            except Exception as exc:  # noqa: BLE001 - shown under the form, never raised into the page
                self.form.show_error(getattr(exc, "field", None), one_line(exc))
                return None
            self.form.clear_errors()
            self.form.show_result(f"Submitted {name}.")
            self.last_submitted = name
            prof = self._profile_or_none()
            self.selected = f"{prof.user}~{name}" if prof is not None and prof.user else name
            self._log_final_key = None
            self.form.commands.value = ""
            self.tabs.selected_index = TAB_JOBS
            self.refresh()
            return str(name)
        finally:
            self.form.submit_button.disabled = False
            self._submit_lock.release()

    def build_job(self) -> dict[str, Any]:
        """The protocol of the filled form, checked as every face checks it."""
        from pai_magic.core.jobform import protocol_from_form

        return protocol_from_form(self.form.values(), self._profile_or_none(), ssh_key=self._ssh_key,
                                  default_name="panel")

    def submit(self) -> str | None:
        """Submit the form's job once."""
        return self._submit_job(self.build_job)

    def submit_yaml(self) -> str | None:
        """Submit the YAML box's job as it is (its images checked like the form's)."""
        def build() -> Any:
            from pai_magic.core.jobform import check_job_images
            from pai_magic.core.protocol import parse_protocol

            text = self.form.yaml.value
            if not text.strip():
                raise InvalidInputError("The YAML box is empty: paste a job, or press Form → YAML.", field="yaml")
            job = parse_protocol(text)
            check_job_images(job)
            return job

        return self._submit_job(build)

    def export_yaml(self) -> None:
        """The form's job as YAML in the YAML box (secrets masked), to keep or edit."""
        try:
            from pai_magic.core.protocol import dump_protocol, mask_secrets

            self.form.yaml.value = dump_protocol(mask_secrets(self.build_job()))
        except Exception as exc:  # noqa: BLE001
            self.form.show_error(getattr(exc, "field", None), one_line(exc))
            return
        self.form.clear_errors()
        self.form.yaml_accordion.selected_index = 0

    def import_yaml(self) -> None:
        """Fill the form from the YAML box's job."""
        try:
            from pai_magic.core.jobform import form_from_protocol
            from pai_magic.core.protocol import parse_protocol

            try:
                form = form_from_protocol(parse_protocol(self.form.yaml.value))
            except InvalidInputError as err:
                raise InvalidInputError(str(err), field="yaml") from None
        except Exception as exc:  # noqa: BLE001
            self.form.show_error(getattr(exc, "field", None), one_line(exc))
            return
        self.form.fill(form)
        self.form.show_result("Form filled from the YAML job.")

    # ---- images tab ------------------------------------------------------------------------------

    def load_images(self) -> None:
        """The registry's repositories and tags (the profile's registry, else PAI_REGISTRY)."""
        def work() -> Any:
            from pai_magic.core.registry.client import RegistryClient

            with RegistryClient.from_profile(self._profile_or_none(), workers=4) as client:
                listing = client.list_images(self.images_filter.value.strip() or None)
                return client.host, listing

        _set(self.images_status, "value", note_html("Reading the registry..."))
        found = self._guard(work, where=self.images_status)
        if found is None:
            return
        host, listing = found
        self._registry_host = host
        pairs = [(item.repository, tag) for item in listing for tag in sorted(item.tags)]
        self._images = {f"{repo}:{tag}": (repo, tag) for repo, tag in pairs[:MAX_IMAGE_OPTIONS]}
        self.images_list.options = list(self._images)
        more = f" (first {MAX_IMAGE_OPTIONS} shown)" if len(pairs) > MAX_IMAGE_OPTIONS else ""
        _set(self.images_status, "value", note_html(
            f"{len(pairs)} image tag(s) in {host}{more}: pick one for its size, date and platforms."
            if pairs else f"No image in {host} yet: push one with %pai_image_push or `pai-magic push`."))
        _set(self.use_image_button, "disabled", True)
        _set(self.image_detail, "value", "")

    def _on_image_pick(self, change: Any) -> None:
        choice = change.get("new")
        if not choice or choice not in self._images:
            _set(self.use_image_button, "disabled", True)
            return
        repo, tag = self._images[choice]

        def work() -> Any:
            from pai_magic.core.registry.client import RegistryClient
            from pai_magic.core.registry.details import tag_details

            with RegistryClient.from_profile(self._profile_or_none(), workers=2) as client:
                return tag_details(client, repo, tag)

        details = self._guard(work, where=self.images_status)
        _set(self.image_detail, "value", image_details_html(details or []))
        _set(self.use_image_button, "disabled", False)

    def use_image(self) -> None:
        """Put the picked image, with its registry host, into the submit form."""
        choice = self.images_list.value
        if not choice or choice not in self._images:
            return
        repo, tag = self._images[choice]
        self.form.image.value = f"{self._registry_host}/{repo}:{tag}" if self._registry_host else f"{repo}:{tag}"
        self.form.show_result(f"Image set to {self.form.image.value}.")
        self.tabs.selected_index = TAB_SUBMIT

    # ---- storage tab -----------------------------------------------------------------------------

    def load_storages(self) -> None:
        """The cluster's storages, where each is mounted on this machine, and its usage."""
        from pai_magic.core.storage.overview import storage_overview

        rows = self._guard(lambda: storage_overview(self._client()), where=self.storage_status)
        if rows is not None:
            _set(self.storage_table, "value", storages_html(rows))
