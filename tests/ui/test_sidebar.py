"""The JupyterLab sidebar in a real browser, a person's path: open the sidebar by its icon,
log in, submit a job and see it reach SUCCEEDED and read its output (stdout, then stderr),
submit a long one and stop it, read a job's SSH commands and open a terminal into its task,
see a refused image under the image field with the CLI's own words, see a stale error go
once the cluster is back, and watch polling stop while the sidebar is hidden.

One JupyterLab and one Chromium for the module (tests/ui/conftest.py); tests run in order
and share the page."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.server.jupyter_process import REPO
from tests.ui.conftest import JOB_TIMEOUT_MS, job_row, login, open_sidebar, search_jobs, show_tab, submit_form


@pytest.fixture(scope="module")
def page(browser_page, lab):
    open_sidebar(browser_page, lab)
    return browser_page


@pytest.fixture
def sidebar(page):
    return page.locator("#pai-magic-sidebar")


def test_login_submit_succeed_logs_and_stop(page, sidebar, local_backend):
    # logged out: the login form shows, the password never echoes
    login_form = sidebar.locator("form.pai-magic-login")
    login_form.wait_for(state="visible")
    assert login_form.locator('input[name="password"]').get_attribute("type") == "password"
    cluster = sidebar.locator('[data-testid="pai-magic-cluster"]')
    assert "below" in cluster.inner_text()  # the line points at the form right below it
    login_form.locator('input[name="url"]').fill(local_backend.url)
    login_form.locator('input[name="user"]').fill(local_backend.user)

    # a wrong password: one red line in the login form, still logged out
    login_form.locator('input[name="password"]').fill("wrong-password")
    login_form.locator('button[name="login"]').click()
    error = login_form.locator(".pai-magic-form-error")
    error.wait_for(state="visible")
    assert error.inner_text().strip() and "\n" not in error.inner_text().strip()

    login_form.locator('input[name="password"]').fill(local_backend.password)
    login_form.locator('button[name="login"]').click()
    page.wait_for_function("el => el.dataset.loggedIn === 'true'", arg=cluster.element_handle(), timeout=30_000)
    assert local_backend.user in cluster.inner_text() and "127.0.0.1" in cluster.inner_text()
    assert login_form.locator('input[name="password"]').input_value() == ""
    assert not login_form.is_visible()

    # a short job reaches SUCCEEDED in the list, and the list's detail opens on it
    submit_form(sidebar, "ui_ok", "echo hello from the sidebar\necho 'oops <b>x</b>' >&2")
    job_row(sidebar, "ui_ok", "SUCCEEDED").wait_for(timeout=JOB_TIMEOUT_MS)
    row = job_row(sidebar, "ui_ok")
    assert row.locator(".pai-magic-state").inner_text() == "SUCCEEDED"
    assert row.locator("button.pai-magic-stop").count() == 0

    # the detail: the task table and the end of the first task's stdout; then stderr
    row.locator(".pai-magic-job-name").click()
    detail = sidebar.locator(".pai-magic-detail")
    task = detail.locator("tr.pai-magic-task").first
    task.wait_for()
    cells = task.locator("td").all_inner_texts()
    assert cells[0].endswith("/0") and cells[1] == "SUCCEEDED" and cells[4] == "0" and cells[5] == "0", cells
    # the job's diagnostics in plain words, not the job controller's (SucceededTaskCount ...)
    diagnostics = detail.locator(".pai-magic-diagnostics")
    diagnostics.wait_for(timeout=JOB_TIMEOUT_MS)
    said = diagnostics.inner_text()
    assert "succeeded, as many as the job needs" in said and "TaskCount" not in said, said
    log = sidebar.locator('.pai-magic-log[data-state="text"][data-stream="stdout"]')
    log.wait_for(timeout=JOB_TIMEOUT_MS)
    assert log.get_attribute("data-task").endswith("/0")
    assert log.locator(".pai-magic-log-text").inner_text().strip() == "hello from the sidebar"
    sidebar.locator('.pai-magic-log select[name="stream"]').select_option("stderr")
    err = sidebar.locator('.pai-magic-log[data-state="text"][data-stream="stderr"]')
    err.wait_for(timeout=30_000)
    assert err.locator(".pai-magic-log-text").inner_text().strip() == "oops <b>x</b>"  # text, not markup
    sidebar.locator('.pai-magic-log select[name="stream"]').select_option("stdout")
    log.wait_for(timeout=30_000)

    # a long job: RUNNING, then its stop button stops it
    submit_form(sidebar, "ui_long", "sleep 300")
    job_row(sidebar, "ui_long", "RUNNING").wait_for(timeout=JOB_TIMEOUT_MS)
    job_row(sidebar, "ui_long").locator("button.pai-magic-stop").click()
    job_row(sidebar, "ui_long", "STOPPED").wait_for(timeout=JOB_TIMEOUT_MS)

    # no secret ever reached the page
    html = page.content()
    assert local_backend.password not in html
    assert local_backend.token not in html


def test_ssh_commands_and_terminal_into_the_task(page, sidebar, lab, local_backend, tmp_path):
    login(page, sidebar, local_backend)
    submit_form(sidebar, "ui_ssh", "echo ready", ssh=True, keepAlive=True)
    row = job_row(sidebar, "ui_ssh", "RUNNING")
    row.wait_for(timeout=JOB_TIMEOUT_MS)
    row.locator(".pai-magic-job-name").click()
    line = sidebar.locator(".pai-magic-ssh-line code").first
    line.wait_for(timeout=JOB_TIMEOUT_MS)
    assert re.match(r"^ssh -p \d+ \S+@127\.0\.0\.1", line.inner_text()), line.inner_text()

    # each line is labelled: the portal's command needs the user's own key or agent, the
    # one with -i names pai_magic's key file and works as is; both keep their copy button
    labels = sidebar.locator(".pai-magic-ssh-label")
    assert labels.count() == 2, labels.all_inner_texts()
    portal = sidebar.locator('.pai-magic-ssh-line[data-kind="portal"]')
    with_key = sidebar.locator('.pai-magic-ssh-line[data-kind="key"]')
    assert " -i " not in portal.locator("code").inner_text()
    assert " -i " in with_key.locator("code").inner_text()
    portal_label, key_label = labels.all_inner_texts()
    assert "portal" in portal_label and "default SSH key" in portal_label and "/0: " in portal_label
    assert "pai_magic's key" in key_label and "works as is" in key_label
    # "Copied" survives the next refreshes (the SSH box is only rebuilt when it changes)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = portal.locator("button.pai-magic-copy")
    copy.click()
    assert copy.inner_text() == "Copied"
    # a refresh re-reads the detail but keeps the SSH box (and its "Copied") when nothing
    # in it changed: the very same button node is still there afterwards
    copy.evaluate("b => { b.dataset.marker = 'kept'; }")
    with page.expect_response(lambda r: "/pai-magic/api/jobs/" in r.url and "/ssh" in r.url):
        sidebar.locator('button[name="refresh"]').click()
    page.wait_for_timeout(300)
    assert portal.locator('button.pai-magic-copy[data-marker="kept"]').count() == 1
    # a running job's log is re-read while its detail is open: "ready" shows up
    running_log = sidebar.locator('.pai-magic-log[data-state="text"]')
    running_log.wait_for(timeout=JOB_TIMEOUT_MS)
    assert "ready" in running_log.locator(".pai-magic-log-text").inner_text()

    # "Terminal" opens a JupyterLab terminal running the CLI's ssh into the task: a line
    # typed there runs in the task (its PAI_JOB_NAME is the job's)
    term_button = sidebar.locator("tr.pai-magic-task button.pai-magic-terminal")
    full = row.get_attribute("data-full-name")
    # the server's own pai-magic by absolute path (the terminal's PATH lacks it: TERMINAL_SHELL)
    # with the server's profile, so the terminal reaches the cluster the sidebar shows
    command = shlex.split(term_button.get_attribute("data-command"))
    assert os.path.isabs(command[0]) and os.access(command[0], os.X_OK), command
    profile = lab.get("pai-magic/api/status").json()["profile"]
    assert command[1:] == ["ssh", full, "--profile", profile], command
    term_button.click()
    terminal = page.locator(".jp-Terminal").last
    terminal.wait_for(state="visible", timeout=60_000)
    marker = tmp_path / "in-task.txt"
    terminal.click()

    def written() -> str:
        return marker.read_text().strip() if marker.exists() else ""

    # typed again until it ran in the task: keys typed before the terminal connected are
    # dropped, and a line that reached the local shell first writes an empty name
    deadline = time.monotonic() + 90
    while written() != full and time.monotonic() < deadline:
        page.keyboard.type(f'echo "$PAI_JOB_NAME" > {marker}\n')
        for _ in range(20):
            if written() == full:
                break
            page.wait_for_timeout(500)
    assert written() == full, (f"the terminal's ssh session never ran the line (wrote {written()!r}); "
                               f"the terminal shows: {terminal.inner_text()[-600:]!r}")
    page.keyboard.type("exit\n")
    sidebar.locator("tr.pai-magic-job[data-full-name='%s'] button.pai-magic-stop" % full).click()
    job_row(sidebar, "ui_ssh", "STOPPED").wait_for(timeout=JOB_TIMEOUT_MS)


def test_invalid_image_refused_under_the_field_with_the_clis_words(page, sidebar, local_backend, tmp_path):
    """Depends on the core's single submit validation (the panel/validation branch): the
    server answers {"error", "field": "image"} with the line the CLI prints."""
    login(page, sidebar, local_backend)
    cli = subprocess.run(
        [sys.executable, "-m", "pai_magic", "submit", "--image", "Not A Valid Image!!", "--dry-run", "-c", "echo x"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PAI_MAGIC_CONFIG_DIR": str(tmp_path / "cfg"),
             "PAI_URL": local_backend.url, "PAI_USER": local_backend.user, "PAI_TOKEN": local_backend.token})
    assert cli.returncode == 2, cli
    cli_line = cli.stderr.strip().splitlines()[-1].removeprefix("pai-magic: ")

    before = sidebar.locator('tr.pai-magic-job[data-job-name^="ui_bad_image_"]').count()
    submit_form(sidebar, "ui_bad_image", "echo x", image="Not A Valid Image!!")
    form = sidebar.locator('[data-panel="submit"]')
    field_error = form.locator('[data-field-error="image"]')
    field_error.wait_for(state="visible", timeout=30_000)
    assert field_error.inner_text().strip() == cli_line
    assert form.locator(".pai-magic-form-error").is_hidden()
    # the clicked Submit was disabled while the request ran: the focus is on the field to fix,
    # not dropped to the page, and the field says it is invalid
    image = form.locator('input[name="image"]')
    page.wait_for_function("el => document.activeElement === el", arg=image.element_handle(), timeout=30_000)
    assert image.get_attribute("aria-invalid") == "true"
    # nothing was submitted
    search_jobs(sidebar, "ui_bad_image")
    page.wait_for_timeout(1_500)
    assert sidebar.locator('tr.pai-magic-job[data-job-name^="ui_bad_image_"]').count() == before == 0
    # the next action clears the stale message: a different wrong field shows only its own
    submit_form(sidebar, "ui_bad_image", "", image="ubuntu:22.04")
    form.locator('[data-field-error="commands"], .pai-magic-form-error').first.wait_for(state="visible")
    assert field_error.is_hidden()
    assert image.get_attribute("aria-invalid") is None  # no stale mark on a field now accepted


def test_stale_error_cleared_by_the_next_successful_refresh(page, sidebar, local_backend):
    login(page, sidebar, local_backend)
    show_tab(sidebar, "jobs")
    error = sidebar.locator(".pai-magic-error").first
    local_backend.stop()
    try:
        page.wait_for_function("el => !el.hidden && el.textContent.length > 0",
                               arg=error.element_handle(), timeout=60_000)
        message = error.inner_text()
        assert "\n" not in message.strip()
    finally:
        local_backend.start()
    # the cluster is back: the next successful refresh (the Refresh button) clears the red line
    sidebar.locator('button[name="refresh"]').click()
    page.wait_for_function("el => el.hidden", arg=error.element_handle(), timeout=60_000)
    label = sidebar.locator(".pai-magic-page-label")
    assert re.search(r" of \d+$", label.inner_text()), label.inner_text()


def test_polling_stops_while_hidden_and_resumes_on_show(page, sidebar, local_backend):
    """The dask-labextension habit: a hidden sidebar sends no job requests; showing it
    refreshes at once."""
    login(page, sidebar, local_backend)
    show_tab(sidebar, "jobs")
    jobs_requests: list[str] = []

    def on_request(req):
        if "/pai-magic/api/jobs?" in req.url:
            jobs_requests.append(req.url)

    page.on("request", on_request)
    try:
        waited = 0
        while len(jobs_requests) < 2 and waited < 30_000:  # the poll runs while visible (5 s interval)
            page.wait_for_timeout(250)
            waited += 250
        assert len(jobs_requests) >= 2
        page.locator('.jp-SideBar [data-id="pai-magic-sidebar"]').click()  # collapse the left panel
        sidebar.wait_for(state="hidden")
        page.wait_for_timeout(500)
        before = len(jobs_requests)
        page.wait_for_timeout(11_000)  # more than two refresh intervals
        assert len(jobs_requests) == before, "the hidden sidebar kept polling"
        page.locator('.jp-SideBar [data-id="pai-magic-sidebar"]').click()  # show it again
        sidebar.wait_for(state="visible")
        page.wait_for_timeout(1_500)  # well under one interval: the refresh comes from showing
        assert len(jobs_requests) > before
    finally:
        page.remove_listener("request", on_request)
