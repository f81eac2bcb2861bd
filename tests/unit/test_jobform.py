"""The one job form check (pai_magic.core.jobform): every refusal names its field and speaks
the person's words; a filled form and the job it builds go back and forth (clone, YAML import)."""
from __future__ import annotations

import pytest

from pai_magic.core import jobform
from pai_magic.core.errors import InvalidInputError, PaiError
from pai_magic.core.protocol import dump_protocol, parse_protocol, validate_protocol

OK = {"image": "ubuntu:22.04", "commands": "echo hi"}
API_WORDS = ("spec.", "image=", "{\"url\"", "memory_mb", "virtual_cluster", "protocol")


@pytest.mark.parametrize("change,field", [
    ({"image": "Not A Valid Image!!"}, "image"),
    ({"image": ""}, "image"),
    ({"image": "bad host!/x:1"}, "image"),
    ({"image": "UPPER/case"}, "image"),
    ({"commands": ""}, "commands"),
    ({"commands": [1, 2]}, "commands"),
    ({"name": "a b"}, "name"),
    ({"name": "x" * 61}, "name"),
    ({"gpu": -1}, "gpu"),
    ({"gpu": "two"}, "gpu"),
    ({"gpu": True}, "gpu"),
    ({"cpu": 0}, "cpu"),
    ({"instances": 0}, "instances"),
    ({"retry": 10 ** 9}, "retry"),
    ({"memory": "8X"}, "memory"),
    ({"memoryMB": 0}, "memoryMB"),
    ({"memory": "1G", "memoryMB": 1024}, "memory"),
    ({"virtualCluster": "a b"}, "virtualCluster"),
    ({"storages": ["data:relative"]}, "storages"),
    ({"storages": ["bad name"]}, "storages"),
    ({"ssh": "yes"}, "ssh"),
    ({"keepAlive": 1}, "keepAlive"),
    ({"gpus": 1}, None),
])
def test_each_refusal_names_its_field_in_plain_words(change, field):
    with pytest.raises(InvalidInputError) as caught:
        jobform.protocol_from_form({**OK, **change}, resolve_image=False)
    err = caught.value
    assert err.field == field
    text = str(err)
    assert "\n" not in text and len(text) < 300
    assert not any(word in text for word in API_WORDS), text
    assert text[0].isupper() or text[0] == "'", text  # a sentence, or the quoted value it is about


def test_a_good_form_builds_a_valid_job_with_every_option():
    job = jobform.protocol_from_form({
        "name": "train", "image": "127.0.0.1:5000/team/img:v1", "commands": ["python a.py", "python b.py"],
        "virtualCluster": "default", "gpu": 2, "cpu": "4", "memory": "8G", "instances": 2, "retry": 1,
        "storages": "data, scratch:/scratch", "keepAlive": True}, resolve_image=False)
    validate_protocol(job)
    role = job["taskRoles"]["taskrole"]
    assert role["resourcePerInstance"] == {"cpu": 4, "memoryMB": 8192, "gpu": 2}
    assert role["instances"] == 2 and job["jobRetryCount"] == 1
    assert role["commands"][-1] == "sleep infinity"
    assert job["extras"]["storages"] == [{"name": "data", "mountPath": "/mnt/data"},
                                         {"name": "scratch", "mountPath": "/scratch"}]
    assert job["name"].startswith("train_")


def test_form_round_trips_through_a_job_and_its_yaml():
    form = {"name": "clone_me", "image": "python:3.11", "commands": "echo 1\necho 2", "virtualCluster": "default",
            "gpu": 1, "cpu": 2, "memoryMB": 2048, "instances": 3, "retry": 2, "storages": ["data", "x:/y"],
            "ssh": False, "keepAlive": True}
    job = jobform.protocol_from_form(form, resolve_image=False)
    again = jobform.form_from_protocol(parse_protocol(dump_protocol(job)))
    assert again == form


def test_ssh_key_errors_point_at_the_ssh_field():
    def no_key() -> str:
        raise PaiError("No SSH key: run ssh-keygen.")

    with pytest.raises(PaiError) as caught:
        jobform.protocol_from_form({**OK, "ssh": True}, resolve_image=False, ssh_key=no_key)
    assert caught.value.field == "ssh"
    job = jobform.protocol_from_form({**OK, "ssh": True}, resolve_image=False,
                                     ssh_key=lambda: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQ test")
    assert "ssh" in str(job["extras"])


def test_yaml_jobs_get_the_same_image_check_and_overrides():
    job = jobform.protocol_from_form(OK, resolve_image=False)
    job["prerequisites"][0]["uri"] = "Not A Valid Image!!"
    with pytest.raises(InvalidInputError) as caught:
        jobform.check_job_images(job)
    assert caught.value.field == "image"
    job["prerequisites"][0]["uri"] = "<% $parameters.image %>"
    jobform.check_job_images(job)  # templated: the cluster renders it
    job = jobform.protocol_from_form(OK, resolve_image=False)
    jobform.apply_form(job, {"gpu": 3, "keepAlive": True, "name": "over"})
    assert job["taskRoles"]["taskrole"]["resourcePerInstance"]["gpu"] == 3
    assert job["name"].startswith("over_") and job["taskRoles"]["taskrole"]["commands"][-1] == "sleep infinity"
    with pytest.raises(InvalidInputError) as caught:
        jobform.apply_form(job, {"image": "Not A Valid Image!!"})
    assert caught.value.field == "image"
    assert jobform.overrides_from_form({}) == {}


def test_the_form_says_what_it_cannot_hold():
    job = jobform.protocol_from_form(OK, resolve_image=False)
    assert jobform.form_cannot_hold(job) is None
    ports = parse_protocol(dump_protocol(job))
    ports["taskRoles"]["taskrole"]["resourcePerInstance"]["ports"] = {"http": 1}
    assert "ports" in (jobform.form_cannot_hold(ports) or "")
    two = dict(job, taskRoles=dict(job["taskRoles"], other=job["taskRoles"]["taskrole"]))
    assert "2 task roles" in (jobform.form_cannot_hold(two) or "")
    assert "parameters" in (jobform.form_cannot_hold(dict(job, parameters={"x": 1})) or "")
