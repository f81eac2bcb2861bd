"""The ipywidgets panel in JupyterLab in a real browser (Debian's Chromium via Playwright): a
notebook cell shows ``PaiPanel()`` against the embedded backend; the job rows, the page
counter and the kind labels render, and no input of any tab sticks out of the panel on the
right (they used to be clipped). With ``PAI_MAGIC_SCREENSHOTS=DIR`` the panel's picture is
saved there as panel.png (the README's)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.server.jupyter_process import REPO, JupyterProcess
from tests.fixtures.browser import chromium_page

LABEXT = REPO / "pai_magic" / "labextension"

NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
               "source": "from pai_magic.widgets import PaiPanel\npanel = PaiPanel(refresh_interval=2)\npanel"}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture
def lab(tmp_path, local_backend, monkeypatch):
    proc = JupyterProcess(tmp_path / "lab", tmp_path / "pai-config", lab=True,
                          labextension_dir=LABEXT if (LABEXT / "package.json").exists() else None,
                          extra_config={"LabApp": {"expose_app_in_browser": True}})
    # the kernel reads this profile: log in and submit a few jobs as another face would
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(proc.pai_config_dir))
    from pai_magic.core.auth import login_with_password
    from pai_magic.core.client import PaiClient
    from pai_magic.core.jobs import submit_job
    from pai_magic.core.kinds import KERNEL, NOTEBOOK as NB, kind_stem
    from pai_magic.core.protocol import JobSpec, build_protocol

    from pai_magic.core.ssh.keys import ensure_key

    profile = login_with_password(local_backend.url, local_backend.user, local_backend.password)
    with PaiClient(profile) as client:
        for stem in ("train_resnet50", kind_stem(KERNEL, "analysis"), kind_stem(NB, "sweep_lr"), "eval"):
            submit_job(client, build_protocol(JobSpec(name=stem, image="ubuntu:22.04", commands=["echo hi"])))
        # a running job with SSH, for the Copy buttons
        proc.ssh_job = submit_job(client, build_protocol(JobSpec(  # type: ignore[attr-defined]
            name="ssh_debug", image="ubuntu:22.04", commands=["sleep 300"],
            ssh_public_key=ensure_key(profile.ssh_key).public_line)))
    # no "get notified about Jupyter news?" toast over the panel
    settings = proc.root / "jupyter-config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    proc.start()
    (proc.root / "notebooks" / "panel.ipynb").write_text(json.dumps(NOTEBOOK))
    try:
        yield proc
    finally:
        proc.stop()
        with PaiClient(profile) as client:
            client.stop(proc.ssh_job)  # type: ignore[attr-defined]


@pytest.fixture
def page(tmp_path):
    with chromium_page(tmp_path / "chromium-profile", width=1100, height=1000) as pg:
        yield pg


def _overflowing_inputs(page) -> list[str]:
    """Visible inputs of the panel whose right edge passes the panel's (clipped)."""
    return page.evaluate("""() => {
        const panel = document.querySelector('.pai-panel');
        const area = panel.closest('.jp-OutputArea-output') || panel;
        const right = Math.min(panel.getBoundingClientRect().right, area.getBoundingClientRect().right);
        return [...panel.querySelectorAll('input, textarea, select, button')]
            .filter(el => el.offsetParent !== null && el.getBoundingClientRect().width > 0)
            .filter(el => el.getBoundingClientRect().right > right + 1)
            .map(el => (el.name || el.placeholder || el.textContent || el.tagName).slice(0, 40));
    }""")


