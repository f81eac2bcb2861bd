"""The JupyterLab sidebar in a real browser: real `jupyter lab` (all its state in a temp dir,
the built labextension linked into the temp data dir, the server extension enabled by the
repository's jupyter-config), Debian's Chromium driven by Playwright (never a downloaded
browser), and the embedded OpenPAI backend as the cluster.

A person's path: open the sidebar by its icon, log in, submit a job and see it reach
SUCCEEDED and read its output (stdout, then stderr), submit a long one and stop it with its
button, read a job's SSH commands and which key each one needs."""
from __future__ import annotations

import os
import re

import pytest

from tests.fixtures.services import need, need_binary
from tests.server.jupyter_process import REPO, JupyterProcess

LABEXT = REPO / "pai_magic" / "labextension"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT_MS = 120_000


@pytest.fixture
def lab(tmp_path, local_backend):
    need((LABEXT / "package.json").exists(),
         "the labextension is not built: run scripts/build-labextension")
    proc = JupyterProcess(tmp_path / "lab", tmp_path / "pai-config", lab=True, labextension_dir=LABEXT)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def page(tmp_path, lab):
    chromium = need_binary("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the machine
        need(False, "playwright is not installed (pip install playwright)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium or "/usr/bin/chromium",
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
        pg = context.pages[0] if context.pages else context.new_page()
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            try:
                pg.screenshot(path=str(tmp_path / "last.png"))
            except Exception:  # noqa: BLE001 - only a debugging aid
                pass
            context.close()


def _open_sidebar(page, lab: JupyterProcess):
    page.goto(f"{lab.url}lab?token={lab.token}")
    tab = page.locator('.jp-SideBar [data-id="pai-magic-sidebar"]')
    tab.wait_for(state="visible", timeout=90_000)
    tab.click()
    sidebar = page.locator("#pai-magic-sidebar")
    sidebar.wait_for(state="visible")
    return sidebar


def _login(page, sidebar, backend) -> None:
    login = sidebar.locator("form.pai-magic-login")
    login.locator('input[name="url"]').fill(backend.url)
    login.locator('input[name="user"]').fill(backend.user)
    login.locator('input[name="password"]').fill(backend.password)
    login.locator('button[name="login"]').click()
    page.wait_for_function("el => el.dataset.loggedIn === 'true'",
                           arg=sidebar.locator('[data-testid="pai-magic-cluster"]').element_handle())


def _job_row(sidebar, stem: str):
    return sidebar.locator(f'tr.pai-magic-job[data-job-name^="{stem}_"]')


def _submit(sidebar, stem: str, command: str) -> None:
    form = sidebar.locator("details.pai-magic-submit")
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    form.locator('input[name="name"]').fill(stem)
    form.locator('textarea[name="commands"]').fill(command)
    form.locator('button[name="submit"]').click()


def test_sidebar_login_submit_succeed_and_stop(page, lab, local_backend, tmp_path):
    sidebar = _open_sidebar(page, lab)

    # logged out: the login form shows, the password never echoes
    login = sidebar.locator("form.pai-magic-login")
    login.wait_for(state="visible")
    assert login.locator('input[name="password"]').get_attribute("type") == "password"
    login.locator('input[name="url"]').fill(local_backend.url)
    login.locator('input[name="user"]').fill(local_backend.user)

    # a wrong password: one red line, still logged out
    login.locator('input[name="password"]').fill("wrong-password")
    login.locator('button[name="login"]').click()
    error = sidebar.locator(".pai-magic-error")
    error.wait_for(state="visible")
    assert error.inner_text().strip() and "\n" not in error.inner_text().strip()

    login.locator('input[name="password"]').fill(local_backend.password)
    login.locator('button[name="login"]').click()
    cluster = sidebar.locator('[data-testid="pai-magic-cluster"]')
    page.wait_for_function(
        "el => el.dataset.loggedIn === 'true'", arg=cluster.element_handle(), timeout=30_000)
    assert local_backend.user in cluster.inner_text() and "127.0.0.1" in cluster.inner_text()
    assert login.locator('input[name="password"]').input_value() == ""
    assert not login.is_visible()

    # a short job reaches SUCCEEDED in the list
    _submit(sidebar, "ui_ok", "echo hello from the sidebar\necho 'oops <b>x</b>' >&2")
    ok_row = _job_row(sidebar, "ui_ok")
    ok_row.wait_for(state="attached", timeout=JOB_TIMEOUT_MS)
    sidebar.locator('tr.pai-magic-job[data-job-name^="ui_ok_"][data-state="SUCCEEDED"]').wait_for(
        timeout=JOB_TIMEOUT_MS)
    assert ok_row.locator(".pai-magic-state").inner_text() == "SUCCEEDED"
    assert ok_row.locator("button.pai-magic-stop").count() == 0

    # its detail shows the end of the first task's stdout; the toggle shows stderr
    ok_row.locator(".pai-magic-job-name").click()
    log = sidebar.locator('.pai-magic-log[data-state="text"][data-stream="stdout"]')
    log.wait_for(timeout=JOB_TIMEOUT_MS)
    assert log.get_attribute("data-task").endswith("/0")
    assert log.locator(".pai-magic-log-text").inner_text().strip() == "hello from the sidebar"
    sidebar.locator('.pai-magic-log input[name="stderr"]').check()
    err = sidebar.locator('.pai-magic-log[data-state="text"][data-stream="stderr"]')
    err.wait_for(timeout=30_000)
    assert err.locator(".pai-magic-log-text").inner_text().strip() == "oops <b>x</b>"  # text, not markup
    sidebar.locator('.pai-magic-log input[name="stderr"]').uncheck()
    log.wait_for(timeout=30_000)

    # a long job: RUNNING, then its stop button stops it
    _submit(sidebar, "ui_long", "sleep 300")
    sidebar.locator('tr.pai-magic-job[data-job-name^="ui_long_"][data-state="RUNNING"]').wait_for(
        timeout=JOB_TIMEOUT_MS)
    _job_row(sidebar, "ui_long").locator("button.pai-magic-stop").click()
    sidebar.locator('tr.pai-magic-job[data-job-name^="ui_long_"][data-state="STOPPED"]').wait_for(
        timeout=JOB_TIMEOUT_MS)

    # no secret ever reached the page
    html = page.content()
    assert local_backend.password not in html
    assert local_backend.token not in html


def test_sidebar_shows_ssh_command_with_copy(page, lab, local_backend):
    sidebar = _open_sidebar(page, lab)
    _login(page, sidebar, local_backend)

    form = sidebar.locator("details.pai-magic-submit")
    form.locator("summary").click()
    form.locator('input[name="name"]').fill("ui_ssh")
    form.locator('textarea[name="commands"]').fill("echo ready")
    form.locator('input[name="ssh"]').check()
    form.locator('button[name="submit"]').click()
    row = sidebar.locator('tr.pai-magic-job[data-job-name^="ui_ssh_"][data-state="RUNNING"]')
    row.wait_for(timeout=JOB_TIMEOUT_MS)
    row.locator(".pai-magic-job-name").click()
    line = sidebar.locator(".pai-magic-ssh-line code").first
    line.wait_for(timeout=JOB_TIMEOUT_MS)
    assert re.match(r"^ssh -p \d+ \S+@127\.0\.0\.1", line.inner_text()), line.inner_text()
    assert sidebar.locator(".pai-magic-ssh-line button.pai-magic-copy").count() >= 1

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
    assert portal.locator("button.pai-magic-copy").count() == 1
    assert with_key.locator("button.pai-magic-copy").count() == 1
    # a running job's log is re-read while its detail is open: "ready" shows up
    running_log = sidebar.locator('.pai-magic-log[data-state="text"]')
    running_log.wait_for(timeout=JOB_TIMEOUT_MS)
    assert "ready" in running_log.locator(".pai-magic-log-text").inner_text()
    row.locator("button.pai-magic-stop").click()
    sidebar.locator('tr.pai-magic-job[data-job-name^="ui_ssh_"][data-state="STOPPED"]').wait_for(
        timeout=JOB_TIMEOUT_MS)


def test_polling_stops_while_hidden_and_resumes_on_show(page, lab, local_backend):
    """The dask-labextension habit: a hidden sidebar sends no job requests; showing it
    refreshes at once."""
    jobs_requests: list[str] = []
    page.on("request", lambda req: jobs_requests.append(req.url) if "/pai-magic/api/jobs" in req.url else None)
    sidebar = _open_sidebar(page, lab)
    _login(page, sidebar, local_backend)
    waited = 0
    while len(jobs_requests) < 2 and waited < 30_000:  # the poll runs while visible (3 s interval)
        page.wait_for_timeout(200)
        waited += 200
    assert len(jobs_requests) >= 2

    page.locator('.jp-SideBar [data-id="pai-magic-sidebar"]').click()  # collapse the left panel
    sidebar.wait_for(state="hidden")
    page.wait_for_timeout(500)
    before = len(jobs_requests)
    page.wait_for_timeout(8_000)  # more than two refresh intervals
    assert len(jobs_requests) == before, "the hidden sidebar kept polling"

    page.locator('.jp-SideBar [data-id="pai-magic-sidebar"]').click()  # show it again
    sidebar.wait_for(state="visible")
    page.wait_for_timeout(1_500)  # well under one interval: the refresh comes from showing
    assert len(jobs_requests) > before


def test_action_error_stays_readable_across_refreshes(page, lab, local_backend):
    """A refused submit's red line is whole (wrapped, not cut by an ellipsis: its end says
    what to do next) and survives the 3 s poll until the user acts again."""
    sidebar = _open_sidebar(page, lab)
    cluster = sidebar.locator('[data-testid="pai-magic-cluster"]')
    cluster.wait_for()
    # logged out: the line points at the form right below it
    page.wait_for_function("el => el.dataset.loggedIn === 'false'", arg=cluster.element_handle())
    assert "below" in cluster.inner_text()
    _login(page, sidebar, local_backend)

    form = sidebar.locator("details.pai-magic-submit")
    form.locator("summary").click()
    form.locator('input[name="image"]').fill("")
    form.locator('textarea[name="commands"]').fill("echo x")
    form.locator('button[name="submit"]').click()
    error = sidebar.locator(".pai-magic-error")
    error.wait_for(state="visible")
    message = error.inner_text()
    assert "image" in message
    assert error.evaluate("el => el.scrollWidth <= el.clientWidth"), "the error line is clipped"

    polls: list[str] = []
    page.on("response", lambda r: polls.append(r.url) if "/pai-magic/api/jobs?" in r.url and r.ok else None)
    waited = 0
    while len(polls) < 2 and waited < 30_000:  # two successful refreshes after the error
        page.wait_for_timeout(250)
        waited += 250
    assert len(polls) >= 2, "the sidebar stopped refreshing"
    assert error.is_visible() and error.inner_text() == message

    form.locator('input[name="image"]').fill("ubuntu:22.04")
    form.locator('button[name="submit"]').click()
    error.wait_for(state="hidden")
