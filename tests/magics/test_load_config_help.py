"""Loading the extension, %config defaults (also from an IPython config), help texts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from tests.magics.conftest import Recorder

REPO = Path(__file__).resolve().parents[2]
LINE_MAGICS = ["pai_login", "pai_profile", "pai_local", "pai_jobs", "pai_job", "pai_stop", "pai_logs"]
HEAVY = ("requests", "urllib3", "yaml", "paramiko", "jsonschema", "ipywidgets", "tornado",
         "pai_magic.core.client", "pai_magic.core.protocol")


def test_load_ext_imports_nothing_heavy(tmp_path):
    """In a fresh process: the magics exist after %load_ext and no heavy module was imported."""
    code = (
        "import sys, json\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        f"before = {{m for m in {HEAVY!r} if m in sys.modules}}\n"
        "sh.run_line_magic('load_ext', 'pai_magic')\n"
        f"after = [m for m in {HEAVY!r} if m in sys.modules and m not in before]\n"
        "mm = sh.magics_manager.magics\n"
        "print(json.dumps({'heavy': after, 'line': sorted(k for k in mm['line'] if k.startswith('pai_')),"
        " 'cell': sorted(k for k in mm['cell'] if k.startswith('pai_'))}))\n")
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipy"), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["heavy"] == []
    assert set(LINE_MAGICS) <= set(data["line"])
    assert "pai_job" in data["cell"]


def test_help_lists_every_option_with_an_example(shell):
    from IPython.core.oinspect import getdoc

    from pai_magic.magics.args import magic_parser

    for name in LINE_MAGICS:
        magic = shell.shell.find_line_magic(name)
        doc = getdoc(magic)
        assert doc and f"%{name}" in doc, name
        assert "Example" in doc or "e.g." in doc, name
        for action in magic_parser(magic)._actions:  # every option, one line each, with its help
            assert all(opt in doc for opt in action.option_strings) and action.help in " ".join(doc.split()), \
                (name, action.dest)
    job_doc = getdoc(shell.shell.find_cell_magic("pai_job"))
    for option in ("--image", "--gpu", "--cpu", "--memory", "--vc", "--instances", "--storage", "--ssh",
                   "--keep-alive", "--retry", "--wait", "--no-wait", "--dry-run", "-o VAR", "Line form"):
        assert option in job_doc, option
    # `%pai_job?` as typed: IPython's inspector prints the same full help
    shell.stdout()
    shell.run("%pai_job?")
    shown = shell.stdout()
    assert "--dry-run" in shown and "Line form" in shown and "%%pai_job train --gpu 1" in shown


def _dry_run(shell, line="", body="python train.py"):
    view = shell.cell("pai_job", f"--dry-run {line}", body)
    return yaml.safe_load(view.text)


def test_config_defaults_apply_and_options_win(shell):
    shell.run("%config PaiMagics.image = 'pytorch/pytorch:2.1'")
    shell.run("%config PaiMagics.gpu = 2")
    shell.run("%config PaiMagics.cpu = 6")
    shell.run("%config PaiMagics.memory = '12G'")
    shell.run("%config PaiMagics.virtual_cluster = 'research'")
    job = _dry_run(shell)
    role = job["taskRoles"]["taskrole"]
    assert job["prerequisites"][0]["uri"] == "pytorch/pytorch:2.1"
    assert role["resourcePerInstance"] == {"cpu": 6, "memoryMB": 12288, "gpu": 2}
    assert job["defaults"]["virtualCluster"] == "research"
    job = _dry_run(shell, "--gpu 0 --memory 1G --vc other --image alpine:3")
    assert job["taskRoles"]["taskrole"]["resourcePerInstance"] == {"cpu": 6, "memoryMB": 1024, "gpu": 0}
    assert job["defaults"]["virtualCluster"] == "other"
    assert job["prerequisites"][0]["uri"] == "alpine:3"


def test_config_rejects_bad_values(shell):
    from traitlets import TraitError

    magics = shell.shell.magics_manager.registry["PaiMagics"]
    with pytest.raises(TraitError):
        magics.memory = "lots"
    with pytest.raises(TraitError):
        magics.poll_interval = 0
    with pytest.raises(TraitError):
        magics.display = "fancy"


def test_defaults_from_an_ipython_config(tmp_path):
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.HistoryManager.hist_file = ":memory:"
    config.PaiMagics.image = "from-config:1"
    config.PaiMagics.wait = True
    config.PaiMagics.poll_interval = 0.5
    sh = InteractiveShell.instance(config=config, ipython_dir=str(tmp_path / "ipy"))
    sh.display_pub = Recorder(shell=sh)
    try:
        sh.run_line_magic("load_ext", "pai_magic")
        magics = sh.magics_manager.registry["PaiMagics"]
        assert (magics.image, magics.wait, magics.poll_interval) == ("from-config:1", True, 0.5)
        result = sh.run_cell("%%pai_job --dry-run\necho hi", store_history=False)
        assert result.error_in_exec is None
        assert yaml.safe_load(result.result.text)["prerequisites"][0]["uri"] == "from-config:1"
    finally:
        sh.run_line_magic("unload_ext", "pai_magic")
        InteractiveShell.clear_instance()


def test_unload_removes_magics_and_configurables(shell):
    sh = shell.shell
    assert "pai_jobs" in sh.magics_manager.magics["line"]
    sh.run_line_magic("unload_ext", "pai_magic")
    assert "pai_jobs" not in sh.magics_manager.magics["line"]
    assert "pai_job" not in sh.magics_manager.magics["cell"]
    assert not [c for c in sh.configurables if type(c).__name__ == "PaiMagics"]
    sh.run_line_magic("load_ext", "pai_magic")  # and loads again cleanly
    assert "pai_jobs" in sh.magics_manager.magics["line"]
    assert len([c for c in sh.configurables if type(c).__name__ == "PaiMagics"]) == 1


def test_without_a_profile_every_magic_says_to_log_in(shell):
    for line in ("%pai_jobs", "%pai_job some_job", "%pai_stop some_job", "%pai_logs some_job",
                 "%%pai_job\necho hi"):
        with pytest.raises(UsageError, match="%pai_login"):
            shell.run(line)
    assert shell.run("1 + 1") == 2


def test_ssh_option_adds_the_plugin_with_the_users_public_key(shell, tmp_path, monkeypatch, secrets_to_hide):
    """--ssh takes the public key from pai_magic.core.ssh (generated here: the test HOME has no ~/.ssh)."""
    from pai_magic.core.paths import config_dir
    from pai_magic.core.protocol import job_has_ssh, ssh_user_keys

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    job = _dry_run(shell, "--ssh --keep-alive", "python serve.py")
    key_dir = config_dir() / "ssh"
    private = next(p for p in key_dir.iterdir() if not p.name.endswith(".pub") and p.is_file())
    secrets_to_hide.append(private.read_text().strip().splitlines()[1])  # a line of the private key
    public = next(key_dir.glob("*.pub")).read_text().strip()
    assert job_has_ssh(job) and ssh_user_keys(job) == [public]
    assert job["taskRoles"]["taskrole"]["commands"] == ["python serve.py", "sleep infinity"]
