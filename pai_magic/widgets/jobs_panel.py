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

import threading
from typing import Any, Callable

import ipywidgets as W

from pai_magic.core.errors import AuthError, InvalidInputError, PaiError
from pai_magic.core.kinds import kind_label
from pai_magic.core.models import JOB_STATES, is_terminal
from pai_magic.widgets.common import guarded, one_line, owned_widgets, text_of, widget_count
from pai_magic.widgets.common import set_if_changed as _set
from pai_magic.widgets.form import SubmitForm
from pai_magic.widgets.job_detail import JobDetail
from pai_magic.widgets.poller import shared_poller
from pai_magic.widgets.resource_tabs import ImagesTab, StorageTab
from pai_magic.widgets.views import ERROR_STYLE, STOP_STYLE, error_html, esc, note_html, page_label, state_badge, when

__all__ = ["PaiPanel", "ERROR_STYLE", "one_line", "widget_count", "owned_widgets", "open_panels"]

TAB_JOBS, TAB_SUBMIT, TAB_IMAGES, TAB_STORAGE, TAB_LOGIN = range(5)
_ALL = "all states"
_OPEN: list["PaiPanel"] = []   # panels not closed yet, oldest first
_OPEN_LOCK = threading.Lock()


def open_panels() -> list["PaiPanel"]:
    """The panels of this kernel that are not closed (``pai_magic.widgets.close_all`` closes them)."""
    with _OPEN_LOCK:
        return list(_OPEN)


