"""Validation accepts exactly what the OpenPAI rest-server accepts at submit.

Each negative case breaks one rule of the server's ajv schema (config/v2/protocol.js) or
of its submit middleware (middlewares/v2/protocol.js) in an otherwise valid job, and
checks the "path: message" line that names it."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol import parse_protocol, protocol_errors, validate_protocol

EXAMPLES = sorted(Path("/work/shared/reference/job-examples").glob("*.yaml"))
REFERENCE_SCHEMA = Path("/work/shared/reference/openpai-job-protocol-v2.schema.yaml")

BASE = {
    "protocolVersion": 2,
    "name": "unit_job",
    "type": "job",
    "prerequisites": [
        {"name": "img", "type": "dockerimage", "uri": "ubuntu:22.04"},
        {"name": "code", "type": "script", "uri": "https://example.org/code.tgz"},
        {"name": "ds", "type": "data", "uri": ["nfs://a", "nfs://b"]},
        {"name": "res", "type": "output", "uri": "/out"},
    ],
    "taskRoles": {
        "worker": {
            "instances": 1,
            "dockerImage": "img",
            "resourcePerInstance": {"cpu": 1, "memoryMB": 1024, "gpu": 0},
            "commands": ["echo hi"],
        }
    },
}


def job(**changes):
    """A deep copy of BASE; keys given as 'a.b.c' paths are set (value DELETE removes)."""
    result = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return result


DELETE = object()


def test_base_job_is_valid():
    assert protocol_errors(BASE) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_official_example_validates(path):
    text = path.read_text()
    assert protocol_errors(text) == []
    assert validate_protocol(parse_protocol(text))["name"]


def test_there_are_fourteen_examples():
    assert len(EXAMPLES) == 14


@pytest.mark.skipif(not REFERENCE_SCHEMA.exists(), reason="reference schema not present")
def test_reference_schema_is_stricter_than_the_server():
    """Why the project does not validate with the documentation schema: it refuses
    official examples that the server (and this validator) accepts."""
    import jsonschema

    document = yaml.safe_load(REFERENCE_SCHEMA.read_text())  # an OpenAPI file
    schema = {**document["components"]["schemas"]["JobProtocol"], "components": document["components"]}
    validator = jsonschema.Draft7Validator(schema)
    refused = [p.name for p in EXAMPLES if list(validator.iter_errors(yaml.safe_load(p.read_text())))]
    assert len(refused) >= 10, refused
    assert all(protocol_errors(p.read_text()) == [] for p in EXAMPLES)


# ----------------------------------------------------------------- accepted forms

@pytest.mark.parametrize("version", ["1.0", 1.0, 2, "v2-beta"])
def test_version_may_be_a_string_or_a_number(version):
    assert protocol_errors(job(version=version)) == []


@pytest.mark.parametrize("value", [2, "2", 2.0])
def test_protocol_version_2_as_number_or_string(value):
    assert protocol_errors(job(protocolVersion=value)) == []


def test_open_sections_accept_extra_keys():
    """defaults, deployments[], extras, script/data/output prerequisites and
    extraContainerOptions are open on the server."""
    j = job(defaults={"virtualCluster": "vc1", "anything": 1}, extras={"x": {"y": 1}})
    j["prerequisites"][1]["custom"] = "ok"
    j["prerequisites"][2]["more"] = [1]
    j["taskRoles"]["worker"]["extraContainerOptions"] = {"shmMB": 64, "infiniband": True}
    j["deployments"] = [{"name": "d", "taskRoles": {"worker": {"preCommands": ["a"]}}, "note": 1}]
    assert protocol_errors(j) == []


def test_ports_completion_and_retry_fields():
    j = job(taskRoles__worker__resourcePerInstance__ports={"http": 1, "ssh_x": 2},
            taskRoles__worker__completion={"minFailedInstances": None, "minSucceededInstances": -1},
            taskRoles__worker__taskRetryCount=3, jobRetryCount=0)
    assert protocol_errors(j) == []


def test_same_name_for_different_prerequisite_types_is_allowed():
    """The server keys prerequisites by type, then name."""
    j = job()
    j["prerequisites"].append({"name": "img", "type": "script", "uri": "s"})
    assert protocol_errors(j) == []


def test_integer_valued_float_counts_as_integer():
    """ajv's integer is any whole JavaScript number; js-yaml reads 1e3 as 1000."""
    assert protocol_errors(job(taskRoles__worker__resourcePerInstance__cpu=2.0)) == []
    text = yaml.safe_dump(BASE).replace("memoryMB: 1024", "memoryMB: 1e3")
    assert "1e3" in text
    assert protocol_errors(text) == []


# ----------------------------------------------------------------- schema rules

