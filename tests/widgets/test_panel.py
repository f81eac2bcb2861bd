"""The ipywidgets panel against the embedded backend (a real subprocess over real HTTP): no
browser needed, buttons are clicked through ipywidgets' own ``Button.click()``."""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any, Callable

import ipywidgets as W
import pytest

from pai_magic.widgets import PaiPanel, panel as make_panel
from pai_magic.widgets.jobs_panel import owned_widgets, widget_count
from pai_magic.widgets.poller import THREAD_NAME, shared_poller

WAIT = 120.0


def _wait(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _widget_state_text(p: PaiPanel) -> str:
    """Everything the front end (and a saved notebook's widget state) would hold."""
    return json.dumps([w.get_state() for w in owned_widgets(p.widget)], default=str)


def _state_after_refresh(p: PaiPanel, name: str, states: set[str]) -> str:
    def check():
        p.refresh()
        return p.job_states.get(name) in states and p.job_states[name]

    return _wait(check, f"job {name} to reach {sorted(states)}")


def _submit_direct(stem: str, *commands: str) -> str:
    """A job submitted by another face (the core, as the CLI would)."""
    from pai_magic.core.client import PaiClient
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.profiles import load_profile
    from pai_magic.core.protocol import JobSpec, build_protocol

    with PaiClient(load_profile()) as client:
        return submit_job(client, build_protocol(JobSpec(name=stem, image="ubuntu:22.04",
                                                         commands=list(commands) or ["true"])))


@pytest.fixture
def profile(local_backend):
    from pai_magic.core.auth import login_with_password

    return login_with_password(local_backend.url, local_backend.user, local_backend.password)


@pytest.fixture
def logged_in(profile):
    p = PaiPanel(refresh_interval=None)
    assert p.error_text == "", p.error_text
    yield p
    p.close()


def _poller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


# ---- login -------------------------------------------------------------------------------------


def test_logged_out_panel_says_what_to_do():
    p = make_panel(refresh_interval=None)
    try:
        assert "login" in p.error_text.lower()
        assert p.tabs.selected_index == 4  # the Login tab
        assert isinstance(p.password, W.Password)
    finally:
        p.close()


def test_login_button_and_wrong_password_never_kept(local_backend):
    p = PaiPanel(refresh_interval=None)
    try:
        p.url.value = local_backend.url
        p.user.value = local_backend.user
        p.password.value = "wrong-password-123"
        p.login_button.click()
        message = p.login_message.value
        assert message and "color" in message and "\n" not in p.login_message.value
        assert p.password.value == ""
        assert "wrong-password-123" not in _widget_state_text(p)
        p.password.value = local_backend.password
        p.login_button.click()
        assert p.login_message.value == "" and p.error_text == "", (p.login_message.value, p.error_text)
        assert local_backend.user in p.cluster_label.value and p.tabs.selected_index == 0
        from pai_magic.core.profiles import load_profile

        token = load_profile().token
        state = _widget_state_text(p)
        assert token and token not in state and local_backend.password not in state and token not in repr(p)
        # log out: the token is revoked on the cluster (a password login) and forgotten here
        p.logout_button.click()
        assert load_profile().token == "" and "Logged out" in p.login_message.value
        assert "revoked" in p.login_message.value and token not in p.login_message.value
        import requests

        assert requests.get(f"{local_backend.api}/jobs", headers=local_backend.headers(token),
                            timeout=30).status_code == 401
        assert "login" in p.error_text.lower()
    finally:
        p.close()


# ---- memory: a fixed set of widgets --------------------------------------------------------------


def test_widget_models_stay_flat_over_100_refreshes_and_close_frees_all(logged_in):
    p = logged_in
    name = _submit_direct("panel_flat", "echo flat")
    _state_after_refresh(p, name, {"SUCCEEDED", "FAILED"})
    p.select(f"{p._profile().user}~{name}")  # the detail (tasks, log) is re-rendered on each refresh too
    p.log_stream.value = "stderr"
    p.refresh()
    counts = {}
    for cycle in range(101):
        if cycle in (0, 50, 100):
            counts[cycle] = widget_count()
        p.refresh()
    assert counts[0] == counts[50] == counts[100], counts
    assert p.refreshes >= 100 and p.error_text == ""


def test_close_leaves_no_model_behind(profile):
    before = widget_count()
    p = PaiPanel(refresh_interval=None)
    assert widget_count() > before
    p.close()
    assert widget_count() == before


def test_two_panels_share_one_refresh_loop(profile):
    _wait(lambda: not _poller_threads(), "the loop of earlier tests' panels to end")
    a = PaiPanel(refresh_interval=0.2)
    b = PaiPanel(refresh_interval=0.2)
    try:
        _wait(lambda: a.refreshes >= 3 and b.refreshes >= 3, "both panels to refresh")
        assert len(_poller_threads()) == 1 and shared_poller().subscribers == 2
    finally:
        a.close()
        assert len(_poller_threads()) == 1  # b still open
        b.close()
    thread = shared_poller().thread
    if thread is not None:
        thread.join(10)
    _wait(lambda: not _poller_threads(), "the loop to end with the last panel")


# ---- errors --------------------------------------------------------------------------------------


def test_a_stale_error_is_cleared_by_the_next_successful_refresh(profile, local_backend):
    from pai_magic.core.profiles import update_profile
    from tests.fixtures.services import free_port

    update_profile(profile.name, url=f"http://127.0.0.1:{free_port()}")  # the cluster is away
    p = PaiPanel(refresh_interval=None)
    try:
        assert "reach" in p.error_text.lower(), p.error_text
        p.refresh_button.click()
        assert "reach" in p.error_text.lower()
        update_profile(profile.name, url=local_backend.url)  # ... and back
        p.refresh_button.click()
        assert p.error_text == ""
    finally:
        p.close()


def test_form_errors_sit_under_their_field_and_are_replaced(logged_in):
    p = logged_in
    p.form.image.value = "Not A Valid Image!!"
    p.form.commands.value = "echo x"
    assert p.submit() is None
    shown = p.form.shown_errors()
    assert list(shown) == ["image"] and "not an image name" in shown["image"], shown
    p.form.image.value = "ubuntu:22.04"
    p.form.gpu.value = -1
    assert p.submit() is None
    shown = p.form.shown_errors()
    assert list(shown) == ["gpu"] and "GPUs" in shown["gpu"], shown  # the image error is gone
    p.form.gpu.value = 0
    p.form.storages.value = "data:relative"
    assert p.submit() is None
    assert list(p.form.shown_errors()) == ["storages"]
    p.form.storages.value = ""
    p.form.commands.value = ""
    assert p.submit() is None
    assert list(p.form.shown_errors()) == ["commands"]
    # a background refresh never wipes the form's error; a good submit does
    p.refresh()
    assert list(p.form.shown_errors()) == ["commands"]
    p.form.commands.value = "echo ok"
    assert p.submit()
    assert p.form.shown_errors() == {}


# ---- jobs: list, detail, logs, stop, clone -----------------------------------------------------


def test_submit_detail_task_table_and_logs_of_each_stream(logged_in):
    p = logged_in
    p.form.name.value = "panel_ok"
    p.form.commands.value = "echo from the panel\necho 'to <stderr>' >&2\n"
    p.form.cpu.value = 2
    p.form.memory.value = "1G"
    p.submit_button.click()
    name = p.last_submitted
    assert name and name.startswith("panel_ok_"), p.form.shown_errors()
    assert _state_after_refresh(p, name, {"SUCCEEDED", "FAILED"}) == "SUCCEEDED"
    p.select(f"{p._profile().user}~{name}")
    assert "SUCCEEDED" in p.detail.value and "exit code 0" in p.detail.value
    assert "<table" in p.tasks.value and "taskrole/0" in p.tasks.value and "attempt" in p.tasks.value
    assert p.log_task.options == ("taskrole/0",)
    assert "from the panel" in p.log_lines, (p.log_lines, p.log_message, p.error_text)
    assert "to <stderr>" not in p.log_lines
    p.log_stream.value = "stderr"
    assert p.log_lines == ["to <stderr>"], (p.log_lines, p.log_message, p.error_text)
    assert "to &lt;stderr&gt;" in p.log_box.value  # escaped, never markup
    p.log_stream.value = "stdout"
    assert "from the panel" in p.log_lines
    p.close_detail()
    assert p.selected is None and p.log_box.value == "" and p.detail_box.layout.display == "none"


def test_stop_button_on_the_row_stops_a_running_job(logged_in):
    p = logged_in
    p.form.name.value = "panel_long"
    p.form.commands.value = "sleep 300"
    p.submit_button.click()
    name = p.last_submitted
    assert name, p.form.shown_errors()
    _state_after_refresh(p, name, {"RUNNING"})
    rows = [r for r in p.rows if r.box.layout.display != "none" and r.name.description == name]
    assert len(rows) == 1 and rows[0].stop.layout.display != "none"
    rows[0].stop.click()
    assert _state_after_refresh(p, name, {"STOPPED", "FAILED", "SUCCEEDED"}) == "STOPPED"
    row = next(r for r in p.rows if r.name.description == name)
    assert row.stop.layout.display == "none"


def test_ssh_info_with_copy_survives_refresh(logged_in):
    p = logged_in
    p.form.name.value = "panel_ssh"
    p.form.commands.value = "echo ready"
    p.form.ssh.value = True
    p.form.keep_alive.value = True
    p.submit_button.click()
    name = p.last_submitted
    assert name, p.form.shown_errors()
    try:
        _state_after_refresh(p, name, {"RUNNING"})
        p.select(f"{p._profile().user}~{name}")
        assert p.ssh_lines and p.ssh_lines[0].startswith("ssh -p ") and "@127.0.0.1" in p.ssh_lines[0]
        assert p.ssh_box.value.count("navigator.clipboard.writeText") == len(p.ssh_lines) == 2
        assert " -i " in p.ssh_lines[1] and "works as is" in p.ssh_labels[1]
        # the "Copied" a person just saw is not reset: a refresh re-sends nothing unchanged
        changes: list[Any] = []
        p.ssh_box.observe(changes.append, names="value")
        p.refresh()
        p.refresh()
        assert changes == []
    finally:
        p.stop(f"{p._profile().user}~{name}")


def test_paging_with_total_search_and_state_filter(profile):
    stem = "pg" + uuid.uuid4().hex[:6]
    names = [_submit_direct(f"{stem}_{i}", "true") for i in range(5)]
    p = PaiPanel(refresh_interval=None, page_size=2)
    try:
        p.search.value = stem  # a new search starts at the first page and refreshes
        assert p.total == 5 and len(p.jobs) == 2
        assert p.page_info.value.endswith("1–2 of 5</span>") and p.prev_button.disabled
        p.next_button.click()
        assert "3–4 of 5" in p.page_info.value and [j.name for j in p.jobs] == names[2:0:-1]
        p.next_button.click()
        assert "5–5 of 5" in p.page_info.value and p.next_button.disabled
        assert sum(r.box.layout.display != "none" for r in p.rows) == 1
        p.prev_button.click()
        assert "3–4 of 5" in p.page_info.value
        for name in names:
            _wait(lambda n=name: _job_state(n) == "SUCCEEDED", f"{name} to finish")
        p.state_filter.value = "FAILED"
        assert p.total == 0 and "No job matches" in p.empty.value
        p.state_filter.value = "SUCCEEDED"
        assert p.total == 5 and p.offset == 0
        assert "default" in [v for _label, v in p.vc_filter.options]
        p.vc_filter.value = "default"
        assert p.total == 5
        p.vc_filter.value = ""
    finally:
        p.close()


def _job_state(name: str) -> str:
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import load_profile

    with PaiClient(load_profile()) as client:
        return client.get_job(name).state


def test_clone_fills_the_form_with_the_jobs_config_and_yaml_round_trips(logged_in):
    p = logged_in
    f = p.form
    f.name.value, f.image.value, f.commands.value = "clone_src", "python:3.11", "echo one\necho two"
    f.gpu.value, f.cpu.value, f.memory.value, f.instances.value, f.retry.value = 0, 2, "2G", 2, 1
    f.keep_alive.value = False
    wanted = dict(f.values(), name="clone_src")
    name = p.submit()
    assert name, f.shown_errors()
    f.fill({"name": "", "image": "", "commands": ""})  # a blank form
    p.clone(f"{p._profile().user}~{name}")
    assert p.tabs.selected_index == 1
    got = f.values()
    assert {k: got[k] for k in ("name", "image", "commands", "gpu", "cpu", "memory", "instances", "retry")} == \
        {k: wanted[k] for k in ("name", "image", "commands", "gpu", "cpu", "memory", "instances", "retry")}
    # YAML: export the form, blank it, import: the same form
    p.export_yaml()
    assert "python:3.11" in f.yaml.value and "echo two" in f.yaml.value
    before = f.values()
    f.fill({"image": "x", "commands": "y"})
    p.import_yaml()
    assert f.values() == before
    assert "but:" not in f.result.value
    role = "{instances: 1, dockerImage: i, resourcePerInstance: {cpu: 1, memoryMB: 512, gpu: 0}, commands: [echo]}"
    f.yaml.value = ("protocolVersion: 2\nname: two\ntype: job\nprerequisites:\n- {name: i, type: dockerimage, "
                    f"uri: ubuntu}}\ntaskRoles:\n  a: {role}\n  b: {role}\n")
    p.import_yaml()
    assert "2 task roles" in f.result.value  # the form says what it dropped, as the sidebar does
    f.yaml.value = "name: [unclosed"
    p.import_yaml()
    assert list(f.shown_errors()) == ["yaml"]
    f.yaml.value = "protocolVersion: 2\nname: y\ntype: job\nprerequisites:\n- {name: i, type: dockerimage, " \
                   "uri: 'Not A Valid Image!!'}\ntaskRoles:\n  t: {instances: 1, dockerImage: i, " \
                   "resourcePerInstance: {cpu: 1, memoryMB: 512, gpu: 0}, commands: [echo]}\n"
    assert p.submit_yaml() is None and list(f.shown_errors()) == ["image"]


# ---- images and storage ------------------------------------------------------------------------


def test_images_from_a_real_registry_into_the_form(registry, tmp_path, monkeypatch, logged_in):
    from pai_magic.core.registry import RegistryClient, push_archive
    from tests.fixtures.registry import make_docker_save, make_layer

    archive = tmp_path / "img.tar"
    make_docker_save(archive, [make_layer({"w": b"weights" * 500})])
    monkeypatch.setenv("PAI_REGISTRY", registry.url)
    with RegistryClient(registry.url) as client:
        push_archive(client, archive, "team/panel:v1")
    p = logged_in
    p.images_button.click()
    assert p.images_list.options == ("team/panel:v1",), p.images_status.value
    p.images_list.value = "team/panel:v1"
    assert "linux/amd64" in p.image_detail.value and "2024-05-01" in p.image_detail.value
    p.use_image_button.click()
    assert p.form.image.value == f"{registry.host}/team/panel:v1" and p.tabs.selected_index == 1


def test_storages_are_listed_with_mount_state_and_usage(logged_in, tmp_path):
    """A storage pai_magic mounted (here a real 8 MB tmpfs stands for the share, recorded as
    the storage's mount) shows its mount point and usage; the others say "not mounted"."""
    import subprocess

    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import load_profile
    from pai_magic.core.storage.overview import storage_overview
    from pai_magic.core.storage.state import MountRecord, add_record
    from tests.fixtures.services import need

    with PaiClient(load_profile()) as client:
        names = [s["name"] for s in client.storages()]
    need(bool(names), "the embedded backend has no storage")
    need(os.geteuid() == 0, "mounting a tmpfs needs root")
    mountpoint = tmp_path / "share"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], check=True)
    try:
        (mountpoint / "data.bin").write_bytes(b"x" * (2 << 20))
        add_record(MountRecord(mountpoint=str(mountpoint), kind="nfs", source="127.0.0.1:/nowhere",
                               storage=names[0]))
        p = logged_in
        p.storage_button.click()
        assert p.storage_status.value == "", p.storage_status.value
        table = p.storage_table.value
        for name in names:
            assert name in table
        assert str(mountpoint) in table and "of 8.0 MiB" in table, table
        assert table.count("not mounted") == len(names) - 1
        with PaiClient(load_profile()) as client:
            row = next(r for r in storage_overview(client) if r.name == names[0])
        assert row.mountpoint == str(mountpoint) and row.total == 8 << 20 and row.used >= 2 << 20
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_kernel_and_notebook_jobs_are_labelled(logged_in):
    from pai_magic.core.kinds import KERNEL, NOTEBOOK, kind_stem

    kernel = _submit_direct(kind_stem(KERNEL, "lbl"), "true")
    notebook = _submit_direct(kind_stem(NOTEBOOK, "lbl"), "true")
    p = logged_in
    p.refresh()
    by_name = {r.name.description: r.status.value for r in p.rows}
    assert "kernel" in by_name[kernel] and "notebook run" in by_name[notebook]


