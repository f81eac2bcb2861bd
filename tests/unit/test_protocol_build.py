"""Building jobs from a JobSpec, and the helpers that edit or show jobs."""
from __future__ import annotations

import copy
import re

import pytest
import yaml

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol import (
    MASK,
    MAX_JOB_NAME,
    SSH_PLUGIN_KEY,
    JobSpec,
    add_ssh_plugin,
    add_storages,
    apply_overrides,
    build_protocol,
    dump_protocol,
    job_has_ssh,
    mask_secrets,
    parse_protocol,
    protocol_errors,
    render_auth,
    render_commands,
    ssh_user_keys,
    unique_job_name,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0sZ3m0b1d2e3f4g5h6i7j8k9l0m1n2o3p4q5r6s7t me@laptop"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 other@host"


def full_spec(**changes) -> JobSpec:
    values = dict(name="My Training run!", image="127.0.0.1:5000/team/torch:2.1",
                  commands=["python train.py --epochs 3", "echo done"], gpu=2, cpu=8, memory_mb=16384,
                  instances=2, virtual_cluster="vc_a", retry=1,
                  storages=[("data", None), ("scratch", "/scratch")], ssh_public_key=KEY,
                  registry_auth=("robot", "p@ss word", "127.0.0.1:5000"), task_role="trainer",
                  keep_alive=True, parameters={"lr": 0.1}, ports={"tb": 1}, shm_mb=512, task_retry=2,
                  description="a test job")
    values.update(changes)
    return JobSpec(**values)


def test_minimal_spec_builds_a_valid_job():
    job = build_protocol(JobSpec(name="hello", image="ubuntu:22.04", commands=["echo hi"]))
    assert protocol_errors(job) == []
    assert job["protocolVersion"] == 2 and job["type"] == "job"
    assert re.fullmatch(r"hello_[a-z0-9]{8}", job["name"])
    role = job["taskRoles"]["taskrole"]
    assert role["resourcePerInstance"] == {"cpu": 1, "memoryMB": 4096, "gpu": 0}
    assert role["instances"] == 1 and role["commands"] == ["echo hi"]
    assert job["prerequisites"] == [{"name": "docker_image_0", "type": "dockerimage", "uri": "ubuntu:22.04"}]
    assert job["defaults"] == {"virtualCluster": "default"}
    assert job["jobRetryCount"] == 0
    assert "extras" not in job and "secrets" not in job


def test_full_spec_builds_what_the_portal_would():
    job = build_protocol(full_spec())
    assert protocol_errors(job) == []
    role = job["taskRoles"]["trainer"]
    assert role["resourcePerInstance"] == {"cpu": 8, "memoryMB": 16384, "gpu": 2, "ports": {"tb": 1}}
    assert role["instances"] == 2 and role["taskRetryCount"] == 2
    assert role["extraContainerOptions"] == {"shmMB": 512}
    assert role["commands"] == ["python train.py --epochs 3", "echo done", "sleep infinity"]
    image = job["prerequisites"][0]
    assert image["uri"] == "127.0.0.1:5000/team/torch:2.1"  # the registry host stays in the uri
    assert image["auth"] == {"username": "robot", "password": "<% $secrets.registry_password %>",
                             "registryuri": "127.0.0.1:5000"}
    assert job["secrets"] == {"registry_password": "p@ss word"}
    assert job["extras"]["storages"] == [{"name": "data", "mountPath": "/mnt/data"},
                                         {"name": "scratch", "mountPath": "/scratch"}]
    assert job["extras"][SSH_PLUGIN_KEY] == [
        {"plugin": "ssh", "parameters": {"jobssh": True, "userssh": {"type": "custom", "value": KEY}}}]
    assert job["defaults"]["virtualCluster"] == "vc_a" and job["jobRetryCount"] == 1
    assert job["parameters"] == {"lr": 0.1} and job["description"] == "a test job"
    assert job["name"].startswith("My_Training_run_")


def test_the_password_reaches_auth_but_never_the_commands():
    job = build_protocol(full_spec(commands=["echo <% $secrets.registry_password %>"]))
    assert render_auth(job)["docker_image_0"]["password"] == "p@ss word"
    assert "p@ss word" not in render_commands(job, "trainer")


def test_spec_repr_hides_the_registry_password():
    assert "p@ss word" not in repr(full_spec())


def test_exact_name_is_kept_and_checked():
    spec = JobSpec(name="fixed-name_1", image="i", commands=["x"], exact_name=True)
    assert build_protocol(spec)["name"] == "fixed-name_1"
    with pytest.raises(InvalidInputError):
        build_protocol(JobSpec(name="bad name", image="i", commands=["x"], exact_name=True))


@pytest.mark.parametrize("changes,word", [
    (dict(image=""), "image"),
    (dict(commands=[], keep_alive=False), "commands"),
    (dict(commands=["  "], keep_alive=False), "commands"),
    (dict(gpu=-1), "gpu"),
    (dict(gpu=1.5), "gpu"),
    (dict(cpu=True), "cpu"),
    (dict(instances=0), "instances"),
    (dict(retry=-2), "retry"),
    (dict(task_role="my-role"), "task role"),
    (dict(storages=[("", None)]), "storage"),
    (dict(storages=[("d", "relative/path")]), "absolute"),
    (dict(ssh_public_key="not a key"), "public key"),
    (dict(ssh_public_key="-----BEGIN OPENSSH PRIVATE KEY-----"), "public key"),
    (dict(registry_auth=("only-user",)), "registry_auth"),
    (dict(registry_auth=("u", "pw ", "r")), "whitespace"),
    (dict(registry_auth=("u<%", "pw", "r")), "username"),
    (dict(ports={"bad-port": 1}), "port"),
    (dict(virtual_cluster=""), "virtual_cluster"),
])
def test_bad_spec_values_are_one_line_errors(changes, word):
    with pytest.raises(InvalidInputError) as info:
        build_protocol(full_spec(**changes))
    assert word in str(info.value)
    assert "\n" not in str(info.value)


def test_values_the_server_cannot_render_are_refused_up_front():
    """The server's template cache is a plain JavaScript object: a value that is exactly
    'constructor' crashes its submit. Found by differential fuzzing against it."""
    with pytest.raises(InvalidInputError) as info:
        build_protocol(full_spec(registry_auth=("u", "pw", "constructor")))
    assert "exactly 'constructor'" in str(info.value)
    with pytest.raises(InvalidInputError):
        build_protocol(JobSpec(name="n", image="i", commands=["toString"]))


def test_keep_alive_with_no_commands_still_has_one():
    job = build_protocol(JobSpec(name="n", image="i", commands=[], keep_alive=True))
    assert job["taskRoles"]["taskrole"]["commands"] == ["sleep infinity"]


# ----------------------------------------------------------------- names

@pytest.mark.parametrize("stem,prefix", [
    ("train", "train_"), ("my job/v2", "my_job_v2_"), ("", "job_"), ("!!!", "job_"),
    ("ünïcode", "n_code_"), ("a-b_c", "a-b_c_"),
])
def test_unique_job_name_sanitises(stem, prefix):
    name = unique_job_name(stem)
    assert name.startswith(prefix)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", name)


def test_unique_job_names_differ_and_fit():
    names = {unique_job_name("x") for _ in range(500)}
    assert len(names) == 500
    long = unique_job_name("y" * 1000)
    assert len(long) <= MAX_JOB_NAME
    assert protocol_errors(build_protocol(JobSpec(name="y" * 1000, image="i", commands=["x"]))) == []


# ----------------------------------------------------------------- masking

def test_mask_secrets_hides_secret_values_as_the_server_does():
    job = build_protocol(full_spec())
    masked = mask_secrets(job)
    assert masked["secrets"] == MASK
    assert "p@ss word" not in dump_protocol(masked)
    assert masked["prerequisites"][0]["auth"]["password"] == "<% $secrets.registry_password %>"
    assert job["secrets"] == {"registry_password": "p@ss word"}  # the original is untouched


def test_mask_secrets_also_hides_a_password_written_in_clear():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    job["prerequisites"][0]["auth"] = {"username": "u", "password": "clear-text", "registryuri": "r"}
    masked = mask_secrets(job)
    assert masked["prerequisites"][0]["auth"]["password"] == MASK
    assert masked["prerequisites"][0]["auth"]["username"] == "u"
    assert "secrets" not in masked


# ----------------------------------------------------------------- ssh

def test_job_has_ssh_as_the_portal_decides():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    assert not job_has_ssh(job)
    job["extras"] = {SSH_PLUGIN_KEY: [{"plugin": "ssh", "parameters": {"jobssh": True}}]}
    assert not job_has_ssh(job)  # jobssh alone: containers reach each other, users cannot
    job["extras"][SSH_PLUGIN_KEY][0]["parameters"]["userssh"] = {}
    assert not job_has_ssh(job)
    job["extras"][SSH_PLUGIN_KEY][0]["parameters"]["userssh"] = {"type": "custom", "value": ""}
    assert job_has_ssh(job)  # a non-empty userssh object, as the portal's isEmpty test
    assert ssh_user_keys(job) == []


def test_add_ssh_plugin_creates_and_merges():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    returned = add_ssh_plugin(job, KEY + "\n")
    assert returned is job
    assert job_has_ssh(job) and ssh_user_keys(job) == [KEY]
    add_ssh_plugin(job, KEY)  # idempotent
    assert ssh_user_keys(job) == [KEY]
    add_ssh_plugin(job, KEY2)
    assert ssh_user_keys(job) == [KEY, KEY2]
    entries = job["extras"][SSH_PLUGIN_KEY]
    assert len(entries) == 1 and entries[0]["parameters"]["userssh"]["value"] == f"{KEY}\n{KEY2}"
    assert protocol_errors(job) == []


def test_add_ssh_plugin_keeps_other_plugins_and_settings():
    job = parse_protocol(open("/work/shared/reference/job-examples/horovod-pytorch-synthetic-benchmark.yaml").read())
    job["extras"][SSH_PLUGIN_KEY].insert(0, {"plugin": "tensorboard", "parameters": {"port": 1}})
    add_ssh_plugin(job, KEY)
    plugins = job["extras"][SSH_PLUGIN_KEY]
    assert plugins[0]["plugin"] == "tensorboard"
    assert plugins[1]["parameters"] == {"jobssh": True, "sshbarrier": True,
                                        "userssh": {"type": "custom", "value": KEY}}
    assert protocol_errors(job) == []


@pytest.mark.parametrize("bad", ["", "AAAA", f"{KEY}\n{KEY2}", "# only a comment"])
def test_add_ssh_plugin_refuses_what_is_not_one_public_key(bad):
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    with pytest.raises(InvalidInputError):
        add_ssh_plugin(job, bad)


# ----------------------------------------------------------------- storages

def test_add_storages_defaults_and_updates():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    add_storages(job, [("data", None), "home", {"name": "x", "mountPath": "/x"}])
    assert job["extras"]["storages"] == [{"name": "data", "mountPath": "/mnt/data"},
                                         {"name": "home", "mountPath": "/mnt/home"},
                                         {"name": "x", "mountPath": "/x"}]
    add_storages(job, [("data", "/data")])
    assert job["extras"]["storages"][0] == {"name": "data", "mountPath": "/data"}
    assert protocol_errors(job) == []


def test_add_storages_empty_list_means_the_user_defaults():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    add_storages(job, [])
    assert job["extras"]["storages"] == []


# ----------------------------------------------------------------- overrides

def test_overrides_replace_fields_of_a_yaml_job():
    job = parse_protocol(open("/work/shared/reference/job-examples/tensorflow-cifar10.yaml").read())
    before = copy.deepcopy(job)
    apply_overrides(job, image="127.0.0.1:5000/tf:2", gpu=0, cpu=2, memory_mb=2048, instances=3,
                    virtual_cluster="vc_b", retry=2, storages=[("data", None)], ssh_public_key=KEY,
                    keep_alive=True, name="cifar_override")
    assert protocol_errors(job) == []
    assert job["name"] == "cifar_override"
    for role in job["taskRoles"].values():
        assert role["resourcePerInstance"]["gpu"] == 0 and role["resourcePerInstance"]["cpu"] == 2
        assert role["resourcePerInstance"]["memoryMB"] == 2048 and role["instances"] == 3
        assert role["commands"][-1] == "sleep infinity"
        image = next(p for p in job["prerequisites"] if p["name"] == role["dockerImage"])
        assert image["uri"] == "127.0.0.1:5000/tf:2"
    assert job["defaults"]["virtualCluster"] == "vc_b" and job["jobRetryCount"] == 2
    assert job["extras"]["storages"] == [{"name": "data", "mountPath": "/mnt/data"}]
    assert job_has_ssh(job)
    assert len(job["prerequisites"]) == len(before["prerequisites"])  # image changed in place


def test_overriding_one_role_of_a_shared_image_adds_a_prerequisite():
    job = parse_protocol(open("/work/shared/reference/job-examples/horovod-pytorch-synthetic-benchmark.yaml").read())
    apply_overrides(job, image="other:1", gpu=1, task_role="worker")
    assert protocol_errors(job) == []
    master, worker = job["taskRoles"]["master"], job["taskRoles"]["worker"]
    assert master["dockerImage"] == "horovod_official" and worker["dockerImage"] != "horovod_official"
    uris = {p["name"]: p["uri"] for p in job["prerequisites"]}
    assert uris[worker["dockerImage"]] == "other:1"
    assert uris["horovod_official"].startswith("horovod/horovod")
    assert master["resourcePerInstance"]["gpu"] == 4 and worker["resourcePerInstance"]["gpu"] == 1


def test_overrides_with_none_change_nothing_and_bad_values_are_refused():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"]))
    before = copy.deepcopy(job)
    assert apply_overrides(job) == before
    with pytest.raises(InvalidInputError):
        apply_overrides(job, gpu=-1)
    with pytest.raises(InvalidInputError):
        apply_overrides(job, task_role="nope", gpu=1)
    with pytest.raises(InvalidInputError):
        apply_overrides(job, name="has space")


def test_keep_alive_override_is_not_added_twice():
    job = build_protocol(JobSpec(name="n", image="i", commands=["x"], keep_alive=True))
    apply_overrides(job, keep_alive=True)
    assert job["taskRoles"]["taskrole"]["commands"] == ["x", "sleep infinity"]


# ----------------------------------------------------------------- YAML out and back

def test_dump_and_parse_round_trip_for_both_yaml_readers():
    job = build_protocol(full_spec(description="line one\nline two\n",
                                   parameters={"a": "yes", "b": "1e3", "c": "no", "d": "0x10", "e": "true",
                                               "f": 1.5, "g": None, "h": "01.5"}))
    text = dump_protocol(job)
    assert parse_protocol(text) == job             # as the rest-server's js-yaml reads it
    assert yaml.safe_load(text) == job             # as any PyYAML reader does
    assert "description: |" in text
    assert text.index("protocolVersion") < text.index("taskRoles")  # protocol order kept


def test_dump_of_every_example_round_trips():
    from pathlib import Path

    for path in sorted(Path("/work/shared/reference/job-examples").glob("*.yaml")):
        job = parse_protocol(path.read_text())
        assert parse_protocol(dump_protocol(job)) == job, path.name


def test_keep_alive_override_on_a_job_whose_commands_hold_null():
    """Found by the magics' property test: a YAML cell with ``commands: [null]`` crashed here."""
    from pai_magic.core.protocol import apply_overrides

    job = {"taskRoles": {"taskrole": {"commands": [None]}}}
    apply_overrides(job, keep_alive=True)
    assert job["taskRoles"]["taskrole"]["commands"][-1] == "sleep infinity"