NEGATIVE = [
    ("unknown top-level key", job(foo=1), "foo: unknown key"),
    ("unknown task-role key", job(taskRoles__worker__gpus=1), "taskRoles.worker.gpus: unknown key"),
    ("task-role name with a dash", {**job(), "taskRoles": {"bad-name": BASE["taskRoles"]["worker"]}},
     "taskRoles.bad-name: invalid name"),
    ("task-role name starting with a digit", {**job(), "taskRoles": {"1st": BASE["taskRoles"]["worker"]}},
     "taskRoles.1st: invalid name"),
    ("no task roles", job(taskRoles={}), "taskRoles: must have at least 1 entry"),
    ("bad job name", job(name="my job"), "name: 'my job' must match"),
    ("job name with a trailing newline", job(name="job\n"), "name: 'job\\n' must match"),
    ("job name too long", job(name="a" * 256), "name: must be at most 255 characters"),
    ("non-integer gpu", job(taskRoles__worker__resourcePerInstance__gpu=0.5),
     "taskRoles.worker.resourcePerInstance.gpu: must be an integer"),
    ("string cpu", job(taskRoles__worker__resourcePerInstance__cpu="2"),
     "taskRoles.worker.resourcePerInstance.cpu: must be an integer"),
    ("boolean memoryMB", job(taskRoles__worker__resourcePerInstance__memoryMB=True),
     "taskRoles.worker.resourcePerInstance.memoryMB: must be an integer"),
    ("missing gpu", job(taskRoles__worker__resourcePerInstance__gpu=DELETE),
     "taskRoles.worker.resourcePerInstance.gpu: is required"),
    ("unknown resource key", job(taskRoles__worker__resourcePerInstance__disk=1),
     "taskRoles.worker.resourcePerInstance.disk: unknown key"),
    ("bad port name", job(taskRoles__worker__resourcePerInstance__ports={"my-port": 1}),
     "taskRoles.worker.resourcePerInstance.ports.my-port: invalid name"),
    ("non-integer port count", job(taskRoles__worker__resourcePerInstance__ports={"p": "1"}),
     "taskRoles.worker.resourcePerInstance.ports.p: must be an integer"),
    ("empty ports", job(taskRoles__worker__resourcePerInstance__ports={}),
     "taskRoles.worker.resourcePerInstance.ports: must have at least 1 entry"),
    ("empty commands", job(taskRoles__worker__commands=[]), "taskRoles.worker.commands: must have at least 1 command"),
    ("commands not a list", job(taskRoles__worker__commands="echo hi"), "taskRoles.worker.commands: must be a list"),
    ("non-string command", job(taskRoles__worker__commands=["ok", 3]), "taskRoles.worker.commands[1]: must be a string"),
    ("missing commands", job(taskRoles__worker__commands=DELETE), "taskRoles.worker.commands: is required"),
    ("missing dockerImage", job(taskRoles__worker__dockerImage=DELETE), "taskRoles.worker.dockerImage: is required"),
    ("zero instances", job(taskRoles__worker__instances=0), "taskRoles.worker.instances: must be >= 1"),
    ("negative job retry", job(jobRetryCount=-1), "jobRetryCount: must be >= 0"),
    ("non-integer task retry", job(taskRetryCount=1), "taskRetryCount: unknown key"),
    ("unknown completion key", job(taskRoles__worker__completion={"minSucceeded": 1}),
     "taskRoles.worker.completion.minSucceeded: unknown key"),
    ("shmMB not an integer", job(taskRoles__worker__extraContainerOptions={"shmMB": "64"}),
     "taskRoles.worker.extraContainerOptions.shmMB: must be an integer"),
    ("the schema's literal additionalProperties key",
     job(taskRoles__worker__extraContainerOptions={"additionalProperties": 1}),
     "taskRoles.worker.extraContainerOptions.additionalProperties: is not allowed here"),
    ("protocolVersion 1", job(protocolVersion=1), "protocolVersion: must be 2"),
    ("missing protocolVersion", job(protocolVersion=DELETE), "protocolVersion: is required"),
    ("type other than job", job(type="service"), "type: must be one of 'job'"),
    ("missing name", job(name=DELETE), "name: is required"),
    ("version as a list", job(version=[1]), "version: must be a string or a number"),
    ("parameters not a mapping", job(parameters=["a"]), "parameters: must be an object"),
    ("secrets not a mapping", job(secrets="pw"), "secrets: must be an object"),
    ("extras not a mapping", job(extras=[]), "extras: must be an object"),
    ("defaults.deployment not a string", job(defaults={"deployment": 1}), "defaults.deployment: must be a string"),
    ("empty prerequisites", job(prerequisites=[]), "prerequisites: must have at least 1 item"),
    ("prerequisite without type", job(prerequisites__0__type=DELETE), "prerequisites[0].type: is required"),
    ("prerequisite of unknown type", job(prerequisites__0__type="image"), "prerequisites[0].type: must be one of"),
    ("dockerimage without uri", job(prerequisites__0__uri=DELETE), "prerequisites[0].uri: is required"),
    ("dockerimage with an unknown key", job(prerequisites__0__tag="x"), "prerequisites[0].tag: unknown key"),
    ("dockerimage auth not a mapping", job(prerequisites__0__auth="x"), "prerequisites[0].auth: must be an object"),
    ("auth password not a string", job(prerequisites__0__auth={"password": 1}),
     "prerequisites[0].auth.password: must be a string"),
    ("data uri not a list", job(prerequisites__2__uri="nfs://a"), "prerequisites[2].uri: must be a list"),
    ("script uri not a string", job(prerequisites__1__uri=["a"]), "prerequisites[1].uri: must be a string"),
    ("prerequisite name with a space", job(prerequisites__1__name="my code"), "prerequisites[1].name: 'my code' must match"),
    ("prerequisite without a name", job(prerequisites__1__name=DELETE), "prerequisites[1].name: is required"),
    ("deployment without taskRoles", job(deployments=[{"name": "d"}]), "deployments[0].taskRoles: is required"),
    ("empty deployments", job(deployments=[]), "deployments: must have at least 1 item"),
    ("empty preCommands", job(deployments=[{"name": "d", "taskRoles": {"worker": {"preCommands": []}}}]),
     "deployments[0].taskRoles.worker.preCommands: must have at least 1 command"),
    ("unknown deployment task-role key",
     job(deployments=[{"name": "d", "taskRoles": {"worker": {"commands": ["x"]}}}]),
     "deployments[0].taskRoles.worker.commands: unknown key"),
    # the middleware's checks
    ("dockerImage naming an undeclared prerequisite", job(taskRoles__worker__dockerImage="nope"),
     "taskRoles.worker.dockerImage: prerequisite 'nope' does not exist"),
    ("dockerImage naming a script", job(taskRoles__worker__dockerImage="code"),
     "taskRoles.worker.dockerImage: 'code' is a script prerequisite, not a dockerimage one"),
    ("script naming an undeclared prerequisite", job(taskRoles__worker__script="nope"),
     "taskRoles.worker.script: prerequisite 'nope' does not exist"),
    ("script naming data", job(taskRoles__worker__script="ds"),
     "taskRoles.worker.script: 'ds' is a data prerequisite, not a script one"),
    ("data naming an output", job(taskRoles__worker__data="res"),
     "taskRoles.worker.data: 'res' is a output prerequisite, not a data one"),
    ("output naming an image", job(taskRoles__worker__output="img"),
     "taskRoles.worker.output: 'img' is a dockerimage prerequisite, not a output one"),
    ("task-role prerequisites naming nothing", job(taskRoles__worker__prerequisites=["code", "ghost"]),
     "taskRoles.worker.prerequisites[1]: prerequisite 'ghost' does not exist"),
    ("duplicate prerequisite names", {**job(), "prerequisites": BASE["prerequisites"] + [
        {"name": "code", "type": "script", "uri": "again"}]},
     "prerequisites[4].name: duplicate script prerequisite 'code'"),
    ("duplicate deployment names", job(deployments=[
        {"name": "d", "taskRoles": {"worker": {"preCommands": ["a"]}}},
        {"name": "d", "taskRoles": {"worker": {"postCommands": ["b"]}}}]),
     "deployments[1].name: duplicate deployment 'd'"),
    ("defaults.deployment missing", job(defaults={"deployment": "prod"}),
     "defaults.deployment: deployment 'prod' does not exist"),
    ("unclosed template tag", job(taskRoles__worker__commands=["echo <% $parameters.x"]),
     "taskRoles.worker.commands: Unclosed tag"),
    ("unclosed template section", job(taskRoles__worker__commands=["<% #x %> y"]),
     "taskRoles.worker.commands: Unclosed section"),
    ("unclosed tag in auth", job(prerequisites__0__auth={"password": "<% $secrets.pw"}),
     "prerequisites[0].auth.password: Unclosed tag"),
]


