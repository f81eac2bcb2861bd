"""%%pai_job and friends against the real embedded backend (jobs run as local processes)."""
from __future__ import annotations

import os
import secrets
import signal
import threading
import time

import pytest
import yaml
from IPython.core.error import UsageError

import pai_magic
from pai_magic.magics.handle import JobHandle
from pai_magic.magics.session import get_session
from pai_magic.magics.status import StatusBoard, register_status_extra, unregister_status_extra
from tests.magics.conftest import make_shell

WAIT = 90  # seconds; a bound for a hung backend, never a timing assertion


def _finish(handle: JobHandle):
    detail = handle.wait(timeout=WAIT, show=False)
    assert detail.terminal, detail.state
    return detail


def _until(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _status_items(pai, name: str):
    """The status displays of job ``name``: (display_id -> list of published texts)."""
    out: dict[str, list[dict]] = {}
    for item in pai.recorder.items:
        text = item["data"].get("text/plain", "")
        if text.startswith(f"[pai] {name}:"):
            out.setdefault(item["transient"].get("display_id") or "", []).append(item)
    return out


def test_command_cell_succeeds_and_status_updates_in_place(pai):
    pai.run("%config PaiMagics.display = 'html'")
    handle = pai.cell("pai_job", "hello -o job", "echo hello from the job")
    assert isinstance(handle, JobHandle) and pai.shell.user_ns["job"] == handle
    assert handle.name.startswith("hello_")
    detail = _finish(handle)
    assert detail.state == "SUCCEEDED" and detail.exit_code == 0
    displays = _status_items(pai, handle.name)
    assert len(displays) == 1, "one status line, updated in place"
    (display_id, items), = displays.items()
    assert display_id.startswith("pai-magic-")
    assert items[0]["update"] is False and all(i["update"] for i in items[1:])
    last = items[-1]["data"]
    assert "SUCCEEDED" in last["text/plain"] and "exit code 0" in last["text/plain"]
    assert "SUCCEEDED" in last["text/html"]
    # the handle returned by the cell did not add a second status line
    assert len(_status_items(pai, handle.name)) == 1
    # and displaying it again later (another cell) shows a fresh live status
    pai.run("job")
    assert len(_status_items(pai, handle.name)) == 2
    assert "hello from the job" in handle.logs()


def test_failed_job_shows_exit_code_and_diagnostics_as_text(pai):
    handle = pai.cell("pai_job", "boom", "echo about to fail\nexit 3")
    detail = _finish(handle)
    assert detail.state == "FAILED" and detail.exit_code == 3
    items = next(iter(_status_items(pai, handle.name).values()))
    # text mode (no kernel): printed lines, one per change, no display ids
    assert all(not i["transient"] for i in items)
    texts = [i["data"]["text/plain"] for i in items]
    assert len(texts) == len(set(texts)), "a line per change, not per tick"
    assert texts[0] == f"[pai] {handle.name}: SUBMITTED"
    assert texts[-1].startswith(f"[pai] {handle.name}: FAILED") and "exit code 3" in texts[-1]
    assert "—" in texts[-1], "diagnostics follow the exit code"
    # in plain words, as every face says them (core/diagnostics.py)
    assert "of role taskrole failed, which ends the job" in texts[-1], texts[-1]
    shown = pai.line("pai_job", handle.name)
    assert "FAILED" in shown.text and "taskrole/0" in shown.text and "3" in shown.text
    assert "FailedTaskCount" not in shown.text and "which ends the job" in shown.text


def test_full_yaml_cell_with_overrides(pai):
    name = f"yaml_{secrets.token_hex(4)}"
    body = f"""protocolVersion: 2
name: {name}
type: job
prerequisites:
  - name: image
    type: dockerimage
    uri: openpai/standard:python_3.6-pytorch_1.2.0-gpu
taskRoles:
  worker:
    instances: 1
    dockerImage: image
    resourcePerInstance: {{cpu: 1, memoryMB: 1024, gpu: 1}}
    commands:
      - echo role=$PAI_CURRENT_TASK_ROLE_NAME
"""
    preview = pai.cell("pai_job", "--dry-run --gpu 0 --memory 2G --retry 1", body)
    job = yaml.safe_load(preview.text)
    assert job["name"] == name
    assert job["taskRoles"]["worker"]["resourcePerInstance"] == {"cpu": 1, "memoryMB": 2048, "gpu": 0}
    assert job["jobRetryCount"] == 1
    handle = pai.cell("pai_job", "--gpu 0 --wait", body)
    assert handle.name == name
    assert handle.state() == "SUCCEEDED"
    assert "role=worker" in handle.logs("worker/0")
    config = handle.config()
    assert config["taskRoles"]["worker"]["resourcePerInstance"]["gpu"] == 0
    # OpenPAI never reuses a name: the same document again is a 409, told as a sentence
    with pytest.raises(UsageError) as info:
        pai.cell("pai_job", "", body)
    message = str(info.value)
    assert f"'{name}'" in message and "never reuses" in message and "\n" not in message
    # ... and a NAME on the magic line gives the document a fresh unique name
    again = pai.cell("pai_job", "rerun --wait", body)
    assert again.name.startswith("rerun_") and again.state() == "SUCCEEDED"


def test_dry_run_masks_secrets(pai, secrets_to_hide):
    secret = "S3cret-" + secrets.token_hex(8)
    secrets_to_hide.append(secret)
    body = f"""protocolVersion: 2
name: private_image
type: job
prerequisites:
  - name: img
    type: dockerimage
    uri: 127.0.0.1:5000/team/img:1
    auth:
      username: bob
      password: <% $secrets.regpass %>
      registryuri: 127.0.0.1:5000
secrets:
  regpass: {secret}
taskRoles:
  main:
    instances: 1
    dockerImage: img
    resourcePerInstance: {{cpu: 1, memoryMB: 512, gpu: 0}}
    commands: [echo hi]
"""
    view = pai.cell("pai_job", "--dry-run -o proto", body)
    assert secret not in view.text and secret not in view._repr_html_()
    assert "******" in view.text and "$secrets.regpass" in view.text
    assert pai.shell.user_ns["proto"]["secrets"] == "******"
    # nothing was submitted
    with pytest.raises(UsageError, match="not found|No job|does not exist"):
        pai.line("pai_job", "private_image")


def test_the_kernel_runs_other_cells_while_a_job_runs(pai):
    handle = pai.cell("pai_job", "slow", "sleep 30")
    assert pai.run("x = 40 + 2\nx") == 42
    assert not handle.detail().terminal, "the cell above ran while the job was still running"
    board = get_session(pai.shell).board()
    assert handle.name in board.tracked_names()
    pai.line("pai_stop", handle.name)
    assert "Stop requested" in pai.stdout()
    detail = _finish(handle)
    assert detail.state == "STOPPED"
    pai.line("pai_stop", handle.name)  # again: it has ended, so no STOP is sent and it says so
    assert f"Job {handle.name} already ended as STOPPED: nothing to stop." in pai.stdout()


def test_wait_blocks_until_the_end(pai):
    board = get_session(pai.shell).board()
    handle = pai.cell("pai_job", "waited --wait", "echo done")
    tracked = board._jobs[(handle.user, handle.name)]
    assert tracked.done.is_set() and tracked.snapshot.state == "SUCCEEDED"
    # PaiMagics.wait makes blocking the default; --no-wait still returns at once
    pai.run("%config PaiMagics.wait = True")
    handle = pai.cell("pai_job", "default_wait", "echo done")
    assert board._jobs[(handle.user, handle.name)].done.is_set()
    handle = pai.cell("pai_job", "no_wait --no-wait", "sleep 30")
    assert not handle.detail().terminal
    handle.stop()
    assert _finish(handle).state == "STOPPED"


def test_ctrl_c_detaches_and_leaves_the_job_running(pai, monkeypatch):
    """A real SIGINT, sent once the cell is blocked in the wait, as Jupyter's interrupt does."""
    waiting = threading.Event()
    original = StatusBoard.wait

    def spy(self, *args, **kwargs):
        waiting.set()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StatusBoard, "wait", spy)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt():
        if waiting.wait(WAIT):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    try:
        handle = pai.cell("pai_job", "detached --wait", "sleep 60")
    finally:
        sender.join(WAIT)
        signal.signal(signal.SIGINT, previous)
    assert isinstance(handle, JobHandle)
    out = pai.stdout()
    assert "Stopped waiting" in out and "keeps running" in out
    assert handle.state() in ("WAITING", "RUNNING")
    handle.stop()
    assert _finish(handle).state == "STOPPED"


