"""JupyterLab's "Create Notebook Job" dialog in Chromium with pai_magic's scheduler enabled by its
one config line: the dialog offers the OpenPAI environments and compute types (CPU, 1 GPU, ...)."""
from __future__ import annotations

import json

import pytest

from tests.fixtures.browser import chromium_page
from tests.server.jupyter_process import JupyterProcess


@pytest.fixture
def lab(tmp_path, local_backend, monkeypatch):
    pytest.importorskip("jupyter_scheduler")
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
    with chromium_page(tmp_path / "chromium-profile") as page:
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