@pytest.mark.parametrize("broken,expected", [(c[1], c[2]) for c in NEGATIVE], ids=[c[0] for c in NEGATIVE])
def test_each_rule_is_enforced(broken, expected):
    errors = protocol_errors(broken)
    assert any(line.startswith(expected) for line in errors), errors
    with pytest.raises(InvalidInputError) as info:
        validate_protocol(broken)
    assert any(line.startswith(expected) for line in info.value.details)


def test_taskroles_must_be_a_mapping():
    """The server's schema has no type there and its middleware then fails on a list:
    refuse it with a message instead of a server error."""
    assert protocol_errors(job(taskRoles=[BASE["taskRoles"]["worker"]])) == [
        "taskRoles: must be an object (a mapping) of task role names to task roles"]


def test_names_with_a_newline_or_spaces_keep_every_error_on_one_line():
    """Found by the property test: a prerequisite named '\\n' was listed raw in another line's
    'declared ... prerequisites' and broke it in two. Odd names (and role keys) are quoted."""
    broken = job(prerequisites=[{"name": "\n", "type": "dockerimage", "uri": "u"},
                                {"name": "two words", "type": "dockerimage", "uri": "u"}])
    broken["taskRoles"]["bad\nrole"] = dict(broken["taskRoles"].pop("worker"), dockerImage="missing")
    errors = protocol_errors(broken)
    assert errors and all("\n" not in line for line in errors), errors
    assert ("taskRoles.'bad\\nrole'.dockerImage: prerequisite 'missing' does not exist "
            "(declared dockerimage prerequisites: '\\n', 'two words')") in errors, errors


