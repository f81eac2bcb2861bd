"""Option parsing and rendering: the pieces every magic shares (no backend needed)."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from pai_magic.core.errors import AuthError, ConflictError, InvalidInputError, NotFoundError, UnreachableError
from pai_magic.core.models import JobDetail, JobSummary, TaskStatus
from pai_magic.magics.args import check_var, parse_memory, parse_storage, parse_task
from pai_magic.magics.errors import friendly_message
from pai_magic.magics.jobs import looks_like_protocol, split_job_ref
from pai_magic.magics.render import StatusSnapshot, fmt_duration, job_detail_view, job_table


@pytest.mark.parametrize("text,mb", [("8G", 8192), ("8g", 8192), ("512M", 512), ("1.5GiB", 1536),
                                     ("2048", 2048), ("1T", 1048576), (" 16 GB ", 16384)])
def test_memory_sizes(text, mb):
    assert parse_memory(text) == mb


@pytest.mark.parametrize("text", ["", "G", "8X", "-1G", "0", "1e3", "8 G B", "0.1M"])
def test_bad_memory_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--memory"):
        parse_memory(text)


def test_task_refs():
    assert parse_task(None) == (None, 0)
    assert parse_task("worker/3") == ("worker", 3)
    assert parse_task("worker") == ("worker", 0)
    assert parse_task("2") == (None, 2)
    for bad in ("worker/x", "1w/0", "a b/0", "worker/"):
        with pytest.raises(UsageError, match="--task"):
            parse_task(bad)


def test_storage_refs():
    assert parse_storage("confignfs") == ("confignfs", None)
    assert parse_storage("data:/mnt/d") == ("data", "/mnt/d")
    for bad in ("", ":/x", "data:rel/path", "bad name"):
        with pytest.raises(UsageError, match="--storage"):
            parse_storage(bad)


def test_job_refs_and_vars():
    assert split_job_ref("train_1") == ("train_1", None)
    assert split_job_ref("alice~train_1") == ("train_1", "alice")
    for bad in ("", "a b", "x~", "~x", "a~b~c", "../x"):
        with pytest.raises(UsageError):
            split_job_ref(bad)
    assert check_var("job") == "job"
    for bad in ("1job", "class", "get_ipython", "_", "_x", "In", "a-b"):
        with pytest.raises(UsageError, match="-o"):
            check_var(bad)


def test_protocol_detection():
    assert looks_like_protocol("protocolVersion: 2\nname: x\n")
    assert looks_like_protocol("# comment\ntaskRoles:\n  a: {}\n")
    assert not looks_like_protocol("echo protocolVersion: 2")
    assert not looks_like_protocol("python train.py\n")


def test_friendly_messages_say_what_to_do():
    conflict = friendly_message(ConflictError("Job name 'x' is already used"), job="x")
    assert "'x'" in conflict and "never reuses" in conflict and "NAME" in conflict
    auth = friendly_message(AuthError("Token expired or refused by h: run `pai-magic login` / %pai_login."))
    assert auth.endswith("run %pai_login.") and "pai-magic" not in auth
    auth2 = friendly_message(AuthError("refused"), url="http://c:1")
    assert "%pai_login" in auth2 and "http://c:1" in auth2
    down = friendly_message(UnreachableError("connection refused"), url="http://10.9.9.9:80")
    assert "http://10.9.9.9:80" in down and "connection refused" in down
    bad = friendly_message(InvalidInputError("invalid job", details=["a: x\nmore", "b: y", "c: z", "d: w"]))
    assert "\n" not in bad and "a: x more" in bad and "(+1 more)" in bad
    quoted = friendly_message(InvalidInputError("invalid: a: x (and 1 more)", details=["a: x", "b: y"]))
    assert quoted == "invalid: a: x (and 1 more). Also: b: y"
    assert friendly_message(NotFoundError("Job x not found: check %pai_jobs")) == "Job x not found: check %pai_jobs"


def _summary(**kw):
    base = dict(name="j1", user="u", state="RUNNING", virtual_cluster="default", gpus=1,
                submission_time=1_700_000_000_000, completed_time=None, exit_code=None)
    base.update(kw)
    return JobSummary(**base)


def test_job_table_text_and_html():
    rows = [_summary(), _summary(name="j<2>", state="FAILED", completed_time=1_700_000_065_000, exit_code=3)]
    table = job_table(rows, total=5, now=1_700_000_010.0)
    text = repr(table)
    assert "j1" in text and "RUNNING" in text and "10s" in text and "1m 05s" in text
    assert "2 of 5 jobs shown" in text
    html = table._repr_html_()
    assert "<table" in html and "j&lt;2&gt;" in html and "j<2>" not in html
    assert "No jobs match." in repr(job_table([]))


def test_detail_view_lists_tasks_and_diagnostics():
    detail = JobDetail(name="j", user="u", state="FAILED", exit_code=2, diagnostics="line one\nline two",
                       submission_time=1_700_000_000_000, completed_time=1_700_000_003_000,
                       tasks=[TaskStatus(role="worker", index=1, state="FAILED", container_ip="127.0.0.1",
                                         ports={"ssh": [2222]}, exit_code=2)])
    view = job_detail_view(detail)
    assert "worker/1" in view.text and "ssh:2222" in view.text and "line one; line two" in view.text
    assert "<table>" in view.html or "<table" in view.html


def test_status_snapshot_lines():
    running = StatusSnapshot(name="j", state="RUNNING", elapsed=75)
    assert running.text() == "[pai] j: RUNNING, 1m 15s"
    done = StatusSnapshot(name="j", state="FAILED", elapsed=3, exit_code=1, diagnostics="boom\nbang")
    assert done.text() == "[pai] j: FAILED, 3s, exit code 1 — boom; bang"
    assert "exit code 1" in done.view().html
    assert fmt_duration(3725) == "1h 02m"
