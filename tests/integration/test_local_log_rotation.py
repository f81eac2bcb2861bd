"""A task log that shrinks under a reader (the log-manager rotates ``current``) over real HTTP.

On a cluster, the log-manager serves ``user-stdout/current``, which its multilog rotates:
the file restarts empty while the job runs. A reader at byte N of the old file then gets
416 (nginx: ``Content-Range: bytes */<new size>``). Here the embedded backend's real log
file is truncated the same way while the job runs; follow_logs must start over at byte 0
of the new file and say so, instead of waiting for bytes that never come.
"""
from __future__ import annotations

import pytest

from pai_magic.core import profiles
from pai_magic.core.client import PaiClient
from pai_magic.core.jobs import follow_logs, submit_job
from pai_magic.core.protocol import JobSpec, build_protocol

LONG = "x" * 300


@pytest.fixture
def client(local_backend):
    prof = profiles.Profile(name="t", url=local_backend.url, user=local_backend.user, token=local_backend.token)
    with PaiClient(prof) as c:
        yield c


def _stdout_file(backend, name: str):
    found = list((backend.data_dir / "logs").glob(f"*{name}*/0/taskrole/0/0/stdout"))
    assert len(found) == 1, found
    return found[0]


def test_follow_restarts_at_the_top_of_a_rotated_log(client, local_backend, tmp_path):
    gate = tmp_path / "go"
    job = build_protocol(JobSpec(name="rotated", image="ubuntu:22.04", commands=[
        f"echo {LONG}", f"while [ ! -e {gate} ]; do sleep 0.05; done", "echo after rotation"]))
    name = submit_job(client, job)
    chunks: list[str] = []
    for chunk in follow_logs(client, name, poll=0.2, timeout=60):
        chunks.append(chunk)
        if not gate.exists() and "".join(chunks) == LONG + "\n":
            _stdout_file(local_backend, name).write_bytes(b"")  # what a rotation leaves behind
            gate.touch()
    text = "".join(chunks)
    assert text.startswith(LONG + "\n")
    assert "log was rotated" in text
    assert text.endswith("after rotation\n")


def test_read_past_a_shrunken_log_starts_over(client, local_backend, tmp_path):
    job = build_protocol(JobSpec(name="shrunk", image="ubuntu:22.04", commands=["echo short"]))
    name = submit_job(client, job)
    from pai_magic.core.jobs import wait_for

    assert wait_for(client, name, timeout=60).state == "SUCCEEDED"
    chunk = client.task_log_text(name, offset=1000)
    assert chunk.restarted and chunk.text == "short\n" and chunk.next_offset == len("short\n")
    same = client.task_log_text(name, offset=chunk.next_offset)
    assert not same.restarted and same.text == "" and same.next_offset == chunk.next_offset
