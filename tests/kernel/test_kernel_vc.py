"""``pai-magic kernel install --vc NAME`` and ``%pai_kernel install --vc NAME``: the virtual
cluster is checked against the cluster (the embedded backend over real HTTP, which has the VC
``default``). Unknown: exit 2 / UsageError, one line naming the VCs there, nothing written.
A cluster that cannot be asked (down, not logged in, token refused): installed anyway, with one
warning line."""
from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

from pai_magic.cli import main as cli_main
from pai_magic.core.profiles import Profile, save_profile
from pai_magic.core.virtual_clusters import virtual_cluster_problem

DOWN = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


@pytest.fixture
def lab(local_backend, jupyter_data):
    save_profile(Profile(name="lab", url=local_backend.url, user=local_backend.user, token=local_backend.token))
    return local_backend


def _install(capsys, *extra: str) -> tuple[int, str, str]:
    code = cli_main(["kernel", "install", "pai-q", "--image", "python:3.11", "--gpu", "0", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _spec_vc(jupyter_data):
    spec = json.loads((jupyter_data / "kernels" / "pai-q" / "kernel.json").read_text())
    return spec["metadata"]["kernel_provisioner"]["config"]["virtual_cluster"]


def test_cli_known_vc_installs_quietly(lab, jupyter_data, capsys):
    code, out, err = _install(capsys, "--vc", "default")
    assert code == 0 and err == "" and "Installed kernel pai-q" in out, (out, err)
    assert _spec_vc(jupyter_data) == "default"


def test_cli_unknown_vc_exits_2_naming_the_vcs_there(lab, jupyter_data, capsys):
    code, out, err = _install(capsys, "--vc", "nope")
    assert code == 2 and not out, (code, out, err)
    assert err.count("\n") == 1 and "'nope' does not exist on " + lab.url in err and "use there: default" in err, err
    assert not (jupyter_data / "kernels" / "pai-q").exists()
    code, _, err = _install(capsys, "--vc", "x y")  # not even a name: refused before asking the cluster
    assert code == 2 and err.count("\n") == 1 and "is not a name" in err, err


@pytest.mark.parametrize("case", ["down", "no token", "token refused"])
def test_cli_vc_that_cannot_be_checked_installs_with_one_warning(local_backend, jupyter_data, capsys, case):
    url, token = {"down": (DOWN, "t-0000000000"), "no token": (local_backend.url, ""),
                  "token refused": (local_backend.url, "not-a-token-of-this-cluster")}[case]
    save_profile(Profile(name="lab", url=url, user=local_backend.user, token=token))
    code, out, err = _install(capsys, "--vc", "q1", "--json")
    assert code == 0, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pai-magic: warning: Virtual cluster 'q1' was not checked "
                                                   f"against {url}"), err
    assert json.loads(out)["warnings"] == [lines[0].split("warning: ", 1)[1]]
    assert _spec_vc(jupyter_data) == "q1"


def test_magic_checks_the_vc_too(ipy, lab, jupyter_data):
    with pytest.raises(UsageError) as info:
        ipy.run_line_magic("pai_kernel", "install pai-q --image python:3.11 --gpu 0 --vc nope")
    assert "\n" not in str(info.value) and "use there: default" in str(info.value)
    view = ipy.run_line_magic("pai_kernel", "install pai-q --image python:3.11 --gpu 0 --vc default")
    assert view.text.startswith("Installed kernel pai-q") and "Warning" not in view.text
    save_profile(Profile(name="lab", url=DOWN, user="alice", token="t-0000000000"))
    view = ipy.run_line_magic("pai_kernel", "install pai-q --image python:3.11 --gpu 0 --vc q1")
    assert view.text.startswith("Replaced kernel pai-q") and _spec_vc(jupyter_data) == "q1"
    assert view.text.count("Warning: Virtual cluster 'q1' was not checked against " + DOWN) == 1, view.text
    assert "color:#9a6700" in view.html


def test_permission_rule_names_only_the_usable_vcs():
    """The rule itself, on the answers an OpenPAI cluster gives (the embedded backend has one VC
    and gives everyone access to it, so a VC that exists but is closed cannot be made there)."""
    vcs = {"default": {}, "gpu-a": {}, "gpu-b": {}}
    alice = {"username": "alice", "admin": False, "virtualCluster": ["default", "gpu-a"]}
    assert virtual_cluster_problem("gpu-a", vcs, alice, "http://c") is None
    closed = virtual_cluster_problem("gpu-b", vcs, alice, "http://c")
    assert closed and "'gpu-b' on http://c is not open to alice" in closed and "use there: default, gpu-a." in closed
    assert virtual_cluster_problem("gpu-b", vcs, {"username": "root", "admin": True}, "http://c") is None
    assert virtual_cluster_problem("gpu-b", vcs, None, "http://c") is None  # user unreadable: existence only
    missing = virtual_cluster_problem("nope", vcs, alice, "http://c")
    assert missing and "does not exist on http://c; the ones you may use there: default, gpu-a." in missing
