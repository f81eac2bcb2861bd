"""The shell line a face hands to a terminal runs this install's CLI even where PATH does not
lead to it (a JupyterLab terminal's login shell), and names the task and profile it was for."""
from __future__ import annotations

import shlex
import subprocess
import sys

import pai_magic
from pai_magic.core import cli_command
from pai_magic.core.models import JobDetail, TaskStatus

#: No pyenv shims, no virtual environment's bin: what a login shell may give a terminal.
BARE_PATH = {"PATH": "/usr/bin:/bin"}


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(BARE_PATH, PYTHONPATH=str(cli_command.Path(pai_magic.__file__).parent.parent))
    return subprocess.run(argv + ["--version"], env=env, capture_output=True, text=True, timeout=60)


def test_the_console_script_beside_the_interpreter_runs_without_path():
    argv = cli_command.cli_argv()
    assert argv[0].startswith("/") and argv[0].endswith("/pai-magic"), argv
    done = _run(argv)
    assert done.returncode == 0, done.stderr
    assert pai_magic.__version__ in done.stdout


def test_without_a_console_script_the_interpreter_runs_the_module(monkeypatch, tmp_path):
    monkeypatch.setattr(cli_command.sysconfig, "get_path", lambda name, scheme=None: str(tmp_path))
    argv = cli_command.cli_argv()
    assert argv == [sys.executable, "-m", "pai_magic"]
    done = _run(argv)
    assert done.returncode == 0, done.stderr
    assert pai_magic.__version__ in done.stdout


def _detail(*tasks: tuple[str, int]) -> JobDetail:
    return JobDetail(name="train_1", user="alice", state="RUNNING",
                     tasks=[TaskStatus(role=role, index=index, state="RUNNING") for role, index in tasks])


def test_one_task_needs_no_task_option_and_the_profile_is_quoted():
    commands = cli_command.task_shell_commands(_detail(("worker", 0)), profile="my lab")
    words = shlex.split(commands["worker/0"])
    assert words[1:] == ["ssh", "alice~train_1", "--profile", "my lab"]


def test_several_tasks_each_name_their_own():
    commands = cli_command.task_shell_commands(_detail(("ps", 0), ("worker", 0), ("worker", 1)))
    assert sorted(commands) == ["ps/0", "worker/0", "worker/1"]
    assert shlex.split(commands["worker/1"])[1:] == ["ssh", "alice~train_1", "--task", "worker/1"]
