"""Jobs on the embedded backend, over real HTTP: they run for real as local processes."""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import requests
import yaml

from pai_magic.core.protocol import JobSpec, build_protocol, parse_protocol, unique_job_name
from tests.fixtures.services import wait_for_file

T = 10
EXAMPLES = sorted((Path("/work/shared/reference/job-examples")).glob("*.yaml"))
if not EXAMPLES:  # the repo may be checked out elsewhere; the reference folder moves with shared/
    EXAMPLES = sorted(Path(os.environ.get("PAI_REFERENCE_DIR", "shared/reference")).glob("job-examples/*.yaml"))


def simple_job(name: str, commands: list[str], **role: object) -> dict:
    task = {"instances": 1, "dockerImage": "image", "resourcePerInstance": {"cpu": 1, "memoryMB": 256, "gpu": 0},
            "commands": commands}
    task.update(role)
    return {"protocolVersion": 2, "name": name, "type": "job",
            "prerequisites": [{"name": "image", "type": "dockerimage", "uri": "ubuntu:22.04"}],
            "taskRoles": {"main": task}}


def with_short_commands(job: dict) -> dict:
    """The official example with every command line replaced by a short shell line."""
    job = copy.deepcopy(job)
    for role in job["taskRoles"].values():
        role["commands"] = ["echo ok"]
    for deployment in job.get("deployments") or []:
        for role in (deployment.get("taskRoles") or {}).values():
            if "preCommands" in role:
                role["preCommands"] = ["echo pre"]
            if "postCommands" in role:
                role["postCommands"] = ["echo post"]
    return job


def test_every_official_example_runs_to_succeeded(fresh_local_backend):
    b = fresh_local_backend
    assert len(EXAMPLES) == 14, EXAMPLES
    names = []
    for path in EXAMPLES:
        job = with_short_commands(parse_protocol(path.read_text()))
        resp = b.submit(job)
        assert resp.status_code == 202, (path.name, resp.text)
        names.append((path.name, job))
    for file_name, job in names:
        detail = b.wait(job["name"], timeout=90)
        status = detail["jobStatus"]
        assert status["state"] == "SUCCEEDED", (file_name, status)
        assert status["appExitCode"] == 0
        # the image is recorded, not run, and the job says so; a GPU ask is answered honestly
        assert "recorded, not run" in status["appExitDiagnostics"]
        if any(r["resourcePerInstance"].get("gpu") for r in job["taskRoles"].values()):
            assert "no GPU was given" in status["appExitDiagnostics"]
        for role, role_job in job["taskRoles"].items():
            tasks = detail["taskRoles"][role]["taskStatuses"]
            assert len(tasks) == role_job.get("instances", 1)
        first_role = next(iter(job["taskRoles"]))
        assert "ok" in b.log_text(job["name"], first_role)


def test_a_built_job_runs_and_sees_the_pai_environment(local_backend):
    b = local_backend
    job = build_protocol(JobSpec(name="built", image="python:3.11", instances=2, ports={"tcp": 2},
                                 commands=["echo role=$PAI_CURRENT_TASK_ROLE_NAME index=$PAI_TASK_INDEX",
                                           "echo job=$PAI_JOB_NAME user=$PAI_USER_NAME",
                                           "echo ssh=$PAI_CONTAINER_SSH_PORT ip=$PAI_CONTAINER_HOST_IP",
                                           "echo tcp=$PAI_CONTAINER_HOST_tcp_PORT_LIST",
                                           "echo list=$PAI_CONTAINER_HOST_PORT_LIST",
                                           "echo instances=$PAI_TASK_ROLE_INSTANCES", "pwd"]))
    assert b.submit(job).status_code == 202
    detail = b.wait(job["name"])
    assert detail["jobStatus"]["state"] == "SUCCEEDED"
    assert detail["jobStatus"]["username"] == b.user and detail["jobStatus"]["virtualCluster"] == "default"
    for status in detail["taskRoles"]["taskrole"]["taskStatuses"]:
        ports = status["containerPorts"]
        # real clusters answer strings, several ports comma-separated
        assert all(isinstance(v, str) for v in ports.values()), ports
        assert set(ports) == {"tcp", "ssh", "http"}
        assert len(ports["tcp"].split(",")) == 2
        assert status["containerIp"] == "127.0.0.1"
        out = b.log_text(job["name"], "taskrole", status["taskIndex"])
        assert f"role=taskrole index={status['taskIndex']}" in out
        assert f"job={b.user}~{job['name']} user={b.user}" in out
        assert f"ssh={ports['ssh']} ip=127.0.0.1" in out
        assert f"tcp={ports['tcp']}" in out
        assert f"list=tcp:{ports['tcp']};ssh:{ports['ssh']};http:{ports['http']};" in out
        assert "instances=taskrole:0,taskrole:1" in out
        workdir = out.strip().splitlines()[-1]
        assert Path(workdir).is_relative_to(b.data_dir)
        assert workdir.endswith(f"taskrole-{status['taskIndex']}")


