"""Properties over generated input: built jobs always validate, and the validator only
ever answers with lines, whatever it is given."""
from __future__ import annotations

import copy
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol import (
    MAX_JOB_NAME,
    JobSpec,
    build_protocol,
    dump_protocol,
    mask_secrets,
    parse_protocol,
    protocol_errors,
    render_auth,
    render_commands,
    ssh_user_keys,
    unique_job_name,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

role_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
JS_MEMBERS = {"constructor", "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__",
              "__lookupSetter__", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable",
              "toLocaleString", "toString", "valueOf"}
# commands as people write them: anything but the template tag characters
command = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<%"), min_size=1,
                  max_size=80).filter(lambda s: s.strip() and s.strip() not in JS_MEMBERS)
# registry credentials as the cluster keeps them: no edge whitespace, no template tags
# (and not exactly a JavaScript Object member name such as "constructor": the server's
# template cache crashes on those, so build_protocol refuses them)
clean_text = plain_text.filter(lambda s: s == s.strip() and "<%" not in s and "%>" not in s
                               and s not in JS_MEMBERS)
counts = st.integers(min_value=0, max_value=10_000)
storage_names = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
mounts = st.none() | st.from_regex(r"/[a-z0-9/_-]{1,30}", fullmatch=True)
public_keys = st.builds(lambda kind, body, comment: f"{kind} {body} {comment}".strip(),
                        st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]),
                        st.from_regex(r"AAAA[A-Za-z0-9+/]{10,60}={0,2}", fullmatch=True),
                        st.from_regex(r"[a-z@.]{0,12}", fullmatch=True))
params = st.dictionaries(st.text(max_size=10), st.none() | st.booleans() | st.integers() | plain_text, max_size=4)

specs = st.builds(
    JobSpec,
    name=plain_text,
    image=st.text(min_size=1, max_size=60).filter(lambda s: s.strip()),
    commands=st.lists(command, min_size=1, max_size=5),
    gpu=counts, cpu=counts, memory_mb=counts,
    instances=st.integers(min_value=1, max_value=100),
    virtual_cluster=st.text(min_size=1, max_size=20),
    retry=st.integers(min_value=0, max_value=10),
    storages=st.lists(st.tuples(storage_names, mounts), max_size=3),
    ssh_public_key=st.none() | public_keys,
    registry_auth=st.none() | st.tuples(clean_text, clean_text, clean_text),
    task_role=role_names,
    keep_alive=st.booleans(),
    description=st.none() | plain_text,
    parameters=params,
    ports=st.dictionaries(role_names, st.integers(min_value=0, max_value=5), max_size=3),
    shm_mb=st.none() | counts,
    task_retry=st.none() | st.integers(min_value=0, max_value=5),
)


@SETTINGS
@given(specs)
def test_any_valid_spec_builds_a_job_the_server_accepts(spec):
    job = build_protocol(spec)
    assert protocol_errors(job) == []
    assert len(job["name"]) <= MAX_JOB_NAME
    # what is submitted is the YAML text: it must read back to the same job
    assert parse_protocol(dump_protocol(job)) == job
    rendered = render_commands(job, spec.task_role)
    assert rendered.split("\n")[-1 if spec.keep_alive else 0].strip()
    if spec.keep_alive:
        assert rendered.endswith("sleep infinity")
    if spec.ssh_public_key:
        assert ssh_user_keys(job) == [spec.ssh_public_key.strip()]


@SETTINGS
@given(specs, clean_text.filter(lambda s: len(s) >= 6))
def test_registry_password_reaches_auth_and_secrets_only(spec, password):
    spec.registry_auth = ("user", password, "127.0.0.1:5000")
    job = build_protocol(spec)
    assert render_auth(job)["docker_image_0"]["password"] == password
    assert job["secrets"] == {"registry_password": password}
    assert job["prerequisites"][0]["auth"]["password"] == "<% $secrets.registry_password %>"
    for role in job["taskRoles"]:
        assert render_commands(job, role) == render_commands(
            {**job, "secrets": {"registry_password": "other"}}, role)
    assert "******" in dump_protocol(mask_secrets(job))
    assert mask_secrets(job)["secrets"] == "******"


@SETTINGS
@given(specs, st.text(min_size=1, max_size=40))
def test_templates_in_commands_are_accepted_or_refused_up_front(spec, extra):
    """A command may hold any text: build either refuses it with a one-line error (the
    server's renderer would refuse it too) or returns a job that validates."""
    spec.commands = list(spec.commands) + ["echo <%" + extra]
    try:
        job = build_protocol(spec)
    except InvalidInputError as exc:
        assert "\n" not in str(exc) and exc.details
    else:
        assert protocol_errors(job) == []


@SETTINGS
@given(st.text(max_size=300))
def test_unique_job_name_is_always_legal(stem):
    name = unique_job_name(stem)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", name)
    assert len(name) <= MAX_JOB_NAME


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.integers() | st.booleans(), children, max_size=5),
    max_leaves=30,
)
key_names = st.sampled_from(["protocolVersion", "name", "type", "taskRoles", "prerequisites", "deployments",
                             "defaults", "parameters", "secrets", "extras", "jobRetryCount", "version",
                             "commands", "dockerImage", "resourcePerInstance", "auth", "uri", "worker",
                             "preCommands", "deployment", "script", "data", "output", "ports", "completion"])
protocol_like = st.recursive(
    json_like,
    lambda children: st.dictionaries(key_names, children, max_size=6) | st.lists(children, max_size=3),
    max_leaves=40,
)


def _check_lines(lines):
    assert isinstance(lines, list)
    for line in lines:
        assert isinstance(line, str) and line
        assert ": " in line
        assert "\n" not in line
        assert "internal error" not in line


@SETTINGS
@given(protocol_like)
def test_protocol_errors_only_returns_lines_for_any_structure(value):
    _check_lines(protocol_errors(value))


@SETTINGS
@given(st.text(max_size=400))
def test_protocol_errors_only_returns_lines_for_any_text(text):
    _check_lines(protocol_errors(text))


BASE_JOB = build_protocol(JobSpec(name="prop", image="img:1", commands=["echo <% $parameters.x %>"],
                                  parameters={"x": 1}, ssh_public_key="ssh-ed25519 AAAAC3Nza me",
                                  registry_auth=("u", "p", "r"), storages=[("d", None)]))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


ALL_PATHS = [p for p in _paths(BASE_JOB) if p]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), json_like), min_size=1, max_size=4))
def test_protocol_errors_only_returns_lines_for_a_damaged_job(edits):
    job = copy.deepcopy(BASE_JOB)
    for path, value in edits:
        node = job
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    lines = protocol_errors(job)
    _check_lines(lines)
    if not lines:  # whatever the validator accepts, the renderer can render
        for role in job["taskRoles"]:
            render_commands(job, role)
        render_auth(job)
