"""In a real browser: JupyterLab's launcher shows the OpenPAI kernel, a notebook on it runs a
cell inside the job and shows the result, and a notification follows the kernel's start
phases until it is ready. Real `jupyter lab` (state in a temp dir) with this checkout's built
labextension, Debian's Chromium through Playwright (never a downloaded browser), the
embedded backend as cluster."""
from __future__ import annotations


import json
import os
import shutil
import subprocess
import sys

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
# Every request of the page's kernel-starts loop: when it was sent, and how it ended.
RECORD_POLLS = """
window.__paiPolls = [];
const pageFetch = window.fetch;
window.fetch = function (input, init) {
  const url = typeof input === 'string' ? input : input.url;
  if (!url.includes('/pai-magic/api/kernel-starts')) {
    return pageFetch.apply(this, arguments);
  }
  const poll = {sent: Date.now(), ended: null, how: null};
  window.__paiPolls.push(poll);
  return pageFetch.apply(this, arguments).then(
    r => { poll.ended = Date.now(); poll.how = 'answered'; return r; },
    e => { poll.ended = Date.now(); poll.how = 'failed'; throw e; });
};
"""

# JupyterLab's "Error Starting Kernel" dialog: the reason (its first <pre>) within the dialog's
# box with nothing to scroll sideways; and, to show the check means something, the same line
# unwrapped (JupyterLab's own style) overflows.
DIALOG_FIT_JS = """
d => {
  const body = d.querySelector('.jp-Dialog-body');
  const pre = body.querySelector('pre');
  const box = d.querySelector('.jp-Dialog-content').getBoundingClientRect();
  const p = pre.getBoundingClientRect();
  const fit = {text: pre.textContent, bodyFits: body.scrollWidth <= body.clientWidth && pre.scrollWidth <= pre.clientWidth,
               reasonInside: p.left >= box.left && p.right <= box.right && p.width > 0};
  pre.style.whiteSpace = 'pre';
  fit.unwrappedOverflows = body.scrollWidth > body.clientWidth;
  pre.style.whiteSpace = '';
  return fit;
}
"""


@pytest.fixture
def lab(tmp_path, local_backend):
    root = tmp_path / "lab"
    cfg = save_profile_for(root, local_backend)
    need((LABEXT / "package.json").exists(), "the labextension is not built: run scripts/build-labextension")
    proc = JupyterProcess(root, cfg, lab=True, labextension_dir=LABEXT,
                          extra_config={"LabApp": {"expose_app_in_browser": True}})
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
        page.add_init_script(RECORD_POLLS)
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

        # the job is stopped outside Jupyter (the CLI): the page says which kernel ended and why,
        # not only "No Kernel" (the reason used to stay in the server log)
        env = dict(os.environ, PAI_MAGIC_CONFIG_DIR=str(lab.pai_config_dir))
        stopped = subprocess.run([sys.executable, "-m", "pai_magic", "stop", job], env=env, capture_output=True,
                                 text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        page.wait_for_function("() => window.__paiToasts.some(t => t.startsWith('Kernel for Untitled.ipynb ended: "
                               f"Job {job} was STOPPED outside Jupyter'))", timeout=120_000)
        wait_until(lambda: not lab.get("api/kernels").json(), 60, "the dead kernel to leave the server")
        assert lab.post("api/kernels", json={"name": "pai-test"}, timeout=300).status_code == 201  # for the end

        # a start that fails (an image Python without ipykernel), by any client of this server:
        # the page shows the one-line reason as an error notification
        install_spec(lab.root, "pai-nokernel", python=f"{sys.executable} -S")
        resp = lab.post("api/sessions", json={"path": "broken.ipynb", "name": "broken.ipynb", "type": "notebook",
                                              "kernel": {"name": "pai-nokernel"}}, timeout=300)
        assert resp.status_code != 201, resp.text
        page.wait_for_function("() => window.__paiToasts.some(t => t.startsWith('Kernel for broken.ipynb did not "
                               "start:') && t.includes('ipykernel'))", timeout=120_000)
        # the toast cuts the line at 140 characters, and the cut part says what to do next:
        # its button shows the whole line in a dialog, the same line the server answered
        reason = page.locator(".jp-toast-button", has_text="Show the reason")
        reason.first.click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(state="visible", timeout=30_000)
        assert resp.json()["message"] in dialog.inner_text()
        assert "pai-magic-start-error" not in dialog.get_attribute("class")  # not JupyterLab's kernel dialog
        dialog.locator("button", has_text="Close").click()
        dialog.wait_for(state="detached", timeout=30_000)

        # the page itself opens a notebook on that kernel: JupyterLab's own "Error Starting
        # Kernel" dialog shows the same line, wrapped inside the dialog (it ran off its edge)
        (lab.root / "notebooks" / "broken-too.ipynb").write_text(json.dumps(
            {"cells": [], "metadata": {"kernelspec": {"name": "pai-nokernel", "display_name": "x"}},
             "nbformat": 4, "nbformat_minor": 5}))
        page.evaluate("""async () => {  // the page learns of the kernelspec installed since it loaded
            await window.jupyterapp.serviceManager.kernelspecs.refreshSpecs();
            await window.jupyterapp.commands.execute('docmanager:open', {path: 'broken-too.ipynb'});
        }""")
        error = page.locator(".jp-Dialog.pai-magic-start-error")
        error.wait_for(state="visible", timeout=180_000)
        fit = error.evaluate(DIALOG_FIT_JS)
        failed = [st for st in lab.get("pai-magic/api/kernel-starts").json()["starts"]
                  if st["path"] == "broken-too.ipynb" and st["state"] == "failed"]
        assert failed and fit["text"] == failed[-1]["error"], (fit, failed)
        assert fit["bodyFits"] and fit["reasonInside"], fit
        assert fit["unwrappedOverflows"], fit  # else this check would pass without the rule
        error.locator("button.jp-mod-accept").click()
        error.wait_for(state="detached", timeout=30_000)

        # no pai-magic kernelspec left: the page drops its long poll, so a later start (a restart
        # of the running kernel) reaches it no more
        for name in ("pai-test", "pai-nokernel"):
            shutil.rmtree(lab.root / "jupyter-data" / "kernels" / name)
        page.evaluate("() => window.jupyterapp.serviceManager.kernelspecs.refreshSpecs()")
        dropped = page.evaluate("() => Date.now()")
        kid = lab.get("api/kernels").json()[0]["id"]
        assert lab.post(f"api/kernels/{kid}/restart", timeout=300).status_code == 200
        assert lab.get("pai-magic/api/kernel-starts").json()["starts"][-1]["restart"]  # a change it would hear
        page.wait_for_timeout(2_000)  # a loop still running would have been answered by now
        polls = page.evaluate("window.__paiPolls")
        assert polls and not [p for p in polls if p["sent"] > dropped], polls
        assert not [p for p in polls if p["how"] == "answered" and p["ended"] > dropped], polls