class _JobRow:
    """One row of the job list, reused for whichever job sits at its place on the page."""

    def __init__(self, index: int, on_open: Callable[[int], None], on_stop: Callable[[int], None]) -> None:
        self.name = W.Button(description="", layout=W.Layout(flex="1 1 auto", min_width="0", width="auto"))
        self.name.add_class("pai-panel-job-name")
        # kind, state and age in one HTML: three models fewer per row
        self.status = W.HTML("", layout=W.Layout(flex="0 0 auto"))
        self.stop = W.Button(description="Stop", style=STOP_STYLE, layout=W.Layout(width="60px", display="none"))
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

    ``profile`` pins a profile name (default: the one this notebook's magics use, else the
    active one).
    ``refresh_interval`` seconds between refreshes by the kernel's shared loop (None: only on
    demand); failures back off up to a minute. ``page_size`` jobs per page.
    """

    def __init__(self, profile: str | None = None, *, refresh_interval: float | None = 5.0,
                 page_size: int = 20, job_limit: int | None = None, local_data_dir: str | None = None) -> None:
        if profile is None:
            from pai_magic.widgets.session_profile import notebook_profile

            profile = notebook_profile()
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
        self._vcs_loaded_for: str | None = None
        self.last_submitted: str | None = None
        self.refreshes = 0
        self._closed = False
        self._poll_key: int | None = None
        self._build()
        with _OPEN_LOCK:
            _OPEN.append(self)
        if refresh_interval:
            self._poll_key = shared_poller().subscribe(self.refresh, float(refresh_interval))
        else:
            self.refresh()

    # ---- display ---------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"PaiPanel(profile={self.profile_name!r}, jobs={len(self.job_states)})"

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Leave the refresh loop and close every widget model the panel made."""
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            if self in _OPEN:
                _OPEN.remove(self)
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

        self.job_detail = JobDetail(
            on_stop=lambda: self.stop(self.selected) if self.selected else None,
            on_clone=lambda: self.clone(self.selected) if self.selected else None,
            on_close=self.close_detail,
            on_log_choice=lambda: self.select(self.selected) if self.selected else None)
        d = self.job_detail
        self.detail, self.tasks, self.ssh_box, self.ssh_text, self.log_box = (
            d.header, d.tasks, d.ssh_box, d.ssh_text, d.log_box)
        self.log_task, self.log_stream, self.log_follow = d.log_task, d.log_stream, d.log_follow
        self.detail_stop, self.clone_button, self.close_detail_button = d.stop_button, d.clone_button, d.close_button
        self.detail_box = d.box
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

        # -- images and storage tabs
        self.images = ImagesTab(self._profile_or_none, self.use_image)
        self.images_filter, self.images_button, self.images_list = (
            self.images.filter, self.images.list_button, self.images.list)
        self.image_detail, self.use_image_button, self.images_status = (
            self.images.detail, self.images.use_button, self.images.status)
        self.storage = StorageTab(self._client)
        self.storage_button, self.storage_table, self.storage_status = (
            self.storage.button, self.storage.table, self.storage.status)

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
        self.logout_button = W.Button(description="Log out", tooltip="Log out (a password login also ends on the cluster)")
        self.login_button.on_click(lambda _b: self.login())
        self.local_button.on_click(lambda _b: self.start_local())
        self.switch_button.on_click(lambda _b: self.switch_profile(self.profiles.value))
        self.logout_button.on_click(lambda _b: self.logout())
        self.login_tab = W.VBox([self.url, self.user, self.password, self.use_token,
                                 W.HBox([self.login_button, self.local_button], layout=W.Layout(flex_flow="row wrap")),
                                 self.login_message, W.HTML("<hr style='opacity:.3'>"), self.profiles,
                                 W.HBox([self.switch_button, self.logout_button])],
                                layout=W.Layout(width="100%"))

        self.tabs = W.Tab(children=[self.jobs_tab, self.form.box, self.images.box, self.storage.box, self.login_tab],
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
        return text_of(self.error.value)

    def _guard(self, fn: Callable[[], Any], *, where: W.HTML | None = None) -> Any:
        """Run a callback; a failure becomes the red line (or ``where``'s line) and None."""
        return guarded(fn, where if where is not None else self.error)

    # the open job's state, read by tests and by code that drives the panel
    @property
    def log_lines(self) -> list[str]:
        return self.job_detail.log_lines

    @property
    def log_message(self) -> str:
        return self.job_detail.log_message

    @property
    def ssh_lines(self) -> list[str]:
        return self.job_detail.ssh_lines

    @property
    def ssh_labels(self) -> list[str]:
        return self.job_detail.ssh_labels

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
        """Log out with the core's rules (a password login's token is revoked on the cluster, a
        pasted one only forgotten here); the URL and user stay for the next login."""
        def work() -> Any:
            from pai_magic.core.auth import logout

            return logout(self.profile_name)

        result = self._guard(work, where=self.login_message)
        if result is not None:
            self.close_detail()
            self._clients.close()
            _set(self.login_message, "value", note_html(result.message))
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

    def _page(self, client: Any) -> Any:
        """The page shown. The unfiltered first page of one's own jobs is the machine-wide
        shared list (core.polling), so every panel, kernel and sidebar of a user makes one poll;
        a filter, search, other page or everyone's jobs asks the cluster."""
        from pai_magic.core.models import JobPage

        filters = self._list_filters(client)
        if self.offset == 0 and filters["username"] == (client.user or None) and not any(
                filters[k] for k in ("state", "vc", "keyword")):
            from pai_magic.core.polling import shared_list

            lst = shared_list(client).get(limit=self.page_size)
            total = lst.total if lst.total is not None else (len(lst.items) if lst.complete else None)
            return JobPage(items=lst.items[: self.page_size], total=total, offset=0, limit=self.page_size)
        return client.list_jobs(offset=self.offset, limit=self.page_size, **filters)

    def refresh(self) -> bool:
        """Read the profile, the page of jobs and the open job; True when it worked. A success
        clears the red line, whatever put it there."""
        if self._closed:
            return False
        with self._lock:
            if self._closed:  # closed while this refresh waited for the lock
                return False
            try:
                prof = self._profile()
                self._show_profile(prof)
                client = self._client()
                page = self._page(client)
                if not page.items and self.offset and page.total:
                    self.offset = max(0, (page.total - 1) // self.page_size * self.page_size)
                    page = self._page(client)
                self._render_jobs(page)
                self._load_virtual_clusters(client, prof)
                if self.selected:
                    self.job_detail.render(client, self.selected)
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
                self.job_detail.forget_log()
            self.selected = name
            self._guard(lambda: self.job_detail.render(self._client(), name))

    def close_detail(self) -> None:
        """Close the detail: refreshes then read only the list (no detail, SSH or log)."""
        with self._lock:
            self.selected = None
            self.job_detail.clear()

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
            from pai_magic.core.jobform import form_cannot_hold, form_from_protocol

            job = self._client().job_config(name)
            return form_from_protocol(job), form_cannot_hold(job)

        with self._lock:
            got = self._guard(work)
            if got is not None:
                form, why = got
                self.form.fill(form)
                self.form.show_result(f"Filled from {name}: change what you need, then Submit."
                                      if why is None else f"Filled from {name}, but: {why}")
                self.tabs.selected_index = TAB_SUBMIT

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
            self.job_detail.forget_log()
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
            from pai_magic.core.jobform import form_cannot_hold, form_from_protocol
            from pai_magic.core.protocol import parse_protocol

            try:
                job = parse_protocol(self.form.yaml.value)
                form = form_from_protocol(job)
            except InvalidInputError as err:
                raise InvalidInputError(str(err), field="yaml") from None
        except Exception as exc:  # noqa: BLE001
            self.form.show_error(getattr(exc, "field", None), one_line(exc))
            return
        self.form.fill(form)
        why = form_cannot_hold(job)
        self.form.show_result("Form filled from the YAML job." if why is None
                              else f"Form filled from the YAML job, but: {why}")

    # ---- images and storage tabs -----------------------------------------------------------------

    def load_images(self) -> None:
        self.images.load()

    def use_image(self, reference: str | None = None) -> None:
        """Put an image reference (default: the one picked in the Images tab) into the form."""
        if reference is None:
            self.images.use()
            return
        self.form.image.value = reference
        self.form.show_result(f"Image set to {reference}.")
        self.tabs.selected_index = TAB_SUBMIT

    def load_storages(self) -> None:
        self.storage.load()
