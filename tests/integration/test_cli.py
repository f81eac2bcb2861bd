"""The ``pai-magic`` CLI as a subprocess against the embedded backend: exit codes, --json,
one stderr line for every error, never a traceback, never a secret, profile file 0600."""
from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = Path("/work/shared/reference/job-examples")


class Cli:
    """Runs ``python -m pai_magic`` with this test's private config dir; records every output."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 120,
                 extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        proc = subprocess.run([sys.executable, "-m", "pai_magic", *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=str(REPO), timeout=timeout)
        self.outputs += [proc.stdout, proc.stderr]
        assert "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 2:
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("pai-magic"), proc.stderr
        return proc

    def json(self, *args: str, **kw) -> dict:
        proc = self("--json", *args, **kw)  # before the verb: after `--` it would be command text
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def assert_no_secret(self, *secrets: str) -> None:
        for text in self.outputs:
            for secret in secrets:
                assert secret not in text


@pytest.fixture
def cli():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PAI_MAGIC_DEBUG", None)
    return Cli(env)


@pytest.fixture
def logged_in(cli, local_backend):
    """A saved, active profile (the CLI's own login is tested above; this saves a subprocess)."""
    from pai_magic.core.auth import login_with_password

    login_with_password(local_backend.url, local_backend.user, local_backend.password)
    return cli


def profile_file() -> Path:
    return Path(os.environ["PAI_MAGIC_CONFIG_DIR"]) / "profiles.yaml"


def test_login_writes_0600_profile_and_no_secret_anywhere(cli, local_backend):
    proc = cli("login", local_backend.url, "--user", local_backend.user, "--password-env", "PW", "--profile", "lab",
               "--json", extra_env={"PW": local_backend.password})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["profile"]["name"] == "lab" and data["profile"]["token"] == "******"
    path = profile_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = yaml.safe_load(path.read_text())["profiles"]["lab"]["token"]
    assert local_backend.password not in path.read_text()
    who = cli.json("whoami")
    assert who["user"] == local_backend.user and who["application"] is False
    listing = cli("profiles")
    assert "lab" in listing.stdout and listing.returncode == 0
    cli("profiles", "show", "lab")
    cli.assert_no_secret(token, local_backend.password)


def test_login_errors_are_one_line(cli, local_backend):
    assert cli("login", local_backend.url, "--user", local_backend.user, "--password-stdin",
               stdin="wrong-password\n").returncode == 2
    assert cli("login", local_backend.url, "--user", local_backend.user).returncode == 2  # never prompts
    assert "nothing is ever prompted" in cli.outputs[-1]
    assert cli("login", "http://127.0.0.1:9", "--user", "x", "--password-stdin", stdin="pw\n").returncode == 2
    assert "Cannot reach" in cli.outputs[-1]
    assert cli("jobs").returncode == 2  # no profile yet
    assert "pai-magic login URL" in cli.outputs[-1]
    cli.assert_no_secret("wrong-password")


def test_token_login_from_stdin(cli, local_backend):
    proc = cli("login", local_backend.url, "--token-stdin", "--json", stdin=local_backend.token + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["profile"]["user"] == local_backend.user
    cli.assert_no_secret(local_backend.token)


def test_a_refused_pasted_token_says_to_copy_it_again_not_to_log_in(cli, local_backend):
    bad = local_backend.token[:-4] + ("AAAA" if not local_backend.token.endswith("AAAA") else "BBBB")
    proc = cli("login", local_backend.url, "--token-stdin", stdin=bad + "\n")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "refused that token" in proc.stderr and "copy it again" in proc.stderr
    cli.assert_no_secret(bad)


def test_submit_built_job_wait_logs_and_json(logged_in, local_backend):
    cli = logged_in
    sub = cli.json("submit", "--image", "ubuntu:22.04", "--name", "cli_built", "--memory", "1G", "--",
                   "echo", "hello from cli")
    name = sub["name"]
    assert name.startswith("cli_built_") and sub["user"] == local_backend.user
    done = cli("job", name, "--wait", "--timeout", "60")
    assert done.returncode == 0 and "SUCCEEDED" in done.stdout
    # the job controller's line in plain words, as every face says it (core/diagnostics.py)
    assert "1 task of role taskrole succeeded" in done.stdout and "SucceededTaskCount" not in done.stdout
    logs = cli("logs", name)
    assert logs.stdout == "hello from cli\n"
    detail = cli.json("job", name)
    assert detail["state"] == "SUCCEEDED" and detail["tasks"][0]["role"] == "taskrole"
    listing = cli.json("jobs", "--limit", "50")
    assert name in [j["name"] for j in listing["items"]] and listing["total"] >= 1
    cli.assert_no_secret(local_backend.password, local_backend.token)


def test_submit_file_and_failed_wait_exit_code(logged_in, tmp_path):
    cli = logged_in
    job = yaml.safe_load((EXAMPLES / "hello-world-job.yaml").read_text())
    for role in job["taskRoles"].values():
        role["commands"] = ["echo from-file; exit 4"]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    proc = cli("submit", str(path), "--name", "from_file", "--wait", "--timeout", "60", "--json")
    assert proc.returncode == 1  # ran, but did not succeed
    data = json.loads(proc.stdout)
    assert data["state"] == "FAILED" and data["name"].startswith("from_file_")
    assert cli("logs", data["name"]).stdout == "from-file\n"


def test_reused_file_name_is_exit_2_with_the_409_explanation(logged_in, tmp_path):
    cli = logged_in
    job = yaml.safe_load((EXAMPLES / "hello-world-job.yaml").read_text())
    job["name"] = f"fixed_name_{int(time.time() * 1000)}"
    for role in job["taskRoles"].values():
        role["commands"] = ["true"]
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    assert cli("submit", str(path)).returncode == 0
    again = cli("submit", str(path))
    assert again.returncode == 2 and "never reuses job names" in again.stderr


def test_stop_and_follow(logged_in):
    cli = logged_in
    name = cli.json("submit", "--image", "ubuntu:22.04", "--name", "cli_stop", "--",
                    "echo up; sleep 120")["name"]
    deadline = time.monotonic() + 30
    while cli.json("job", name)["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = cli.json("stop", name, "--wait", "--timeout", "60")
    assert stopped["state"] == "STOPPED"
    follow = cli("logs", name, "--follow", "--timeout", "30")
    assert follow.returncode == 0 and follow.stdout.startswith("up\n")


@pytest.mark.parametrize("args", [
    ("job", "no_such_job"),
    ("logs", "no_such_job"),
    ("stop", "no_such_job"),
    ("submit", "/no/such/file.yaml"),
    ("submit", "--image", "ubuntu:22.04"),
    ("submit", "--image", "ubuntu:22.04", "--memory", "lots", "--", "true"),
    ("jobs", "--limit", "many"),
    ("jobs", "--state", "SLEEPING"),
    ("logs", "x", "--task", "role/first"),
    ("frobnicate",),
    (),
])
def test_bad_input_is_exit_2_and_one_line(logged_in, args):
    proc = logged_in(*args)
    assert proc.returncode == 2


def test_invalid_job_file_lists_the_problem(logged_in, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("protocolVersion: 2\nname: bad_one\ntype: job\ntaskRoles: {}\n")
    proc = logged_in("submit", str(path))
    assert proc.returncode == 2 and "invalid job protocol" in proc.stderr


def test_dry_run_masks_registry_password(logged_in, tmp_path):
    proc = logged_in("submit", "--dry-run", "--image", "ubuntu:22.04", "--gpu", "1", "--storage", "default:/data",
                     "--", "nvidia-smi")
    assert proc.returncode == 0
    job = yaml.safe_load(proc.stdout)
    role = next(iter(job["taskRoles"].values()))
    assert role["resourcePerInstance"]["gpu"] == 1 and role["commands"] == ["nvidia-smi"]
    assert job["extras"]["storages"] == [{"name": "default", "mountPath": "/data"}]


def test_local_command_serves_and_writes_an_active_profile(cli, tmp_path):
    env = dict(cli.env, PAI_LOCAL_PW="local-secret-pw")
    proc = subprocess.Popen([sys.executable, "-m", "pai_magic", "local", "--port", "0", "--data-dir",
                             str(tmp_path / "data"), "--user", "demo", "--password-env", "PAI_LOCAL_PW",
                             "--write-profile"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=str(REPO), start_new_session=True)
    try:
        url = _read_line(proc, 30)
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not profile_file().exists():
            time.sleep(0.1)
        who = cli.json("whoami")
        assert who["user"] == "demo" and who["url"] == url and who["profile"] == "local"
        assert cli.json("jobs")["total"] == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err.decode()
    cli.outputs += [out.decode(), err.decode()]
    cli.assert_no_secret("local-secret-pw", yaml.safe_load(profile_file().read_text())["profiles"]["local"]["token"])


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline and b"\n" not in buf:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
        elif proc.poll() is not None:
            break
    return buf.decode().split("\n", 1)[0].strip()
