"""SSH info as the OpenPAI portal prints it (src/webportal ... task-role-container-list.jsx,
showSshInfo), from a job detail and its config; plus the task and JOB:PATH parsers and the
stock ssh argv built for a task."""
from __future__ import annotations

import json

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.models import JobDetail
from pai_magic.core.ssh.connect import SshTarget
from pai_magic.core.ssh.info import PORTAL_NO_SSH, build_ssh_info
from pai_magic.core.ssh.known_hosts import KnownHosts
from pai_magic.core.ssh.openssh import openssh_argv
from pai_magic.core.ssh.tasks import parse_remote, parse_task, task_target

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMGKrvQRxNEqblW4SDZf6HwbQMwWyGiiibAF7hTIdx/b me"

# What the portal shows for port 37508 on 10.151.40.7, typed out from the dialog
EXPECTED_PORTAL = (
    "You can connect to this container by one of the following commands if SSH is set up properly: \n"
    "\n"
    "1. Use your default SSH private key:\n"
    "\n"
    "ssh -p 37508 root@10.151.40.7\n"
    "\n"
    "2. Use a pre-downloaded SSH private key:\n"
    "\n"
    "On Windows:\n"
    "ssh -p 37508 -i <your-private-key-file-path> root@10.151.40.7\n"
    "\n"
    "On Unix-like System:\n"
    "chmod 400 <your-private-key-file-path> && ssh -p 37508 -i <your-private-key-file-path> root@10.151.40.7\n"
    "\n"
    "\n"
    'If you are using a different username in your docker, please change "root" to your pre-defined username.'
)


def _detail(state="RUNNING", tasks=None):
    tasks = tasks if tasks is not None else [
        {"taskIndex": 0, "taskState": "RUNNING", "containerIp": "10.151.40.7",
         "containerPorts": {"ssh": "37508", "http": "15001,15002"}},
        {"taskIndex": 1, "taskState": "WAITING", "containerIp": None, "containerPorts": None},
    ]
    return JobDetail.from_api({"name": "train_ab12", "jobStatus": {"username": "alice", "state": state},
                               "taskRoles": {"worker": {"taskStatuses": tasks}}})


def _config(userssh=PUB):
    return {"protocolVersion": 2, "name": "train_ab12",
            "extras": {"com.microsoft.pai.runtimeplugin": [
                {"plugin": "ssh", "parameters": {"jobssh": True,
                                                 "userssh": {"type": "custom", "value": userssh}}}]}}


def test_running_task_gets_the_portal_text_verbatim():
    info = build_ssh_info(_detail(), _config())
    assert info.has_ssh and [ep.task for ep in info.endpoints] == ["worker/0"]
    assert info.endpoints[0].portal_text == EXPECTED_PORTAL
    assert info.text.startswith("SSH to worker/0:\n" + EXPECTED_PORTAL)
    assert info.lines == ["ssh -p 37508 root@10.151.40.7"]
    assert info.waiting == ["worker/1"] and "worker/1" in info.message


def test_with_a_key_path_the_copy_lines_include_the_ready_command():
    info = build_ssh_info(_detail(), _config(), key_path="/home/a/.ssh/id_ed25519")
    assert info.lines == ["ssh -p 37508 root@10.151.40.7",
                          "ssh -p 37508 -i /home/a/.ssh/id_ed25519 root@10.151.40.7"]
    data = info.as_dict()
    json.dumps(data)
    assert data["tasks"][0]["text"] == EXPECTED_PORTAL and info.get("lines") == info.lines


@pytest.mark.parametrize("config", [
    {"protocolVersion": 2, "name": "x"},
    {"extras": {"com.microsoft.pai.runtimeplugin": [{"plugin": "tensorboard", "parameters": {}}]}},
    {"extras": {"com.microsoft.pai.runtimeplugin": [{"plugin": "ssh", "parameters": {"jobssh": True}}]}},
    None,
])
def test_without_user_ssh_the_portal_explains_how_to_enable_it(config):
    info = build_ssh_info(_detail(), config)
    assert not info.has_ssh and info.lines == []
    assert info.text == PORTAL_NO_SSH == ("This job does not contain SSH info.\n"
                                          'If you want to use SSH, please enable it in the "Tools -> SSH" '
                                          "Section on the Job Submission Page.")


def test_waiting_and_ended_jobs_say_why_there_is_no_command():
    waiting = build_ssh_info(_detail("WAITING", [{"taskIndex": 0, "taskState": "WAITING"}]), _config())
    assert waiting.lines == [] and "RUNNING" in waiting.message
    ended = build_ssh_info(_detail("SUCCEEDED", [{"taskIndex": 0, "taskState": "SUCCEEDED"}]), _config())
    assert ended.lines == [] and "SUCCEEDED" in ended.message


def test_task_target_uses_the_ssh_port_and_a_job_task_alias():
    target = task_target(_detail(), "worker", 0)
    assert (target.host, target.port, target.user) == ("10.151.40.7", 37508, "root")
    assert target.host_key_alias.startswith("alice~train_ab12.worker.0.")
    with pytest.raises(InvalidInputError) as err:
        task_target(_detail(), "worker", 1)
    assert "WAITING" in str(err.value)
    with pytest.raises(InvalidInputError):
        task_target(_detail("FAILED", [{"taskIndex": 0, "taskState": "FAILED"}]))
    no_ssh = _detail(tasks=[{"taskIndex": 0, "taskState": "RUNNING", "containerIp": "1.2.3.4",
                             "containerPorts": {"http": "80"}}])
    with pytest.raises(InvalidInputError) as err:
        task_target(no_ssh)
    assert "--ssh" in str(err.value)


def test_parsers():
    assert parse_task(None) == (None, 0)
    assert parse_task("worker/2") == ("worker", 2)
    assert parse_task("worker") == ("worker", 0)
    assert parse_task("3") == (None, 3)
    with pytest.raises(InvalidInputError):
        parse_task("a b/c")
    assert parse_remote("train_ab12:/data/out") == ("train_ab12", "/data/out")
    assert parse_remote("bob~train:rel/x") == ("bob~train", "rel/x")
    assert parse_remote("train:") == ("train", ".")
    with pytest.raises(InvalidInputError):
        parse_remote("/just/a/path")


def test_openssh_argv_uses_our_known_hosts_with_the_task_alias(tmp_path):
    kh = KnownHosts(tmp_path / "my dir" / "known_hosts")
    target = SshTarget("10.0.0.5", 2222, "alice~j.worker.0.a0.pai")
    argv = openssh_argv(target, "/k/id", command="echo hi", known_hosts=kh, batch=True, ssh_binary="ssh")
    assert argv[:3] == ["ssh", "-p", "2222"] and argv[-3:] == ["root@10.0.0.5", "--", "echo hi"]
    joined = " ".join(argv)
    assert f'UserKnownHostsFile="{kh.path}"' in joined
    assert "HostKeyAlias=alice~j.worker.0.a0.pai" in joined
    assert "StrictHostKeyChecking=accept-new" in joined and "BatchMode=yes" in joined
    assert "GlobalKnownHostsFile=/dev/null" in joined and "-i /k/id" in joined
    kh.add("alice~j.worker.0.a0.pai", "ssh-ed25519", PUB.split()[1])
    argv = openssh_argv(target, None, known_hosts=kh, ssh_binary="ssh", tty=True)
    assert "StrictHostKeyChecking=yes" in " ".join(argv) and "-t" in argv and "-i" not in argv