def test_the_shared_loop_shows_jobs_submitted_elsewhere(profile):
    """Another face (the core, as the CLI would) submits; the loop's refresh shows the job
    without anyone clicking Refresh."""
    p = PaiPanel(refresh_interval=0.3)
    try:
        name = _submit_direct("panel_bg", "echo bg")
        _wait(lambda: p.job_states.get(name) == "SUCCEEDED", "the background refresh to show SUCCEEDED")
    finally:
        p.close()
    refreshes = p.refreshes
    time.sleep(1.0)
    assert p.refreshes == refreshes  # a closed panel is not refreshed any more


def test_the_first_page_is_the_machines_shared_poll(logged_in):
    """Every panel's unfiltered first page goes through the shared job list (core.polling):
    six refreshes of two panels ask the cluster at most once per MIN_INTERVAL; a search
    asks the cluster itself."""
    from pai_magic.core import polling

    other = PaiPanel(refresh_interval=None)
    try:
        name = _submit_direct("shared_first", "true")
        requests, served = polling.STATS.requests, polling.STATS.served
        start = time.monotonic()
        for _ in range(3):
            assert logged_in.refresh() and other.refresh(), (logged_in.error_text, other.error_text)
        elapsed = time.monotonic() - start
        made = polling.STATS.requests - requests
        assert made + polling.STATS.served - served == 6  # every refresh read the shared list
        assert 1 <= made <= 1 + elapsed / polling.MIN_INTERVAL  # the submit made the next poll ask
        assert name in logged_in.job_states and name in other.job_states
        other.search.value = name
        assert polling.STATS.requests - requests == made and polling.STATS.served - served == 6 - made
        assert list(other.job_states) == [name] and other.error_text == ""
    finally:
        other.close()