def test_logs_of_a_finished_job(local_backend):
    b = local_backend
    name = unique_job_name("logs")
    assert b.submit(simple_job(name, ["echo to-out", "echo to-err >&2", "seq 1 20000 | tail -c 30000"])).status_code == 202
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    out = b.log_text(name, "main", which="stdout")
    err = b.log_text(name, "main", which="stderr")
    both = b.log_text(name, "main", which="all")
    assert out.startswith("to-out\n") and "to-err" not in out
    assert err == "to-err\n"
    assert "to-out" in both and "to-err" in both
    tail = b.log_text(name, "main", which="stdout", tail=True)
    assert len(tail.encode()) == 16384 and out.endswith(tail)
    # byte ranges, as the log-manager's nginx serves them (log following reads from an offset)
    link = requests.get(f"{b.api}/jobs/{b.user}~{name}/attempts/0/taskRoles/main/taskIndex/0/attempts/0/logs",
                        headers=b.headers(), timeout=T).json()["locations"]
    stdout_uri = b.url + {loc["name"]: loc["uri"] for loc in link}["stdout"]
    part = requests.get(stdout_uri, headers={"Range": "bytes=3-"}, timeout=T)
    size = len(out.encode())
    assert part.status_code == 206 and part.text == out[3:]
    assert part.headers["Content-Range"] == f"bytes 3-{size - 1}/{size}"
    past = requests.get(stdout_uri, headers={"Range": f"bytes={size}-"}, timeout=T)
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{size}"
    # a link with a forged signature is refused
    loc = requests.get(f"{b.api}/jobs/{b.user}~{name}/attempts/0/taskRoles/main/taskIndex/0/attempts/0/logs",
                       headers=b.headers(), timeout=T).json()["locations"][0]["uri"]
    forged = loc.replace("token=", "token=0")
    assert requests.get(b.url + forged, timeout=T).status_code == 401
    # no log for a task attempt that never started
    none = requests.get(f"{b.api}/jobs/{b.user}~{name}/attempts/0/taskRoles/main/taskIndex/0/attempts/7/logs",
                        headers=b.headers(), timeout=T)
    assert none.status_code == 404 and none.json() == {"code": "NoTaskLogError", "message": "Log of task is not found."}


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        try:  # a zombie is not running any more
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                continue
        except OSError:
            continue
        alive.append(pid)
    return alive


def test_stop_kills_the_whole_process_group(local_backend, tmp_path):
    b = local_backend
    name = unique_job_name("stop")
    pidfile = tmp_path / "pids"
    job = simple_job(name, ["sleep 300 &", f"echo $$ $! > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}", "sleep 300"])
    assert b.submit(job).status_code == 202
    b.wait(name, ("RUNNING",))
    pids = [int(p) for p in wait_for_file(pidfile).split()]
    assert _pids_alive(pids) == pids
    pgid = os.getpgid(pids[0])
    assert pgid == pids[0] and pgid != os.getpgid(0)  # its own process group
    resp = requests.put(f"{b.api}/jobs/{b.user}~{name}/executionType", json={"value": "STOP"},
                        headers=b.headers(), timeout=T)
    assert resp.status_code == 202
    detail = b.wait(name, ("STOPPED",), timeout=30)
    status = detail["jobStatus"]
    assert status["executionType"] == "STOP" and status["appExitCode"] == -210
    assert detail["taskRoles"]["main"]["taskStatuses"][0]["taskState"] == "STOPPED"
    deadline = time.monotonic() + 10
    while _pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pids_alive(pids) == []
    # the group itself disappears once init has reaped the orphaned children
    with pytest.raises(ProcessLookupError):
        while time.monotonic() < deadline + 10:
            os.killpg(pgid, 0)
            time.sleep(0.05)
    # stopping a finished job is accepted and changes nothing
    again = requests.put(f"{b.api}/jobs/{b.user}~{name}/executionType", json={"value": "STOP"},
                         headers=b.headers(), timeout=T)
    assert again.status_code == 202 and b.job(name)["jobStatus"]["state"] == "STOPPED"
    bad = requests.put(f"{b.api}/jobs/{b.user}~{name}/executionType", json={"value": "PAUSE"},
                       headers=b.headers(), timeout=T)
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParametersError"