def test_logs_stderr_task_and_follow(pai):
    handle = pai.cell("pai_job", "logs --wait", "echo out-line\necho err-line >&2")
    pai.stdout()
    pai.line("pai_logs", handle.name)
    out = pai.stdout()
    assert "out-line" in out and "err-line" not in out
    pai.line("pai_logs", f"{handle.name} --stderr --task taskrole/0")
    assert "err-line" in pai.stdout()
    with pytest.raises(UsageError, match="taskrole/0"):
        pai.line("pai_logs", f"{handle.name} --task nope/0")
    follow = pai.cell("pai_job", "ticks", "for i in 1 2 3 4; do echo tick-$i; sleep 0.5; done")
    pai.stdout()
    pai.line("pai_logs", f"{follow.name} --follow")
    out = pai.stdout()
    assert [line for line in out.splitlines() if line.startswith("tick-")] == ["tick-1", "tick-2", "tick-3", "tick-4"]
    assert follow.detail().terminal, "--follow returns once the task ended"


def test_reattach_from_a_fresh_shell(pai, tmp_path):
    handle = pai.cell("pai_job", "survivor", "sleep 2\necho survived")
    name = handle.name
    pai.shell.run_line_magic("unload_ext", "pai_magic")  # the "kernel restart"
    second, recorder = make_shell(tmp_path / "restarted")
    try:
        result = second.run_cell(f"%pai_job {name} -o job", store_history=False)
        assert result.error_in_exec is None, result.error_in_exec
        job = second.user_ns["job"]
        assert isinstance(job, JobHandle) and job.name == name
        assert name in result.result.text
        result = second.run_cell(f"import pai_magic\nagain = pai_magic.job({name!r})\nagain", store_history=False)
        assert result.error_in_exec is None
        assert second.user_ns["again"] == job
        _until(lambda: any(t.startswith(f"[pai] {name}: SUCCEEDED") for t in recorder.texts()),
               "the re-attached status line to reach SUCCEEDED")
        assert "survived" in job.logs()
        with pytest.raises(Exception, match="not found|No job|does not exist"):
            pai_magic.job("never_existed_" + secrets.token_hex(4))
    finally:
        second.run_line_magic("unload_ext", "pai_magic")
        from IPython.core.interactiveshell import InteractiveShell

        InteractiveShell.clear_instance()
        pai.outputs.extend(recorder.texts())  # scanned for secrets with the rest
    pai.shell.run_line_magic("load_ext", "pai_magic")


