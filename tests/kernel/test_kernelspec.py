"""Kernelspec management from the CLI and the magic (one rule set in pai_magic.kernel.spec):
the display name, a profile instead of a token, JUPYTER_DATA_DIR respected, one-line errors,
and kernel jobs labelled in the job lists."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from IPython.core.error import UsageError

from pai_magic.core.kinds import KERNEL, kind_stem
from pai_magic.core.profiles import Profile, save_profile
from pai_magic.core.protocol.build import unique_job_name
from pai_magic.magics.render import job_table


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pai_magic", *argv], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))


@pytest.fixture
def profile(jupyter_data):
    return save_profile(Profile(name="lab", url="http://127.0.0.1:9", user="alice", token="s3cret-token-value"))


def test_cli_install_list_remove(profile, jupyter_data):
    res = cli("kernel", "install", "pai-gpu", "--image", "pytorch/pytorch:latest", "--gpu", "1", "--memory", "8G",
              "--storage", "default:/mnt/data", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["display_name"] == "Python 3 on OpenPAI (lab, 1 GPU)"
    path = jupyter_data / "kernels" / "pai-gpu" / "kernel.json"
    text = path.read_text()
    spec = json.loads(text)
    assert "s3cret-token-value" not in text and "token" not in text
    prov = spec["metadata"]["kernel_provisioner"]
    assert prov["provisioner_name"] == "pai-magic"
    assert prov["config"] == {"image": "pytorch/pytorch:latest", "profile": "lab", "gpu": 1, "cpu": 4,
                              "memory_mb": 8192, "virtual_cluster": "default", "storages": ["default:/mnt/data"],
                              "python": "python3", "lease_seconds": 180.0, "start_timeout": 900.0}
    assert spec["interrupt_mode"] == "message"
    # jupyter_client finds the provisioner through the installed entry point
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    ks = KernelSpecManager().get_kernel_spec("pai-gpu")
    assert KernelProvisionerFactory.instance().is_provisioner_available(ks)

    listed = cli("kernel", "list")
    assert listed.returncode == 0 and "pai-gpu" in listed.stdout and "Python 3 on OpenPAI (lab, 1 GPU)" in listed.stdout
    assert cli("kernel", "remove", "pai-gpu").returncode == 0
    assert not path.exists()
    assert "No OpenPAI kernels installed" in cli("kernel", "list").stdout


def test_the_start_timeout_reaches_the_provisioner_jupyter_client_builds(profile, jupyter_data):
    """`--start-timeout` is written in the kernelspec and is what the provisioner waits: on a full
    cluster a start gives up (and stops its job) after it, not after the default 15 minutes."""
    res = cli("kernel", "install", "pai-quick", "--image", "python:3.11", "--gpu", "0", "--start-timeout", "120")
    assert res.returncode == 0, res.stderr
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    ks = KernelSpecManager().get_kernel_spec("pai-quick")
    assert ks.metadata["kernel_provisioner"]["config"]["start_timeout"] == 120.0
    provisioner = KernelProvisionerFactory.instance().create_provisioner_instance(
        "k-quick", ks, KernelManager(kernel_name="pai-quick"))
    assert provisioner.start_timeout == 120.0 and provisioner._kernel_job().settings.start_timeout == 120.0


def test_a_second_kernel_that_would_look_the_same_in_the_launcher_names_itself(profile, jupyter_data):
    for name, image in (("pai-cpu", "python:3.11"), ("pai-cpu-big", "pytorch/pytorch:latest")):
        res = cli("kernel", "install", name, "--image", image, "--gpu", "0", "--json")
        assert res.returncode == 0, res.stderr
    names = [json.loads((jupyter_data / "kernels" / k / "kernel.json").read_text())["display_name"]
             for k in ("pai-cpu", "pai-cpu-big")]
    assert names == ["Python 3 on OpenPAI (lab, no GPU)", "Python 3 on OpenPAI (lab, no GPU, pai-cpu-big)"]
    # installing it again over itself keeps the plain name when it is alone
    assert cli("kernel", "remove", "pai-cpu").returncode == 0
    assert cli("kernel", "install", "pai-cpu-big", "--image", "python:3.11", "--gpu", "0").returncode == 0
    spec = json.loads((jupyter_data / "kernels" / "pai-cpu-big" / "kernel.json").read_text())
    assert spec["display_name"] == "Python 3 on OpenPAI (lab, no GPU)"


@pytest.mark.parametrize("argv, words", [
    (["kernel", "install", "bad name", "--image", "x"], "Kernel name"),
    (["kernel", "install", "k", "--image", "x", "--gpu", "-1"], "GPUs per instance must be"),
    (["kernel", "install", "k", "--image", "x", "--python", "python3; rm -rf /"], "--python"),
    (["kernel", "install", "k", "--image", "x", "--start-timeout", "0"], "--start-timeout must be more than 0"),
    (["kernel", "install", "k", "--image", "x", "--profile", "nope"], "nope"),
    (["kernel", "remove", "not-there"], "No OpenPAI kernel named"),
])
def test_cli_errors_are_one_line(profile, argv, words):
    res = cli(*argv)
    assert res.returncode == 2 and words in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_magic_install_list_remove(ipy, profile, jupyter_data):
    view = ipy.run_line_magic("pai_kernel", "install pai-cpu --image python:3.11 --gpu 0 --cpu 2 --memory 4G")
    assert "Python 3 on OpenPAI (lab, no GPU)" in view.text
    assert (jupyter_data / "kernels" / "pai-cpu" / "kernel.json").exists()
    table = ipy.run_line_magic("pai_kernel", "list")
    assert [r[0] for r in table.rows] == ["pai-cpu"]
    with pytest.raises(UsageError, match="give --image"):
        ipy.run_line_magic("pai_kernel", "install other")
    ipy.run_line_magic("pai_kernel", "remove pai-cpu")
    assert ipy.run_line_magic("pai_kernel", "list").rows == []


def test_kernel_jobs_are_labelled():
    from pai_magic.core.models import JobSummary

    name = unique_job_name(kind_stem(KERNEL, "pai-gpu"))
    rows = [JobSummary(name=name, user="alice", state="RUNNING"), JobSummary(name="train_1", user="alice",
                                                                             state="RUNNING")]
    table = job_table(rows)
    assert table.rows[0][0] == f"{name} (kernel)" and table.rows[1][0] == "train_1"
