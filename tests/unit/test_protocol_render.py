"""Commands and registry auth are rendered as the OpenPAI rest-server renders them.

The last test replays jobs that were run through the rest-server's own validate+render
code (node, the server's middleware, its ajv/mustache/js-yaml versions); the file
tests/unit/data/protocol_server_cases.json holds the server's verdicts and outputs."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol import (
    parse_protocol,
    protocol_errors,
    render_auth,
    render_commands,
    render_entrypoints,
    render_template,
)

CASES = json.loads((Path(__file__).parent / "data" / "protocol_server_cases.json").read_text())["cases"]

JOB = {
    "protocolVersion": 2,
    "name": "render_job",
    "type": "job",
    "parameters": {"lr": 0.01, "epochs": 10, "flag": True, "whole": 2.0, "tags": ["a", "b"],
                   "nothing": None, "nested": {"k": "v"}, "text": "x y"},
    "secrets": {"pw": "s3cret-value", "user": "robot"},
    "prerequisites": [
        {"name": "img", "type": "dockerimage", "uri": "10.0.0.5:5000/team/img:tag",
         "auth": {"username": "<% $secrets.user %>", "password": "<% $secrets.pw %>",
                  "registryuri": "10.0.0.5:5000"}},
        {"name": "code", "type": "script", "uri": "https://example.org/code.tgz", "plugin": "git"},
        {"name": "ds", "type": "data", "uri": ["nfs://a/x", "nfs://b/y"]},
        {"name": "res", "type": "output", "uri": "/mnt/out"},
    ],
    "taskRoles": {
        "worker": {
            "instances": 1, "dockerImage": "img", "script": "code", "data": "ds", "output": "res",
            "resourcePerInstance": {"cpu": 1, "memoryMB": 1024, "gpu": 0},
            "commands": ["  python train.py --lr <% $parameters.lr %> --epochs <% $parameters.epochs %>  ",
                         "echo <% $script.uri %> <% $data.uri[1] %> <% $output.uri %>"],
        },
        "ps": {
            "instances": 1, "dockerImage": "img",
            "resourcePerInstance": {"cpu": 1, "memoryMB": 1024, "gpu": 0},
            "commands": ["echo ps"],
        },
    },
    "deployments": [
        {"name": "prod", "taskRoles": {"worker": {"preCommands": [" pip install -r req.txt "],
                                                  "postCommands": ["echo done <% $parameters.text %>"]}}},
        {"name": "dev", "taskRoles": {"worker": {"preCommands": ["echo dev"]}}},
    ],
    "defaults": {"deployment": "prod"},
}


def test_the_fixture_job_is_valid():
    assert protocol_errors(JOB) == []


def test_deployment_pre_and_post_commands_wrap_the_commands():
    assert render_commands(JOB, "worker") == "\n".join([
        "pip install -r req.txt",
        "python train.py --lr 0.01 --epochs 10",
        "echo https://example.org/code.tgz nfs://b/y /mnt/out",
        "echo done x y",
    ])


def test_only_the_default_deployment_applies():
    job = copy.deepcopy(JOB)
    job["defaults"]["deployment"] = "dev"
    assert render_commands(job, "worker").splitlines()[0] == "echo dev"
    assert "echo done" not in render_commands(job, "worker")
    del job["defaults"]
    assert render_commands(job, "worker").splitlines()[0].startswith("python train.py")


def test_a_role_the_deployment_does_not_name_is_unchanged():
    assert render_commands(JOB, "ps") == "echo ps"
    assert render_entrypoints(JOB) == {"worker": render_commands(JOB, "worker"), "ps": "echo ps"}


def test_secrets_are_never_rendered_into_commands():
    job = copy.deepcopy(JOB)
    job["taskRoles"]["ps"]["commands"] = ["login <% $secrets.pw %> <% $secrets.user %>"]
    rendered = render_commands(job, "ps")
    assert "s3cret-value" not in rendered and "robot" not in rendered
    assert rendered == "login <% $secrets.pw %> <% $secrets.user %>"


def test_registry_auth_is_rendered_with_secrets():
    assert render_auth(JOB) == {"img": {"username": "robot", "password": "s3cret-value",
                                        "registryuri": "10.0.0.5:5000"}}


def test_auth_with_an_unknown_secret_keeps_the_reference():
    job = copy.deepcopy(JOB)
    job["prerequisites"][0]["auth"]["password"] = "<% $secrets.missing %>"
    del job["secrets"]["pw"]
    assert render_auth(job)["img"]["password"] == "<% $secrets.missing %>"


@pytest.mark.parametrize("template,expected", [
    ("<% $parameters.missing %>", "<% $parameters.missing %>"),         # unknown: written back
    ("<%$parameters.missing%>", "<% $parameters.missing %>"),           # with normalised spacing
    ("<% $parameters.tags[1] %>", "b"),                                 # [n] is .n
    ("<% $parameters.tags %>", "a,b"),                                  # arrays join with commas
    ("<% $parameters.flag %>", "true"),
    ("<% $parameters.whole %>", "2"),                                   # JavaScript numbers
    ("<% $parameters.lr %>", "0.01"),
    ("<% $parameters.nothing %>", "<% $parameters.nothing %>"),         # null counts as missing
    ("<% $parameters.nested %>", "[object Object]"),
    ("<% $parameters.text.length %>", "3"),
    ("<% lr %>", "<% lr %>"),                                           # names need their $scope
    ("a <% #sec %>gone<% /sec %> b", "a  b"),                           # sections vanish
    ("a\n  <% ! note %>  \nb", "a\nb"),                                 # standalone tag lines go
    ("x <% &$parameters.text %> y", "x  y"),                            # unescaped tags vanish
    ("<%=[[ ]]=%>[[ $parameters.lr ]] <% $parameters.lr %>", "0.01 <% $parameters.lr %>"),
    ("\ufeff  text \u00a0", "text"),                                    # JavaScript trim
    ("", ""),
])
def test_template_rules(template, expected):
    view = {"$parameters": JOB["parameters"]}
    assert render_template(template, view) == expected


def test_big_and_small_numbers_print_as_javascript_does():
    view = {"$parameters": {"big": 1e21, "small": 1e-7, "int": 123456789012, "neg": -0.5}}
    out = render_template("<% $parameters.big %> <% $parameters.small %> <% $parameters.int %> "
                          "<% $parameters.neg %>", view)
    assert out == "1e+21 1e-7 123456789012 -0.5"


def test_a_role_without_script_finds_no_script():
    job = copy.deepcopy(JOB)
    job["taskRoles"]["ps"]["commands"] = ["echo <% $script.uri %>"]
    assert render_commands(job, "ps") == "echo <% $script.uri %>"


def test_parameters_are_not_rendered_recursively():
    job = copy.deepcopy(JOB)
    job["parameters"]["a"] = "<% $parameters.lr %>"
    job["taskRoles"]["ps"]["commands"] = ["echo <% $parameters.a %>"]
    assert render_commands(job, "ps") == "echo <% $parameters.lr %>"


def test_unknown_role_is_a_one_line_error():
    with pytest.raises(InvalidInputError) as info:
        render_commands(JOB, "nope")
    assert "nope" in str(info.value) and "worker" in str(info.value)


def test_bad_template_is_an_invalid_input_error():
    job = copy.deepcopy(JOB)
    job["taskRoles"]["ps"]["commands"] = ["echo <% oops"]
    with pytest.raises(InvalidInputError) as info:
        render_commands(job, "ps")
    assert "Unclosed tag" in str(info.value)


def test_a_bad_auth_template_never_shows_its_text():
    job = copy.deepcopy(JOB)
    job["prerequisites"][0]["auth"]["password"] = "hunter2 <% $secrets.pw"
    with pytest.raises(InvalidInputError) as info:
        render_auth(job)
    assert "hunter2" not in str(info.value)
    assert all("hunter2" not in line for line in protocol_errors(job))


def test_the_corpus_covers_both_verdicts_and_templates():
    assert sum(c["accepted"] for c in CASES) >= 100
    assert sum(not c["accepted"] for c in CASES) >= 100
    assert sum("<%" in json.dumps(c.get("entrypoints", {})) for c in CASES) >= 20
    assert sum(bool(c.get("auth")) for c in CASES) >= 20


@pytest.mark.parametrize("index", range(len(CASES)))
def test_same_verdict_and_output_as_the_rest_server(index):
    case = CASES[index]
    errors = protocol_errors(case["yaml"])
    if not case["accepted"]:
        assert errors, f"the server refused this job ({case['server_error']}), we accepted it"
        return
    assert errors == []
    job = parse_protocol(case["yaml"])
    assert render_entrypoints(job) == case["entrypoints"]
    assert render_auth(job) == case["auth"]