def test_jobs_table_filters(pai):
    done = pai.cell("pai_job", "listed --wait", "true")
    table = pai.line("pai_jobs", "--limit 50")
    assert done.name in repr(table) and "SUCCEEDED" in repr(table)
    html = table._repr_html_()
    assert "<table" in html and done.name in html
    assert done.name in repr(pai.line("pai_jobs", "--state succeeded --limit 50"))
    assert done.name not in repr(pai.line("pai_jobs", "--state FAILED --limit 50"))
    assert done.name in repr(pai.line("pai_jobs", f"--user {pai.backend.user} --limit 50"))
    assert done.name in repr(pai.line("pai_jobs", "--all --limit 50"))
    for bad in ("--state DONE", "--limit 0", "--user a --all", "--user 'a b'", "--vc 'x y'"):
        with pytest.raises(UsageError):
            pai.line("pai_jobs", bad)


def test_status_extras_hook(pai):
    seen = []

    def extra(session, name, user, state):
        seen.append(state)
        return [f"extra for {name}: {state}"] if state == "SUCCEEDED" else []

    register_status_extra(extra)
    try:
        handle = pai.cell("pai_job", "extras --wait", "true")
    finally:
        unregister_status_extra(extra)
    assert "SUCCEEDED" in seen
    assert any(f"extra for {handle.name}: SUCCEEDED" in t for t in pai.recorder.texts())


