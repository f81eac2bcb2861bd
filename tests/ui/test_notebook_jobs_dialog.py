"""JupyterLab's "Create Notebook Job" dialog in Chromium with pai_magic's scheduler enabled by its
one config line: the dialog offers the OpenPAI environments and compute types (CPU, 1 GPU, ...)."""
from __future__ import annotations

import json
import os

import pytest

from tests.fixtures.services import need, need_binary
from tests.notebook.conftest import need_scheduler
from tests.server.jupyter_process import JupyterProcess

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def lab(tmp_path, local_backend, monkeypatch):
    need_scheduler()
    from pai_magic.core.profiles import Profile, save_profile

    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(tmp_path / "pai-config"))
    save_profile(Profile(name="local", url=local_backend.url, user=local_backend.user, token=local_backend.token))
    proc = JupyterProcess(tmp_path / "lab", tmp_path / "pai-config", lab=True,
                          extra_config={"SchedulerApp": {"scheduler_class": "pai_magic.scheduler.PaiScheduler"},
                                        "PaiScheduler": {"images": ["python:3.11"]}})
    notebooks = tmp_path / "lab" / "notebooks"
    notebooks.mkdir(parents=True)
    (notebooks / "train.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "1"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    proc.start()
    yield proc
    proc.stop()


def test_create_notebook_job_dialog_offers_openpai_compute_types(tmp_path, lab):
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
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{lab.url}lab?token={lab.token}")
            item = page.locator('.jp-DirListing-item[title*="train.ipynb"]')
            item.wait_for(state="visible", timeout=90_000)
            item.click(button="right")
            page.locator('.lm-Menu-item:has-text("Create Job")').click()  # jupyter-scheduler's entry
            page.wait_for_function("() => document.body.innerText.includes('Compute type')")
            form = page.locator("form.jp-create-job-form")
            form.wait_for(state="visible")
            # one environment (the image) is preselected, so the dialog shows no environment menu
            compute = form.locator("#jp-create-job-computeType")  # a MUI select: a button and a listbox
            assert compute.inner_text().strip() == "CPU"
            compute.click()
            page.locator("[role='listbox'] [role='option']").first.wait_for(state="visible")
            options = page.locator("[role='listbox'] [role='option']").all_inner_texts()
            assert [o.strip() for o in options][:3] == ["CPU", "1 GPU", "2 GPUs"], options
        finally:
            try:
                page.screenshot(path=str(tmp_path / "last.png"))
            except Exception:  # noqa: BLE001 - only a debugging aid
                pass
            context.close()
