"""``pai-magic doctor`` / ``%pai_doctor`` on the real embedded backend: each check is made to
pass and to fail with the real thing (a cluster that answers or a closed port, a token the
backend issued or one it refuses, a key in the OpenPAI profile or not, the real sshfs/FUSE
or a PATH without them, the real docker-registry or nothing listening, kernelspec files)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pai_magic.cli import main
from pai_magic.core import doctor
from pai_magic.core.client import PaiClient
from pai_magic.core.profiles import Profile, load_profile, save_profile
from pai_magic.core.ssh.keys import ensure_key
from pai_magic.core.ssh.tasks import add_key_to_profile
from tests.fixtures.services import free_port, need


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME without keys, so the SSH key check sees only what the test makes."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cluster(local_backend, monkeypatch, home):
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    return local_backend


def _by_name(checks):
    return {c.name: c for c in checks}


# -- profile, cluster, token -----------------------------------------------------------------
def test_profile_and_cluster_pass_on_the_embedded_backend(cluster):
    profile, found = doctor.check_profile()
    assert found.ok and "PAI_URL" in found.message and profile.url == cluster.url
    with PaiClient(profile) as client:
        check = doctor.check_cluster(client)
    assert check.ok and "OpenPAI v1." in check.message and cluster.url in check.message


def test_no_profile_fails_and_skips_the_cluster_checks(home):
    checks = _by_name(doctor.run_doctor(kernel_dirs=[]))
    assert not checks["profile"].ok and "pai-magic login URL" in checks["profile"].message
    assert checks["cluster"].skipped and checks["token"].skipped


def test_a_cluster_that_does_not_answer_fails_and_skips_the_token(monkeypatch, home):
    monkeypatch.setenv("PAI_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("PAI_TOKEN", "x.y.z")
    checks = _by_name(doctor.run_doctor(kernel_dirs=[]))
    assert checks["profile"].ok
    assert not checks["cluster"].ok and "does not answer" in checks["cluster"].message
    assert checks["token"].skipped


def test_token_valid_then_refused_then_expiring(cluster, monkeypatch):
    with PaiClient(load_profile()) as client:
        ok = doctor.check_token(client)
        assert ok.ok and cluster.user in ok.message and "days more" in ok.message  # 7-day user tokens
        soon = doctor.check_token(client, warn_days=8)
        assert not soon.ok and "expires in" in soon.message and "pai-magic login" in soon.message
    monkeypatch.setenv("PAI_TOKEN", cluster.token[:-4] + "AAAA")  # signature no longer matches
    with PaiClient(load_profile()) as client:
        refused = doctor.check_token(client)
    assert not refused.ok and "refused the token" in refused.message and "log in again" in refused.message


# -- SSH key ---------------------------------------------------------------------------------
def test_ssh_key_missing_then_not_in_the_profile_then_in_it(cluster):
    profile = load_profile()
    with PaiClient(profile) as client:
        missing = doctor.check_ssh_key(profile, client)
        assert not missing.ok and "pai-magic ssh-key --add" in missing.message
        key = ensure_key()  # generated: exists now, but the OpenPAI profile does not have it
        absent = doctor.check_ssh_key(profile, client)
        assert not absent.ok and "not in your OpenPAI profile" in absent.message and key.fingerprint in absent.message
        add_key_to_profile(client, key)
        present = doctor.check_ssh_key(profile, client)
    assert present.ok and "is in your OpenPAI profile" in present.message


# -- mounts ----------------------------------------------------------------------------------
def test_mounts_pass_with_this_machines_tools():
    kernel_ok, _ = doctor_kernel()
    rootless = shutil.which("sshfs") is not None and os.path.exists("/dev/fuse")
    need(kernel_ok or rootless, "neither kernel NFS nor sshfs + /dev/fuse here (apt-get install nfs-common sshfs fuse3)")
    check = doctor.check_mounts()
    assert check.ok and "pai-magic mount --storage NAME MOUNTPOINT" in check.message


def test_mounts_fail_without_the_nfs_client_and_sshfs(monkeypatch, tmp_path):
    from pai_magic.core.storage import nfs

    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sudo", "true"):  # what the sudo probe needs; no mount.nfs, no sshfs, no fusermount
        if shutil.which(tool):
            (bare / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.setattr(nfs, "SBIN_DIRS", ())
    check = doctor.check_mounts()
    assert not check.ok and "mount.nfs is not installed" in check.message
    assert "nfs-common" in check.message and "sshfs" in check.message


def test_mounts_as_a_user_without_passwordless_sudo_name_the_sudo_fix():
    """The kernel path needs root or `sudo -n`: a forked child drops to nobody and asks the real sudo."""
    need(os.geteuid() == 0, "needs root to drop to an unprivileged user")
    need(shutil.which("sudo") is not None, "sudo not installed (apt-get install sudo)")
    from pai_magic.core.storage.nfs import find_tool

    need(find_tool("mount.nfs") is not None, "mount.nfs not installed (apt-get install nfs-common)")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: unprivileged, one check, its answer down the pipe
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            check = doctor.check_mounts()
            os.write(write, json.dumps([check.ok, check.message]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    ok, message = json.loads(answer)
    assert "sudo needs a password" in message and "password-less sudo" in message
    if not ok:  # no rootless path on this machine either: the line says what to install
        assert "install sshfs" in message


def doctor_kernel():
    from pai_magic.core.storage.nfs import kernel_nfs_possible

    return kernel_nfs_possible()


# -- registry --------------------------------------------------------------------------------
def test_registry_passes_on_the_real_registry(registry_session, tmp_path, home):
    profile = Profile(name="r", url="http://127.0.0.1:1", registry_url=registry_session.url)
    reachable, insecure = doctor.check_registry(profile, daemon_json=tmp_path / "daemon.json")
    assert reachable.ok and registry_session.url in reachable.message
    assert insecure.ok and "loopback" in insecure.message


def test_registry_fails_when_nothing_listens_and_is_skipped_when_not_configured(home):
    down = doctor.check_registry(None, registry=f"http://127.0.0.1:{free_port()}")
    assert not down[0].ok
    skipped = doctor.check_registry(Profile(name="n", url="http://127.0.0.1:1"))
    assert len(skipped) == 1 and skipped[0].skipped and "--registry" in skipped[0].message


# -- kernelspecs -----------------------------------------------------------------------------
def _kernelspec(root: Path, name: str, provisioner: dict | None) -> None:
    spec = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": name, "language": "python"}
    if provisioner is not None:
        spec["metadata"] = {"kernel_provisioner": provisioner}
    (root / name).mkdir(parents=True)
    (root / name / "kernel.json").write_text(json.dumps(spec))


def test_kernelspecs_pass_fail_and_skip(tmp_path, home):
    save_profile(Profile(name="gpu-lab", url="http://127.0.0.1:1"))
    kernels = tmp_path / "kernels"
    _kernelspec(kernels, "python3", None)  # an ordinary kernelspec is not ours
    assert doctor.check_kernelspecs([kernels])[0].skipped
    _kernelspec(kernels, "pai-good", {"provisioner_name": "pai-magic", "config": {"profile": "gpu-lab"}})
    _kernelspec(kernels, "pai-gone", {"provisioner_name": "pai-magic", "config": {"profile": "deleted"}})
    _kernelspec(kernels, "pai-none", {"provisioner_name": "pai-magic", "config": {}})
    checks = _by_name(doctor.check_kernelspecs([kernels]))
    assert checks["kernelspec pai-good"].ok and "gpu-lab" in checks["kernelspec pai-good"].message
    assert not checks["kernelspec pai-gone"].ok and "pai-magic login URL --profile deleted" in \
        checks["kernelspec pai-gone"].message
    assert not checks["kernelspec pai-none"].ok and "names no profile" in checks["kernelspec pai-none"].message
    assert "python3" not in " ".join(checks)


def test_kernelspecs_are_read_from_jupyters_kernel_path(tmp_path, monkeypatch, home):
    data = tmp_path / "jupyter-data"
    _kernelspec(data / "kernels", "pai-remote", {"provisioner_name": "pai-magic", "config": {"profile": "x"}})
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    checks = _by_name(doctor.check_kernelspecs())
    assert "kernelspec pai-remote" in checks and not checks["kernelspec pai-remote"].ok


# -- the faces -------------------------------------------------------------------------------
def test_cli_doctor_json_and_exit_codes(cluster, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "no-kernels"))
    code = main(["doctor", "--json", "--daemon-json", str(tmp_path / "daemon.json")])
    checks = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in checks]
    assert names[:5] == ["profile", "cluster", "token", "ssh key", "mounts"]
    failing = [c["name"] for c in checks if not c["ok"]]
    assert code == (1 if failing else 0)
    assert "ssh key" in failing  # this HOME has no key yet: the line says how to add one
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("ok   profile:") and "FIX  ssh key:" in out


def test_magic_doctor_speaks_the_notebooks_words(cluster, ipy, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "no-kernels"))
    view = ipy.run_line_magic("pai_doctor", "")
    assert "ok   cluster:" in view.text and "%pai_ssh_key --add" in view.text
    assert "pai-magic ssh-key" not in view.text and "<table>" in view.html


def test_an_expiring_token_still_lets_the_key_check_ask_the_cluster(cluster):
    with PaiClient(load_profile()) as client:
        add_key_to_profile(client, ensure_key())
    checks = _by_name(doctor.run_doctor(kernel_dirs=[], token_warn_days=8))
    assert not checks["token"].ok and "expires in" in checks["token"].message
    assert checks["ssh key"].ok and not checks["ssh key"].skipped
