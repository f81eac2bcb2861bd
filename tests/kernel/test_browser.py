"""In a real browser: JupyterLab's launcher shows the OpenPAI kernel, a notebook on it runs a
cell inside the job and shows the result, and a notification follows the kernel's start
phases until it is ready. Real `jupyter lab` (state in a temp dir) with this checkout's built
labextension, Debian's Chromium through Playwright (never a downloaded browser), the
embedded backend as cluster."""
from __future__ import annotations


import pytest

from tests.fixtures.browser import chromium_page
from tests.fixtures.services import need
from tests.kernel.test_kernel_server import install_spec, kernel_jobs, save_profile_for, wait_until
from tests.server.jupyter_process import REPO, JupyterProcess

DISPLAY = "Python 3 on OpenPAI (lab, no GPU)"
LABEXT = REPO / "pai_magic" / "labextension"
# Every text a notification toast shows, in order, kept in window.__paiToasts (a toast is
# updated in place and closes itself, so its history is read as it happens).
RECORD_TOASTS = """
window.__paiToasts = [];
new MutationObserver(() => {
  for (const node of document.querySelectorAll('.jp-toast-message')) {
    const text = node.innerText;
    if (window.__paiToasts[window.__paiToasts.length - 1] !== text && !window.__paiToasts.includes(text)) {
      window.__paiToasts.push(text);
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture
def lab(tmp_path, local_backend):
    root = tmp_path / "lab"
    cfg = save_profile_for(root, local_backend)
    need((LABEXT / "package.json").exists(), "the labextension is not built: run scripts/build-labextension")
    proc = JupyterProcess(root, cfg, lab=True, labextension_dir=LABEXT)
    install_spec(root, "pai-test", lease_seconds=30)
    proc.start()
    try:
        yield proc
    finally:
        for kernel in proc.get("api/kernels").json():  # stop the kernel jobs the page started
            proc.request("DELETE", f"api/kernels/{kernel['id']}", timeout=120)
        proc.stop()


def test_launcher_shows_the_kernel_and_a_notebook_runs_a_cell(lab, local_backend, tmp_path):
    with chromium_page(tmp_path / "chromium-profile", timeout_ms=90_000) as page:
        page.add_init_script(RECORD_TOASTS)
        # a pai-magic kernelspec is installed: the page follows kernel starts with a long poll
        with page.expect_request(lambda r: "pai-magic/api/kernel-starts?since=" in r.url, timeout=120_000):
            page.goto(f"{lab.url}lab?token={lab.token}")
        card = page.locator(f'.jp-LauncherCard[title="{DISPLAY}"]').first
        card.wait_for(state="visible", timeout=120_000)
        card.click()
        # one notification follows the start: a phase line while starting, then "ready"
        page.wait_for_function("() => window.__paiToasts.some(t => t.includes('kernel ready on OpenPAI'))",
                               timeout=180_000)
        toasts = page.evaluate("window.__paiToasts")
        ready = next(i for i, t in enumerate(toasts) if "kernel ready on OpenPAI" in t)
        starting = [t for t in toasts[:ready] if t.startswith("Kernel for Untitled.ipynb starting on OpenPAI")]
        assert any("job pai-kernel-pai-test_" in t for t in starting), toasts
        assert toasts[ready].startswith("Kernel for Untitled.ipynb: kernel ready on OpenPAI after"), toasts
        # the notebook opens on the kernel; the kernel starts a job. JupyterLab drops a cell
        # run before its session has a kernel, so wait until the page is connected to it.
        wait_until(lambda: any(k["connections"] >= 1 and k["execution_state"] == "idle"
                               for k in lab.get("api/kernels").json()), 180, "the page to connect")
        page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
        page.keyboard.type("import os; os.environ['PAI_JOB_NAME']")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output").first
        page.wait_for_function("el => el.innerText.includes('pai-kernel-pai-test_')",
                               arg=output.element_handle(timeout=60_000), timeout=60_000)
        job = output.inner_text().strip().strip("'").split("~")[-1]
        assert kernel_jobs(local_backend)[job] == "RUNNING"