_LOW_CONTRAST_JS = """() => {
    const lum = (rgb) => {
        const [r, g, b] = rgb.map(v => {
            v /= 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const parse = (text) => (text.match(/[0-9.]+/g) || []).map(Number);
    const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const bad = [];
    const panel = document.querySelector('.pai-panel');
    for (const el of panel.querySelectorAll('*')) {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || el.offsetParent === null) continue;
        // the text's own alpha and every opacity up to the panel fade it toward the background
        const c = parse(getComputedStyle(el).color);
        let alpha = c.length >= 4 ? c[3] : 1;
        for (let e = el; e && e !== panel.parentElement; e = e.parentElement) {
            alpha *= Number(getComputedStyle(e).opacity);
        }
        const bg = background(el);
        const fg = c.slice(0, 3).map((v, i) => bg[i] + (v - bg[i]) * alpha);
        const [a, b] = [lum(fg), lum(bg)];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 3) bad.push(el.textContent.trim().slice(0, 30) + ' ' + ratio.toFixed(2));
    }
    return bad;
}"""


def test_panel_renders_in_jupyterlab_without_clipped_inputs(lab, page):
    page.goto(f"{lab.url}lab/tree/panel.ipynb?token={lab.token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=90_000)
    # run the cell once its kernel is idle (a key press before that can be lost)
    page.wait_for_function("""() => {
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return k && k.status === 'idle';
    }""", timeout=90_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    panel = page.locator(".pai-panel")
    panel.wait_for(state="visible", timeout=90_000)
    rows = panel.locator(".pai-panel-job:visible")
    rows.first.wait_for(state="visible", timeout=60_000)
    assert rows.count() >= 4
    text = panel.inner_text()
    assert "kernel" in text and "notebook run" in text and " of " in text, text
    assert _overflowing_inputs(page) == []
    # opening a job shows its detail (tasks, log) in view, above the list
    panel.locator(".pai-panel-job-name", has_text="train_resnet50").first.click()
    detail = panel.locator(".pai-panel-detail")
    detail.locator("table").wait_for(state="visible", timeout=60_000)
    panel.locator(".pai-panel-log-text").wait_for(state="visible", timeout=60_000)
    assert "hi" in panel.locator(".pai-panel-log-text").inner_text()
    top = detail.evaluate("el => el.getBoundingClientRect().top")
    assert 0 <= top < page.evaluate("window.innerHeight"), top
    shots = os.environ.get("PAI_MAGIC_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    assert _overflowing_inputs(page) == []
    # "Copied" is not reset by the refreshes that follow (the notebook's panel refreshes every 2 s)
    panel.locator(".pai-panel-job-name", has_text="ssh_debug").first.click()
    copy = panel.locator(".pai-panel-ssh-line button").first
    copy.wait_for(state="visible", timeout=60_000)
    copy.click()
    assert copy.inner_text() == "Copied"
    page.wait_for_timeout(5000)  # nothing to wait FOR: the label must stay through 2 refreshes
    assert copy.inner_text() == "Copied"
    if shots:
        panel.screenshot(path=str(Path(shots) / "panel.png"))
    panel.locator(".pai-panel-job-name", has_text="train_resnet50").first.click()
    panel.locator(".pai-panel-detail-title", has_text="train_resnet50").wait_for(state="visible")

    # JupyterLab's dark theme: every text of the panel stays readable (contrast >= 3)
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=60_000)
    page.wait_for_timeout(500)  # the theme's stylesheet applies after the attribute
    assert page.evaluate(_LOW_CONTRAST_JS) == []
    if shots:
        panel.screenshot(path=str(Path(shots) / "panel-dark.png"))
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.wait_for_selector("body[data-jp-theme-light='true']", state="attached", timeout=60_000)
    assert page.evaluate(_LOW_CONTRAST_JS) == []
    for width in (1100, 640):  # a wide notebook, and a narrow one (a side-by-side view)
        page.set_viewport_size({"width": width, "height": 1000})
        for tab in ("Jobs", "Submit", "Images", "Storage", "Login"):
            panel.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text=tab).first.click()
            page.wait_for_function("() => document.querySelector('.pai-panel').getBoundingClientRect().width > 0")
            assert _overflowing_inputs(page) == [], (width, tab)
            assert page.evaluate(_LOW_CONTRAST_JS) == [], (width, tab)
            if shots and tab == "Submit" and width == 1100:
                panel.screenshot(path=str(Path(shots) / "panel-submit.png"))
