"""The ``pai-magic`` CLI as a researcher meets it: help with examples that really parse, bad
input that fails at once (never a wait for something that cannot happen), and no job
submitted for a command that was going to fail anyway. Real embedded backend over HTTP."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pai_magic.cli import build_parser
from pai_magic.cli.examples import EXAMPLES, HEADER

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PAI_MAGIC_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "pai_magic", *args], capture_output=True, text=True,
                          env=env, cwd=str(REPO), timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pai-magic"), proc.stderr
    return proc


@pytest.fixture
def logged_in(local_backend):
    from pai_magic.core.auth import login_with_password

    login_with_password(local_backend.url, local_backend.user, local_backend.password)
    return local_backend


def _example_argvs(line: str) -> list[list[str]]:
    """The pai-magic command lines inside one example (pipes, && and comments cut away)."""
    words = shlex.split(line, comments=True)
    argvs, current = [], None
    for word in words:
        if word in ("|", "&&", "||", ";"):
            if current is not None:
                argvs.append(current)
            current = None
        elif word == "pai-magic":
            current = []
        elif current is not None:
            current.append(word)
    if current is not None:
        argvs.append(current)
    return argvs


def test_every_verb_has_examples_in_its_help_and_each_example_parses():
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices  # noqa: SLF001
    assert set(verbs) <= set(EXAMPLES), f"verbs without examples: {sorted(set(verbs) - set(EXAMPLES))}"
    assert HEADER in parser.format_help()
    for verb, sub in verbs.items():
        text = sub.format_help()
        assert HEADER in text, verb
        for line in EXAMPLES[verb]:
            assert line in text, (verb, line)  # printed as typed, not re-wrapped
    for verb, lines in EXAMPLES.items():
        for line in lines:
            argvs = _example_argvs(line)
            assert argvs, line
            for argv in argvs:
                args = build_parser().parse_args(argv)  # raises CliUsageError on a stale example
                assert callable(getattr(args, "func", None)), line
                assert not verb or args.func is verbs[verb].get_default("func"), line


def test_ssh_to_a_task_the_job_does_not_have_fails_at_once(logged_in):
    """Before: `--task taskrole/5` of a one-task job waited the whole start wait (120 s) for a
    task that can never run, then failed; now one line names the tasks the job has."""
    sub = _run("--json", "submit", "--image", "python:3.11", "--ssh", "--keep-alive", "--name", "review_ssh",
               "--", "sleep 300")
    assert sub.returncode == 0, sub.stderr
    name = json.loads(sub.stdout)["name"]
    try:
        ok = _run("ssh", name, "--", "echo", "ready", timeout=150)  # waits (bounded) until the task runs
        assert ok.returncode == 0 and ok.stdout == "ready\n", ok.stderr
        for task in ("taskrole/5", "worker/0"):
            bad = _run("ssh", name, "--task", task, "--", "true", timeout=30)
            assert bad.returncode == 2 and "has no task" in bad.stderr and "taskrole/0" in bad.stderr
        bad_up = _run("upload", __file__, f"{name}:/tmp/x.py", "--task", "taskrole/3", timeout=30)
        assert bad_up.returncode == 2 and "has no task" in bad_up.stderr
    finally:
        _run("stop", name)


def test_sync_of_a_missing_folder_submits_no_helper_job(logged_in, tmp_path):
    """Before: the storage helper job was submitted (and stopped again) before the folder was looked at."""
    def names() -> set[str]:
        proc = _run("--json", "jobs", "--all", "--limit", "1000")
        assert proc.returncode == 0, proc.stderr
        return {j["name"] for j in json.loads(proc.stdout)["items"]}

    before = names()
    missing = tmp_path / "no-such-folder"
    proc = _run("submit", "--image", "python:3.11", "--sync", str(missing), "--", "true")
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    assert proc.stdout == ""
    assert names() == before


def test_jobs_offset_past_sqlite_integers_is_an_empty_page_not_a_server_error(logged_in):
    """Before: an offset above 2**63 overflowed SQLite in the embedded backend (HTTP 500)."""
    proc = _run("jobs", "--offset", str(10**21))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No jobs past offset")
    page = json.loads(_run("--json", "jobs", "--offset", str(10**21)).stdout)
    assert page["items"] == []