def test_reused_name_is_409_even_after_the_job_finished(local_backend):
    b = local_backend
    name = unique_job_name("dup")
    job = simple_job(name, ["sleep 2"])
    assert b.submit(job).status_code == 202
    running = b.submit(job)
    assert running.status_code == 409
    assert running.json() == {"code": "ConflictJobError", "message": f"Job {b.user}~{name} already exists."}
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    finished = b.submit(job)
    assert finished.status_code == 409 and finished.json()["code"] == "ConflictJobError"


def test_unknown_job_is_404_no_job_error(local_backend):
    b = local_backend
    fw = f"{b.user}~does-not-exist"
    for method, path, body in (("GET", f"/jobs/{fw}", None), ("GET", f"/jobs/{fw}/config", None),
                               ("PUT", f"/jobs/{fw}/executionType", {"value": "STOP"}),
                               ("GET", f"/jobs/{fw}/events", None), ("GET", f"/jobs/{fw}/attempts/0", None)):
        resp = requests.request(method, b.api + path, json=body, headers=b.headers(), timeout=T)
        assert resp.status_code == 404, (path, resp.text)
        assert resp.json() == {"code": "NoJobError", "message": f"Job {fw} is not found."}
    ssh = requests.get(f"{b.api}/jobs/{fw}/ssh", headers=b.headers(), timeout=T)
    assert ssh.status_code == 404 and ssh.json()["code"] == "NoJobSshInfoError"


def test_invalid_protocol_is_400_with_the_validators_messages(local_backend):
    b = local_backend
    bad = simple_job(unique_job_name("bad"), ["true"])
    bad["taskRoles"]["main"]["resourcePerInstance"]["cpu"] = "two"
    bad["unknownKey"] = 1
    resp = b.submit(bad)
    assert resp.status_code == 400 and resp.json()["code"] == "InvalidProtocolError"
    assert "cpu" in resp.json()["message"] and "unknownKey" in resp.json()["message"]
    broken = b.submit("protocolVersion: 2\nname: [unclosed\n")
    assert broken.status_code == 400 and broken.json()["code"] == "InvalidProtocolError"
    vc = simple_job(unique_job_name("vc"), ["true"])
    vc["defaults"] = {"virtualCluster": "gpu-vc"}
    refused = b.submit(vc)
    assert refused.status_code == 403 and refused.json()["code"] == "ForbiddenUserError"


def test_config_comes_back_with_secrets_masked(local_backend):
    b = local_backend
    name = unique_job_name("secret")
    secret_value = "s3cr3t-" + name
    job = build_protocol(JobSpec(name=name, exact_name=True, image="10.0.0.5:5000/team/img:1", commands=["true"],
                                 registry_auth=("bob", secret_value, "10.0.0.5:5000")))
    job["secrets"]["other"] = "another-" + secret_value
    assert b.submit(job).status_code == 202
    resp = requests.get(f"{b.api}/jobs/{b.user}~{name}/config", headers=b.headers(), timeout=T)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/yaml")
    config = yaml.safe_load(resp.text)
    assert config["secrets"] == "******"
    assert config["prerequisites"][0]["auth"]["password"] == "<% $secrets.registry_password %>" or \
        "secrets" in config["prerequisites"][0]["auth"]["password"]
    assert secret_value not in resp.text
    assert config["name"] == name and config["taskRoles"] == job["taskRoles"]
    b.wait(name)
    detail = requests.get(f"{b.api}/jobs/{b.user}~{name}", headers=b.headers(), timeout=T)
    assert secret_value not in detail.text
    # the secret never reaches the backend's disk either
    for path in b.data_dir.rglob("*"):
        if path.is_file():
            assert secret_value.encode() not in path.read_bytes(), path


