"""Every key the CLI prints with ``--json`` is snake_case, so ``jq`` scripts never have to guess
(``.items[].full_name``, not ``fullName`` in one verb and ``exit_code`` in the next).

Each verb that can run here runs for real: the job, storage and SSH verbs against the embedded
backend, the image verbs against a real docker-registry, ``local`` as its own process. Data that
is not ours keeps its owner's spelling and is not checked: a job protocol (``submit --dry-run``
prints it exactly as OpenPAI defines it: protocolVersion, taskRoles), a task's port labels (named
in the protocol) and a storage's own ``data`` (named by the cluster).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pai_magic.cli import main
from tests.fixtures.registry import make_docker_save, make_layer

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
REPO = Path(__file__).resolve().parents[2]


def bad_keys(value: Any, opaque: frozenset[str] = frozenset(), where: str = "$") -> list[str]:
    """Paths of every key that is not snake_case; keys named in ``opaque`` are checked, their values not."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}"
            if not isinstance(key, str) or not SNAKE.match(key):
                found.append(path)
            if key not in opaque:
                found += bad_keys(item, opaque, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += bad_keys(item, opaque, f"{where}[{i}]")
    return found


def test_the_key_check_catches_camel_case_and_skips_opaque_values():
    assert bad_keys({"a": [{"fullName": 1}], "ok_key": {"x2": 1}}) == ["$.a[0].fullName"]
    assert bad_keys({"protocol": {"taskRoles": {}}}, frozenset({"protocol"})) == []
    assert bad_keys({"Name": 1, "_x": 2, "mount-command": 3}) == ["$.Name", "$._x", "$.mount-command"]


class JsonCli:
    """Runs a verb in-process with ``--json``; checks exit code and every key; returns the data."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.verbs: set[str] = set()

    def __call__(self, *argv: str, opaque: tuple[str, ...] = (), code: int = 0) -> Any:
        self.capsys.readouterr()
        got = main(["--json", *argv])
        out = self.capsys.readouterr()
        assert got == code, (argv, out.err)
        lines = [line for line in out.out.splitlines() if line.strip()]
        assert lines, (argv, out.err)
        docs = [json.loads(line) for line in lines]  # `logs --follow` prints one object a line
        for doc in docs:
            assert bad_keys(doc, frozenset(opaque)) == [], (argv, doc)
        self.verbs.add(argv[0])
        return docs[0] if len(docs) == 1 else docs


@pytest.fixture
def run(capsys, monkeypatch, tmp_path):
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # pai_magic's own SSH key, not the developer's
    return JsonCli(capsys)


def _wait_running(run: JsonCli, name: str) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        detail = run("job", name, opaque=("ports",))
        if detail["state"] == "RUNNING" and detail["tasks"] and all(t["state"] == "RUNNING" for t in detail["tasks"]):
            return detail
        time.sleep(0.3)
    pytest.fail(f"job {name} did not reach RUNNING")


def test_every_cluster_verb_prints_snake_case_keys(local_backend, run, monkeypatch, tmp_path):
    monkeypatch.setenv("PW", local_backend.password)
    login = run("login", local_backend.url, "--user", local_backend.user, "--password-env", "PW", "--profile", "lab")
    assert login["profile"]["name"] == "lab"
    who = run("whoami")
    assert "expires_at" in who and who["cluster"]["authn_method"] == "basic"
    run("profiles")
    run("profiles", "show", "lab")
    run("profiles", "use", "lab")

    dry = run("submit", "--image", "ubuntu:22.04", "--dry-run", "--", "echo", "hi", opaque=("protocol",))
    assert "protocolVersion" in dry["protocol"] and "taskRoles" in dry["protocol"]  # OpenPAI's own keys, as is

    done = run("submit", "--image", "ubuntu:22.04", "--name", "keys-done", "--wait", "--", "echo", "hi",
               opaque=("ports",))
    assert done["state"] == "SUCCEEDED" and done["full_name"] == f"{local_backend.user}~{done['name']}"
    logs = run("logs", done["name"])
    assert logs["text"] == "hi\n"
    run("logs", done["name"], "--follow", "--timeout", "30")

    key = run("ssh-key")
    assert key["private_path"] and key["public_key"].startswith("ssh-")
    run("ssh-key", "--add")
    live = run("submit", "--image", "ubuntu:22.04", "--name", "keys-live", "--ssh", "--keep-alive",
               "--", "echo", "up")
    assert live["full_name"] == f"{local_backend.user}~{live['name']}" and live["submitted"] is True
    name = live["name"]
    try:
        detail = _wait_running(run, name)
        assert "ssh" in detail["tasks"][0]["ports"]
        page = run("jobs", "--all", opaque=("ports",))
        assert any(item["full_name"] == detail["full_name"] for item in page["items"])
        info = run("ssh-info", name)
        assert info["has_ssh"] is True
        run("ssh", name, "--print-command", "--", "true")
        src = tmp_path / "payload.txt"
        src.write_text("payload\n")
        run("upload", str(src), f"{name}:payload.txt")
        run("download", f"{name}:payload.txt", str(tmp_path / "back.txt"))
    finally:
        stopped = run("stop", name)
    assert stopped == {"name": f"{local_backend.user}~{name}", "stop_requested": True}
    run("stop", name, "--wait", opaque=("ports",))

    storages = run("storage", opaque=("data",))
    assert storages and {"read_only", "mount_command", "mounted_at", "volume_name"} <= set(storages[0])
    run("mount")
    mounted = run("mount", "10.0.0.9:/data", str(tmp_path / "mp"), "--dry-run")
    assert mounted["dry_run"] is True
    unmounted = run("umount", str(tmp_path / "mp"), "--dry-run")
    assert unmounted["dry_run"] is True
    out = run("logout")
    assert out["cluster"] == "revoked" and out["forgotten"] is True
    run("profiles", "remove", "lab")
    assert run.verbs == {"login", "whoami", "profiles", "submit", "logs", "ssh-key", "job", "jobs", "ssh-info",
                         "ssh", "upload", "download", "stop", "storage", "mount", "umount", "logout"}


def test_image_verbs_print_snake_case_keys(registry, run, monkeypatch, tmp_path):
    monkeypatch.setenv("PAI_REGISTRY", registry.url)
    archive = tmp_path / "model.tar"
    make_docker_save(archive, [make_layer({"w": b"weights" * 100})])
    pushed = run("push", str(archive), "team/keys:v1")
    assert pushed["uploaded_blobs"] >= 1
    run("image-tag", "team/keys:v1", "team/keys:v2")
    run("images")
    run("images", "--tags")
    details = run("images", "--details")
    assert details and "media_type" in details[0]
    run("image-rm", "team/keys:v1", "--force")
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"insecure-registries": [registry.host]}))
    run("doctor", "--daemon-json", str(daemon), code=1)  # the whole setup: no SSH key here, so exit 1
    assert run.verbs == {"push", "image-tag", "images", "image-rm", "doctor"}


def test_local_verb_prints_snake_case_keys(tmp_path):
    """``pai-magic local --json --write-profile`` announces itself on stdout as one JSON line."""
    env = dict(os.environ, PW="local-json-keys-pw",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.Popen([sys.executable, "-m", "pai_magic", "local", "--json", "--write-profile", "--user",
                             "keys", "--password-env", "PW", "--data-dir", str(tmp_path / "local")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
                            start_new_session=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
    assert line, err
    data = json.loads(line)
    assert bad_keys(data) == [] and data["data_dir"] == str(tmp_path / "local")
    assert data["profile"]["user"] == "keys" and data["profile"]["token"] == "******"


def test_storage_check_and_usage_parts_are_snake_case_too(tmp_path):
    """What ``storage --check --usage --json`` adds (no share is mounted on this machine's
    embedded backend to measure, so the view is built here from a real measurement)."""
    from pai_magic.core.storage.check import CheckResult
    from pai_magic.core.storage.info import StorageInfo
    from pai_magic.core.storage.manage import StorageView
    from pai_magic.core.storage.usage import share_usage

    info = StorageInfo.from_api({"name": "s", "type": "nfs", "readOnly": True, "volumeName": "v",
                                 "data": {"server": "10.0.0.1", "path": "/data", "someSetting": "kept"}})
    view = StorageView(info, check=CheckResult("10.0.0.1", "/data", True, False, "tcp", "port answers"),
                       mounted_at=[str(tmp_path)], usage=[share_usage(tmp_path)])
    data = view.as_dict()
    assert bad_keys(data, frozenset({"data"})) == [], data
    assert data["read_only"] is True and data["data"]["someSetting"] == "kept"  # the cluster's own keys, as is
    assert 0 <= data["usage"][0]["fraction_used"] <= 1