def test_all_problems_are_listed_at_once():
    j = job(foo=1, name="bad name", taskRoles__worker__dockerImage="nope",
            taskRoles__worker__resourcePerInstance__gpu="1")
    errors = protocol_errors(j)
    assert len(errors) == 4
    assert all(": " in line for line in errors)


def test_error_lines_and_exception_are_one_line_each():
    j = job(foo=1, taskRoles__worker__commands=[])
    with pytest.raises(InvalidInputError) as info:
        validate_protocol(j)
    err = info.value
    assert "\n" not in str(err)
    assert "foo: unknown key" in str(err) or "commands" in str(err)
    assert "(and 1 more)" in str(err)
    assert err.code == "InvalidProtocolError"
    assert err.status == 400
    assert all("\n" not in line for line in err.details)


def test_validate_returns_the_job_and_accepts_text():
    text = yaml.safe_dump(BASE)
    assert validate_protocol(text) == BASE
    assert validate_protocol(BASE) is BASE


@pytest.mark.parametrize("value", [None, 5, "just text", [1, 2], True])
def test_a_document_that_is_not_a_mapping(value):
    errors = protocol_errors(value) if not isinstance(value, str) else protocol_errors(value)
    assert errors and errors[0].startswith("(root): must be an object")


# ----------------------------------------------------------------- YAML as js-yaml reads it

def test_yaml_syntax_error_names_the_line():
    text = "protocolVersion: 2\nname: x\ntaskRoles: [\n"
    with pytest.raises(InvalidInputError) as info:
        parse_protocol(text)
    assert "line 4" in str(info.value) or "line 3" in str(info.value)
    assert protocol_errors(text)[0].startswith("line ")


def test_duplicate_keys_are_an_error_as_in_js_yaml():
    text = "protocolVersion: 2\nname: a\nname: b\n"
    with pytest.raises(InvalidInputError) as info:
        parse_protocol(text)
    assert "line 3" in str(info.value)
    assert "duplicated mapping key 'name'" in str(info.value)


def test_merge_keys_may_override_without_being_duplicates():
    text = "base: &b {cpu: 1, gpu: 0}\nres:\n  <<: *b\n  cpu: 2\n"
    assert parse_protocol(text)["res"] == {"cpu": 2, "gpu": 0}


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_yaml_11_booleans_stay_strings(word):
    """js-yaml 3 only knows true/false: `name: no` is the job name "no"."""
    parsed = parse_protocol(f"name: {word}\nflag: true\nother: False\n")
    assert parsed == {"name": word, "flag": True, "other": False}


def test_numbers_as_js_yaml_reads_them():
    parsed = parse_protocol("a: 1e3\nb: 1.5\nc: 0x10\nd: 010\ne: 1_000\nf: .inf\ng: 01.5\nh: 2020-01-01\n")
    assert parsed["a"] == 1000.0 and parsed["b"] == 1.5 and parsed["c"] == 16
    assert parsed["d"] == 8 and parsed["e"] == 1000 and parsed["f"] == float("inf")
    assert parsed["g"] == "01.5"  # js-yaml: not a number (PyYAML would say 1.5)
    assert not isinstance(parsed["h"], str)


def test_mapping_keys_become_strings():
    parsed = parse_protocol("parameters:\n  1: a\n  true: b\n  null: c\n")
    assert parsed["parameters"] == {"1": "a", "true": "b", "null": "c"}


def test_non_utf8_bytes_and_empty_text():
    with pytest.raises(InvalidInputError):
        parse_protocol(b"\xff\xfe name: x")
    with pytest.raises(InvalidInputError) as info:
        parse_protocol("")
    assert "empty" in str(info.value)
    assert parse_protocol(yaml.safe_dump(BASE).encode()) == BASE


def test_multiple_documents_are_refused():
    with pytest.raises(InvalidInputError):
        parse_protocol("a: 1\n---\nb: 2\n")