def test_start_local_backend_from_the_panel(tmp_path):
    p = PaiPanel(refresh_interval=None, local_data_dir=str(tmp_path / "local"))
    try:
        p.local_button.click()
        assert p.login_message.value == "" and p.error_text == "", (p.login_message.value, p.error_text)
        assert "127.0.0.1" in p.cluster_label.value
        assert (tmp_path / "local" / "server.json").exists()
    finally:
        p.close()
        from pai_magic.local.connect import stop_started

        stop_started()
    assert not (tmp_path / "local" / "server.json").exists()


def test_a_notebook_run_links_its_executed_notebook(logged_in, tmp_path):
    results = pytest.importorskip("pai_magic.core.notebook.results", reason="the notebook-run index is not here")
    from pai_magic.core.kinds import NOTEBOOK, kind_stem

    p = logged_in
    name = _submit_direct(kind_stem(NOTEBOOK, "linked"), "true")
    user = p._profile().user
    out = tmp_path / "runs" / "executed.ipynb"
    out.parent.mkdir()
    out.write_text("{}")
    results.record(results.NotebookResult(job=f"{user}~{name}", state="SUCCEEDED", out_dir=str(out.parent),
                                          notebook=str(out), outputs=["plots/a<b>.png"],
                                          outputs_message="1 file the notebook wrote came back beside it: plots/a<b>.png"))
    p.select(f"{user}~{name}")
    assert "Executed notebook" in p.detail.value and "executed.ipynb" in p.detail.value
    assert "came back beside it: plots/a&lt;b&gt;.png</div>" in p.detail.value  # the core's line, escaped
    plain = _submit_direct("no_notebook", "true")
    p.select(f"{user}~{plain}")
    assert "Executed notebook" not in p.detail.value


def test_panel_function_reuses_the_kernels_panel_and_close_all_frees_everything(profile):
    """Re-running a cell with ``panel()`` shows the same widgets again: no new models, no new
    subscriber to the refresh loop; ``close_all()`` closes every panel and ends the loop."""
    from pai_magic.widgets import close_all

    before = widget_count()
    first = make_panel()
    after_first = widget_count()
    assert make_panel() is first and widget_count() == after_first
    assert shared_poller().subscribers == 1
    other = PaiPanel(refresh_interval=None)
    replaced = make_panel(page_size=5)  # options: a new panel replaces the first
    assert replaced is not first and first.closed
    assert close_all() == 2 and other.closed and replaced.closed
    assert widget_count() == before
    _wait(lambda: not _poller_threads(), "the loop to end")
