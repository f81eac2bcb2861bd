"""The ipywidgets panel's callbacks against the embedded backend (a real subprocess over real
HTTP): no browser needed, buttons are clicked through ipywidgets' own ``Button.click()``."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import ipywidgets as W
import pytest

from pai_magic.widgets import PaiPanel, panel as make_panel

WAIT = 120.0


def _wait(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _all_widgets(root: W.Widget) -> list[W.Widget]:
    out = [root]
    for child in getattr(root, "children", ()) or ():
        out.extend(_all_widgets(child))
    return out


def _widget_state_text(p: PaiPanel) -> str:
    """Everything the front end (and a saved notebook's widget state) would hold."""
    return json.dumps([w.get_state() for w in _all_widgets(p.widget)], default=str)


def _buttons(p: PaiPanel, description: str) -> list[W.Button]:
    return [w for w in _all_widgets(p.jobs_box) if isinstance(w, W.Button) and w.description == description]


def _state_after_refresh(p: PaiPanel, name: str, states: set[str]) -> str:
    def check():
        p.refresh()
        return p.job_states.get(name) in states and p.job_states[name]

    return _wait(check, f"job {name} to reach {sorted(states)}")


@pytest.fixture
def logged_in(local_backend):
    p = PaiPanel(refresh_interval=None)
    p.url.value = local_backend.url
    p.user.value = local_backend.user
    p.password.value = local_backend.password
    p.login_button.click()
    assert p.error_text == "", p.error_text
    yield p
    p.close()


def test_logged_out_panel_says_what_to_do():
    p = make_panel(refresh_interval=None)
    try:
        assert "login" in p.error_text.lower()
        assert p.tabs.selected_index == 2  # the Login tab
        assert isinstance(p.password, W.Password)
    finally:
        p.close()


def test_wrong_password_is_one_red_line_and_never_kept(local_backend):
    p = PaiPanel(refresh_interval=None)
    try:
        p.url.value = local_backend.url
        p.user.value = local_backend.user
        p.password.value = "wrong-password-123"
        p.login_button.click()
        assert p.error_text and "\n" not in p.error_text
        assert "color" in p.error.value  # red
        assert p.password.value == ""
        assert "wrong-password-123" not in _widget_state_text(p)
    finally:
        p.close()


def test_login_submit_succeeds_and_nothing_secret_in_widgets(logged_in, local_backend):
    p = logged_in
    assert local_backend.user in p.cluster_label.value and "127.0.0.1" in p.cluster_label.value
    assert p.password.value == ""

    p.job_name.value = "panel_ok"
    p.commands.value = "echo from the panel\necho 'to <stderr>' >&2\n"
    p.submit_button.click()
    name = p.last_submitted
    assert name and name.startswith("panel_ok_"), p.error_text
    assert _state_after_refresh(p, name, {"SUCCEEDED", "FAILED"}) == "SUCCEEDED"
    p.select(name)
    assert "SUCCEEDED" in p.detail.value and "exit code 0" in p.detail.value

    # the detail shows the end of the first task's stdout, and stderr on the toggle
    assert "from the panel" in p.log_lines, (p.log_lines, p.log_message, p.error_text)
    assert "from the panel" in p.log_box.value and "to <stderr>" not in p.log_lines
    p.log_stderr.value = True
    assert p.log_lines == ["to <stderr>"], (p.log_lines, p.log_message, p.error_text)
    assert "to &lt;stderr&gt;" in p.log_box.value  # escaped, never markup
    p.log_stderr.value = False
    assert "from the panel" in p.log_lines
    p.close_detail()
    assert p.selected is None and p.log_box.value == "" and p.log_lines == []

    from pai_magic.core.profiles import load_profile

    token = load_profile().token
    state = _widget_state_text(p)
    assert token and token not in state
    assert local_backend.password not in state
    assert token not in repr(p)


def test_stop_button_stops_a_running_job(logged_in):
    p = logged_in
    p.job_name.value = "panel_long"
    p.commands.value = "sleep 300"
    p.submit_button.click()
    name = p.last_submitted
    assert name, p.error_text
    _state_after_refresh(p, name, {"RUNNING"})
    stops = [b for b in _buttons(p, "Stop") if name in b.tooltip]
    assert len(stops) == 1
    stops[0].click()
    assert _state_after_refresh(p, name, {"STOPPED", "FAILED", "SUCCEEDED"}) == "STOPPED"
    assert not [b for b in _buttons(p, "Stop") if name in b.tooltip]


def test_ssh_info_with_copy(logged_in):
    p = logged_in
    p.job_name.value = "panel_ssh"
    p.commands.value = "echo ready"
    p.ssh.value = True
    p.submit_button.click()
    name = p.last_submitted
    assert name, p.error_text
    try:
        _state_after_refresh(p, name, {"RUNNING"})
        p.select(name)
        assert p.ssh_lines and p.ssh_lines[0].startswith("ssh -p ") and "@127.0.0.1" in p.ssh_lines[0]
        assert "navigator.clipboard.writeText" in p.ssh_box.value
        assert p.ssh_lines[0] in p.ssh_text.value
        # each line says what it needs: the portal's command uses the user's own key or
        # agent; the one with -i names pai_magic's key file and works as is
        assert len(p.ssh_labels) == len(p.ssh_lines) == 2, p.ssh_lines
        portal, with_key = p.ssh_lines
        assert " -i " not in portal and "portal" in p.ssh_labels[0] and "default SSH key" in p.ssh_labels[0]
        assert " -i " in with_key and "pai_magic's key" in p.ssh_labels[1] and "works as is" in p.ssh_labels[1]
        assert all("/0: " in label for label in p.ssh_labels)  # the task is named
        assert p.ssh_box.value.count("navigator.clipboard.writeText") == 2
        assert "pai_magic&#x27;s key" in p.ssh_box.value or "pai_magic's key" in p.ssh_box.value
    finally:
        p.stop(name)


def test_submit_errors_are_one_line(logged_in):
    p = logged_in
    p.commands.value = ""
    assert p.submit() is None
    assert "command" in p.error_text.lower()
    p.commands.value = "echo x"
    p.image.value = ""
    assert p.submit() is None
    assert "image" in p.error_text.lower() and "\n" not in p.error_text


def test_background_refresh_sees_jobs_submitted_elsewhere(logged_in):
    """Another face (here the core directly, as the CLI would) submits; the panel's own
    refresh thread shows the job without anyone clicking Refresh."""
    from pai_magic.core.client import PaiClient
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.profiles import load_profile
    from pai_magic.core.protocol import JobSpec, build_protocol

    p = PaiPanel(refresh_interval=0.3)
    try:
        with PaiClient(load_profile()) as client:
            name = submit_job(client, build_protocol(JobSpec(name="panel_bg", image="ubuntu:22.04",
                                                             commands=["echo bg"])))
        _wait(lambda: p.job_states.get(name) == "SUCCEEDED", "the background refresh to show SUCCEEDED")
    finally:
        p.close()
    assert p._stop_event.is_set()


def test_start_local_backend_from_the_panel(tmp_path):
    p = PaiPanel(refresh_interval=None, local_data_dir=str(tmp_path / "local"))
    try:
        p.local_button.click()
        assert p.error_text == "", p.error_text
        assert "127.0.0.1" in p.cluster_label.value
        assert (tmp_path / "local" / "server.json").exists()
    finally:
        p.close()
        from pai_magic.local.connect import stop_started

        stop_started()
    assert not (tmp_path / "local" / "server.json").exists()


def test_submit_error_outlives_the_background_refresh(local_backend):
    """A refused submit's red line stays until the user acts again: the background refresh
    that succeeds a moment later must not wipe it (it used to, within one interval)."""
    from pai_magic.widgets.jobs_panel import ERROR_STYLE

    p = PaiPanel(refresh_interval=0.2)
    try:
        p.url.value = local_backend.url
        p.user.value = local_backend.user
        p.password.value = local_backend.password
        p.login_button.click()
        assert p.error_text == "", p.error_text
        p.commands.value = "echo x"
        p.image.value = ""
        assert p.submit() is None
        message = p.error_text
        assert "image" in message.lower()
        time.sleep(1.5)  # several refresh intervals, each of them successful
        assert p.error_text == message
        # the error is wrapped, never clipped with an ellipsis (its end says what to do)
        assert "ellipsis" not in ERROR_STYLE and "nowrap" not in ERROR_STYLE
        # the next action clears it
        p.image.value = "ubuntu:22.04"
        assert p.submit()
        assert p.error_text == ""
    finally:
        p.close()
