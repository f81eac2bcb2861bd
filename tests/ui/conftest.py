"""One JupyterLab and one Chromium per test module (Chromium on a shared 2-core machine is
slow): real `jupyter lab` with the built labextension and the server extension, Debian's
Chromium driven by Playwright, the embedded OpenPAI backend as the cluster."""
from __future__ import annotations


import pytest

from tests.fixtures.browser import chromium_page
from tests.fixtures.services import need
from tests.server.jupyter_process import REPO, JupyterProcess

LABEXT = REPO / "pai_magic" / "labextension"
JOB_TIMEOUT_MS = 120_000
#: The terminals' shell, as a Jupyter started from a virtual environment gives it to a user: a
#: PATH without this interpreter's scripts folder (a login shell rebuilds PATH from
#: /etc/profile), so a bare `pai-magic` typed there is not found or is another install's.
TERMINAL_SHELL = ["/usr/bin/env", "PATH=/usr/bin:/bin", "/bin/bash", "--noprofile", "--norc", "-i"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, local_backend):
    need((LABEXT / "package.json").exists(),
         "the labextension is not built: run scripts/build-labextension")
    root = tmp_path_factory.mktemp("lab")
    # its own data folder: the runs index a test's `pai-magic run-notebook` writes is the one it reads
    proc = JupyterProcess(root / "lab", root / "pai-config", lab=True, labextension_dir=LABEXT,
                          extra_config={"ServerApp": {"terminado_settings": {"shell_command": TERMINAL_SHELL}}},
                          env={"PAI_MAGIC_DATA_DIR": str(root / "pai-data")})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory, lab):
    with chromium_page(tmp_path_factory.mktemp("chromium-profile")) as page:
        yield page


def open_sidebar(page, lab: JupyterProcess):
    page.goto(f"{lab.url}lab?token={lab.token}")
    tab = page.locator('.jp-SideBar [data-id="pai-magic-sidebar"]')
    tab.wait_for(state="visible", timeout=90_000)
    sidebar = page.locator("#pai-magic-sidebar")
    sidebar.wait_for(state="attached")
    page.wait_for_timeout(1_000)  # the layout restorer may still be opening the panel it had
    for _ in range(3):
        if sidebar.is_visible():
            break
        tab.click()
        try:
            sidebar.wait_for(state="visible", timeout=5_000)
        except Exception:  # noqa: BLE001 - clicked while the restorer toggled it: try again
            continue
    sidebar.wait_for(state="visible")
    return sidebar


def login(page, sidebar, backend) -> None:
    cluster = sidebar.locator('[data-testid="pai-magic-cluster"]')
    page.wait_for_function("el => el.dataset.loggedIn !== 'unknown'", arg=cluster.element_handle())
    if cluster.get_attribute("data-logged-in") == "true":
        return
    form = sidebar.locator("form.pai-magic-login")
    form.locator('input[name="url"]').fill(backend.url)
    form.locator('input[name="user"]').fill(backend.user)
    form.locator('input[name="password"]').fill(backend.password)
    form.locator('button[name="login"]').click()
    page.wait_for_function("el => el.dataset.loggedIn === 'true'", arg=cluster.element_handle())


def show_tab(sidebar, name: str):
    sidebar.locator(f'button.pai-magic-tab[data-tab="{name}"]').click()
    panel = sidebar.locator(f'[data-panel="{name}"]')
    panel.wait_for(state="visible")
    return panel


def submit_form(sidebar, stem: str, command: str, image: str = "ubuntu:22.04", **fields) -> None:
    form = show_tab(sidebar, "submit")
    form.locator('input[name="name"]').fill(stem)
    form.locator('input[name="image"]').fill(image)
    form.locator('textarea[name="commands"]').fill(command)
    for name, value in fields.items():
        box = form.locator(f'input[name="{name}"]')
        if isinstance(value, bool):
            box.set_checked(value)
        else:
            box.fill(str(value))
    form.locator('button[name="submit"]').click()


def search_jobs(sidebar, keyword: str) -> None:
    """Type a search and wait until the list shows a page read with it."""
    jobs = show_tab(sidebar, "jobs")
    jobs.locator('input[name="keyword"]').fill(keyword)
    jobs.locator('input[name="keyword"]').press("Enter")
    sidebar.locator(f'table.pai-magic-jobs[data-keyword="{keyword}"]').wait_for(state="attached", timeout=60_000)


def job_row(sidebar, stem: str, state: str | None = None):
    extra = f'[data-state="{state}"]' if state else ""
    return sidebar.locator(f'tr.pai-magic-job[data-job-name^="{stem}_"]{extra}')