def test_completion_policy_and_retries(local_backend):
    b = local_backend
    failing = unique_job_name("fails")
    assert b.submit(simple_job(failing, ["echo attempt", "exit 3"], taskRetryCount=1)).status_code == 202
    detail = b.wait(failing)
    status = detail["jobStatus"]
    task = detail["taskRoles"]["main"]["taskStatuses"][0]
    assert status["state"] == "FAILED" and status["appExitCode"] == 3
    assert task["containerExitCode"] == 3 and task["retries"] == 1 and task["attemptId"] == 1
    assert "exited with code 3" in task["containerExitDiagnostics"]
    assert b.log_text(failing, "main", task_attempt=1) == "attempt\n"
    attempts = requests.get(f"{b.api}/jobs/{b.user}~{failing}/attempts/0/taskRoles/main/taskIndex/0/attempts",
                            headers=b.headers(), timeout=T).json()
    assert [a["attemptId"] for a in attempts["attempts"]] == [1, 0]

    retried = unique_job_name("jobretry")
    job = simple_job(retried, ["exit 5"])
    job["jobRetryCount"] = 2
    assert b.submit(job).status_code == 202
    detail = b.wait(retried)
    assert detail["jobStatus"]["state"] == "FAILED" and detail["jobStatus"]["retries"] == 2
    assert detail["jobStatus"]["attemptId"] == 2
    first = requests.get(f"{b.api}/jobs/{b.user}~{retried}/attempts/0", headers=b.headers(), timeout=T).json()
    assert first["jobStatus"]["attemptId"] == 0 and first["jobStatus"]["state"] == "FAILED"

    # minSucceededInstances: 1 of 2 -> the job succeeds as soon as one task does; the other is stopped
    early = unique_job_name("early")
    job = simple_job(early, ['if [ "$PAI_TASK_INDEX" = 0 ]; then true; else sleep 300; fi'], instances=2,
                     completion={"minSucceededInstances": 1})
    assert b.submit(job).status_code == 202
    detail = b.wait(early, timeout=30)
    states = sorted(t["taskState"] for t in detail["taskRoles"]["main"]["taskStatuses"])
    assert detail["jobStatus"]["state"] == "SUCCEEDED" and states == ["STOPPED", "SUCCEEDED"]

    # minFailedInstances: -1 never fails the job on a task failure
    tolerant = unique_job_name("tolerant")
    job = simple_job(tolerant, ['[ "$PAI_TASK_INDEX" = 0 ] && exit 1; true'], instances=2,
                     completion={"minFailedInstances": -1, "minSucceededInstances": -1})
    assert b.submit(job).status_code == 202
    assert b.wait(tolerant)["jobStatus"]["state"] == "SUCCEEDED"


def test_storages_are_reachable_by_env_var_and_mount_path(local_backend, tmp_path):
    b = local_backend
    (b.data_dir / "storages" / "team-data").mkdir(parents=True, exist_ok=True)
    (b.data_dir / "storages" / "team-data" / "hello.txt").write_text("shared\n")
    listed = requests.get(f"{b.api}/storages", headers=b.headers(), timeout=T).json()["storages"]
    assert {"name": "team-data", "share": True, "volumeName": "team-data-volume", "default": False} in listed
    name = unique_job_name("storage")
    mount = "mnt/team"  # relative: in the task's folder (absolute ones need --mount-root, see test_local_hardening)
    job = simple_job(name, ["cat $PAI_STORAGE_TEAM_DATA_PATH/hello.txt", f"cat {mount}/hello.txt",
                            f"echo written > {mount}/out.txt"])
    job["extras"] = {"storages": [{"name": "team-data", "mountPath": mount}]}
    assert b.submit(job).status_code == 202
    assert b.wait(name)["jobStatus"]["state"] == "SUCCEEDED"
    assert b.log_text(name, "main") == "shared\nshared\n"
    assert (b.data_dir / "storages" / "team-data" / "out.txt").read_text() == "written\n"
    missing = simple_job(unique_job_name("nostorage"), ["true"])
    missing["extras"] = {"storages": [{"name": "nope"}]}
    resp = b.submit(missing)
    assert resp.status_code == 404 and resp.json() == {"code": "NoStorageError", "message": "Storage nope is not found."}


def test_events_say_what_the_backend_did(local_backend):
    b = local_backend
    name = unique_job_name("events")
    job = simple_job(name, ["true"])
    job["taskRoles"]["main"]["resourcePerInstance"]["gpu"] = 2
    assert b.submit(job).status_code == 202
    b.wait(name)
    events = requests.get(f"{b.api}/jobs/{b.user}~{name}/events", headers=b.headers(), timeout=T).json()
    assert events["totalCount"] == len(events["data"]) >= 3
    messages = " ".join(e["message"] for e in events["data"])
    assert "recorded, not run" in messages and "no GPU was given" in messages and "started" in messages
    warnings = requests.get(f"{b.api}/jobs/{b.user}~{name}/events", params={"type": "Warning"},
                            headers=b.headers(), timeout=T).json()
    assert warnings["data"] and all(e["type"] == "Warning" for e in warnings["data"])