def test_running_only_extras_are_cleared_when_the_job_ends(pai):
    """SSH lines shown while a job runs must not linger under its STOPPED status."""
    def extra(session, name, user, state):
        return [f"only while running: {name}"] if state == "RUNNING" else []

    register_status_extra(extra)
    try:
        handle = pai.cell("pai_job", "lingering", "sleep 30")
        deadline = time.monotonic() + 60
        while not any("only while running" in t for t in pai.recorder.texts()):
            assert time.monotonic() < deadline, "the RUNNING extra never showed"
            time.sleep(0.2)
        pai.line("pai_stop", handle.name)
        handle.wait(timeout=60, show=False)
        deadline = time.monotonic() + 60
        while "STOPPED" not in pai.recorder.texts()[-1]:
            assert time.monotonic() < deadline, "the status never showed STOPPED"
            time.sleep(0.2)
    finally:
        unregister_status_extra(extra)
    final = pai.recorder.texts()[-1]
    assert "STOPPED" in final and "only while running" not in final


def test_unreachable_cluster_names_the_url(pai):
    from pai_magic.core.profiles import Profile, save_profile
    from tests.fixtures.services import free_port

    port = free_port()
    save_profile(Profile(name="down", url=f"http://127.0.0.1:{port}", user="x", token="t"))
    pai.line("pai_profile", "down")
    with pytest.raises(UsageError) as info:
        pai.line("pai_jobs")
    assert f"127.0.0.1:{port}" in str(info.value) and "\n" not in str(info.value)


def test_the_watcher_survives_a_backend_outage(shell, fresh_local_backend, secrets_to_hide, monkeypatch):
    backend = fresh_local_backend
    secrets_to_hide.extend([backend.password, backend.token])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": backend.password)
    shell.run("%config PaiMagics.poll_interval = 0.2")
    shell.line("pai_login", f"{backend.url} --user {backend.user}")
    handle = shell.cell("pai_job", "outage", "sleep 60")
    _until(lambda: any(t.startswith(f"[pai] {handle.name}: RUNNING") for t in shell.recorder.texts()),
           "the status line to show RUNNING")
    backend.stop()
    _until(lambda: any("watch paused" in t and backend.url in t for t in shell.recorder.texts()),
           "the status line to say the cluster is unreachable")
    assert shell.run("'still usable'") == "still usable"
    backend.start()
    detail = _finish(handle)
    assert detail.state in ("FAILED", "STOPPED")
    last = [t for t in shell.recorder.texts() if t.startswith(f"[pai] {handle.name}:")][-1]
    assert last.startswith(f"[pai] {handle.name}: {detail.state}") and "watch paused" not in last


def test_ctrl_c_stops_following_logs_not_the_job(pai, monkeypatch):
    import pai_magic.core.jobs as core_jobs

    first_chunk = threading.Event()
    original = core_jobs.follow_logs

    def spy(*args, **kwargs):
        for chunk in original(*args, **kwargs):
            yield chunk
            first_chunk.set()

    monkeypatch.setattr(core_jobs, "follow_logs", spy)
    handle = pai.cell("pai_job", "chatty", "echo ready\nsleep 60")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt():
        if first_chunk.wait(WAIT):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    try:
        pai.line("pai_logs", f"{handle.name} --follow")
    finally:
        sender.join(WAIT)
        signal.signal(signal.SIGINT, previous)
    out = pai.stdout()
    assert "ready" in out and "stopped following" in out
    assert handle.state() == "RUNNING"
    handle.stop()
    assert _finish(handle).state == "STOPPED"
