"""Build protocol v2 jobs from a small spec, and edit jobs the way the faces need.

A researcher types an image, a few shell lines and resources; this module turns that
into the protocol a cluster expects, with the conventions the OpenPAI portal uses (the
registry host kept in the image uri, the registry password passed through ``secrets``,
storages in ``extras.storages``, the ssh runtime plugin carrying a public key), so a job
built here looks to the cluster like one submitted from the portal.

The editing helpers (add_ssh_plugin, add_storages, apply_overrides) change the job in
place AND return it, so both ``job = f(job, ...)`` and ``f(job, ...)`` work;
mask_secrets returns a copy.
"""
from __future__ import annotations

import copy
import re
import secrets as _secrets
import string
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol.validate import protocol_errors

__all__ = ["JobSpec", "build_protocol", "unique_job_name", "mask_secrets", "add_ssh_plugin",
           "add_storages", "job_has_ssh", "ssh_user_keys", "apply_overrides",
           "SSH_PLUGIN_KEY", "MASK", "MAX_JOB_NAME"]

SSH_PLUGIN_KEY = "com.microsoft.pai.runtimeplugin"
MASK = "******"
MAX_JOB_NAME = 255          # the server schema's maxLength for names
_SUFFIX_LEN = 8             # 36**8 ~ 2.8e12 names per stem: collisions are not a concern
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]+\Z")
_ROLE_OK = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
_PORT_OK = _ROLE_OK
_PUBLIC_KEY = re.compile(r"^(?:ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-zA-Z0-9@.-]+)\s+[A-Za-z0-9+/]+=*(?:\s.*)?\Z")
IMAGE_PREREQUISITE = "docker_image_0"   # the portal's name for a job's first image
REGISTRY_SECRET = "registry_password"
KEEP_ALIVE = "sleep infinity"


@dataclass
class JobSpec:
    """What a person states about a job; everything else gets the portal's defaults.

    ``name`` is a stem made unique by build_protocol (OpenPAI never reuses a job
    name) unless ``exact_name`` is set. ``storages`` are ``(name, mountPath or None)``;
    None mounts at ``/mnt/<name>``. ``registry_auth`` is ``(username, password,
    registry_uri)`` and puts the password in ``secrets``, never in the commands.
    """

    name: str
    image: str
    commands: list[str]
    gpu: int = 0
    cpu: int = 1
    memory_mb: int = 4096
    instances: int = 1
    virtual_cluster: str = "default"
    retry: int = 0
    storages: list[tuple[str, str | None]] = field(default_factory=list)
    ssh_public_key: str | None = None
    registry_auth: tuple[str, str, str] | None = field(default=None, repr=False)
    task_role: str = "taskrole"
    keep_alive: bool = False
    # extras a notebook user reaches for
    exact_name: bool = False
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    shm_mb: int | None = None
    task_retry: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _sanitize_stem(stem: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "_", str(stem or "")).strip("_-")
    return cleaned or "job"


def unique_job_name(stem: str) -> str:
    """``stem`` made legal (``^[a-zA-Z0-9_-]+$``) plus ``_`` and a random suffix, at most
    MAX_JOB_NAME characters: OpenPAI refuses a name used before, even by a finished job."""
    suffix = "".join(_secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LEN))
    base = _sanitize_stem(stem)[: MAX_JOB_NAME - _SUFFIX_LEN - 1]
    return f"{base}_{suffix}"


def _check_int(label: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{label} must be a whole number >= {minimum}, got {value!r}")
    return value


def _image_prerequisite(image: str, auth: tuple[str, str, str] | None,
                        name: str = IMAGE_PREREQUISITE) -> tuple[dict[str, Any], dict[str, str]]:
    prereq: dict[str, Any] = {"name": name, "type": "dockerimage", "uri": image}
    job_secrets: dict[str, str] = {}
    if auth is not None:
        try:
            username, password, registry_uri = auth
        except (TypeError, ValueError):
            raise InvalidInputError(
                "registry_auth must be (username, password, registry_uri)") from None
        username, password, registry_uri = str(username), str(password), str(registry_uri)
        # The server trims every rendered auth field and renders username/registryuri
        # as templates: refuse values it would silently change.
        for label, value in (("username", username), ("password", password),
                             ("registry uri", registry_uri)):
            if value != value.strip():
                raise InvalidInputError(
                    f"the registry {label} starts or ends with whitespace, which the cluster "
                    "would strip: remove it")
        for label, value in (("username", username), ("registry uri", registry_uri)):
            if "<%" in value or "%>" in value:
                raise InvalidInputError(f"the registry {label} may not contain '<%' or '%>'")
        prereq["auth"] = {"username": username,
                          "password": f"<% $secrets.{REGISTRY_SECRET} %>",
                          "registryuri": registry_uri}
        job_secrets[REGISTRY_SECRET] = password
    return prereq, job_secrets


def build_protocol(spec: JobSpec) -> dict[str, Any]:
    """A protocol v2 job (a dict ready for dump_protocol / submit) from ``spec``.
    Raises InvalidInputError on a value the server would refuse."""
    if not isinstance(spec.image, str) or not spec.image.strip():
        raise InvalidInputError("an image is required: pass e.g. image='ubuntu:22.04'")
    commands = [c for c in (spec.commands or []) if isinstance(c, str) and c.strip()]
    if spec.keep_alive:
        commands.append(KEEP_ALIVE)
    if not commands:
        raise InvalidInputError("the job has no commands: give at least one shell line")
    role = spec.task_role
    if not isinstance(role, str) or not _ROLE_OK.match(role):
        raise InvalidInputError(
            f"task role name {role!r} is invalid: use letters, digits and '_' (not first a digit)")
    if spec.exact_name:
        if not isinstance(spec.name, str) or not _NAME_OK.match(spec.name) or len(spec.name) > MAX_JOB_NAME:
            raise InvalidInputError(
                f"job name {spec.name!r} is invalid: use letters, digits, '_' and '-' (at most 255)")
        name = spec.name
    else:
        name = unique_job_name(spec.name)

    resources: dict[str, Any] = {
        "cpu": _check_int("cpu", spec.cpu, 0),
        "memoryMB": _check_int("memory_mb", spec.memory_mb, 0),
        "gpu": _check_int("gpu", spec.gpu, 0),
    }
    if spec.ports:
        for port_name, count in spec.ports.items():
            if not isinstance(port_name, str) or not _PORT_OK.match(port_name):
                raise InvalidInputError(f"port name {port_name!r} is invalid: use letters, digits and '_'")
            _check_int(f"ports.{port_name}", count, 0)
        resources["ports"] = dict(spec.ports)

    prereq, job_secrets = _image_prerequisite(spec.image.strip(), spec.registry_auth)
    task: dict[str, Any] = {
        "instances": _check_int("instances", spec.instances, 1),
        "dockerImage": prereq["name"],
        "resourcePerInstance": resources,
        "commands": commands,
    }
    if spec.task_retry is not None:
        task["taskRetryCount"] = _check_int("task_retry", spec.task_retry, 0)
    if spec.shm_mb is not None:
        task["extraContainerOptions"] = {"shmMB": _check_int("shm_mb", spec.shm_mb, 0)}

    job: dict[str, Any] = {"protocolVersion": 2, "name": name, "type": "job"}
    if spec.description:
        job["description"] = str(spec.description)
    if spec.parameters:
        job["parameters"] = {str(k): v for k, v in spec.parameters.items()}
    job["prerequisites"] = [prereq]
    if job_secrets:
        job["secrets"] = job_secrets
    job["jobRetryCount"] = _check_int("retry", spec.retry, 0)
    job["taskRoles"] = {role: task}
    if not isinstance(spec.virtual_cluster, str) or not spec.virtual_cluster:
        raise InvalidInputError("virtual_cluster must be a name, e.g. 'default'")
    job["defaults"] = {"virtualCluster": spec.virtual_cluster}
    job["extras"] = copy.deepcopy(spec.extras) if spec.extras else {}
    if spec.storages:
        add_storages(job, spec.storages)
    if spec.ssh_public_key:
        add_ssh_plugin(job, spec.ssh_public_key)
    if not job["extras"]:
        del job["extras"]
    # Refuse here what the cluster would refuse at submit (e.g. an unbalanced "<%" in a
    # command, which the server's template renderer rejects), while the person can
    # still fix the spec.
    problems = protocol_errors(job)
    if problems:
        raise InvalidInputError(f"the job built from these options is invalid: {problems[0]}",
                                details=problems)
    return job


# ------------------------------------------------------------------ secrets

def mask_secrets(job: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to show: ``secrets`` replaced by ``"******"`` as the rest-server's
    config endpoint shows it, and any registry password written in clear (not a
    ``<% $secrets.x %>`` reference) masked too."""
    masked = copy.deepcopy(job)
    if not isinstance(masked, dict):
        return masked
    if "secrets" in masked:
        masked["secrets"] = MASK
    items = masked.get("prerequisites")
    for item in items if isinstance(items, list) else []:
        auth = item.get("auth") if isinstance(item, dict) else None
        if isinstance(auth, dict) and "password" in auth:
            value = auth["password"]
            if not (isinstance(value, str) and re.fullmatch(r"\s*<%\s*\$secrets\.[^%]*%>\s*", value)):
                auth["password"] = MASK
    return masked


# ------------------------------------------------------------------ ssh

def _plugins(job: dict[str, Any], create: bool) -> list[Any] | None:
    extras = job.get("extras")
    if not isinstance(extras, dict):
        if not create:
            return None
        extras = job["extras"] = {}
    plugins = extras.get(SSH_PLUGIN_KEY)
    if not isinstance(plugins, list):
        if not create:
            return None
        plugins = extras[SSH_PLUGIN_KEY] = []
    return plugins


def _is_ssh_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("plugin") == "ssh"


def _non_empty(value: Any) -> bool:
    """lodash ``!isEmpty(value)`` as the portal applies it to ``userssh``."""
    if isinstance(value, (dict, list, str)):
        return len(value) > 0
    return False


def job_has_ssh(job: dict[str, Any]) -> bool:
    """Whether a user can ssh into the job's containers: an ``ssh`` runtime plugin entry
    whose ``parameters.userssh`` is not empty, the portal's test for showing SSH info."""
    for entry in _plugins(job, create=False) or []:
        if _is_ssh_entry(entry) and isinstance(entry.get("parameters"), dict) \
                and _non_empty(entry["parameters"].get("userssh")):
            return True
    return False


def _split_keys(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    return [line.strip() for line in value.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def ssh_user_keys(job: dict[str, Any]) -> list[str]:
    """The public keys the job's ssh plugin entries put in the containers'
    authorized_keys (``userssh.value``, one key a line), without duplicates."""
    keys: list[str] = []
    for entry in _plugins(job, create=False) or []:
        if not _is_ssh_entry(entry) or not isinstance(entry.get("parameters"), dict):
            continue
        userssh = entry["parameters"].get("userssh")
        if isinstance(userssh, dict):
            for key in _split_keys(userssh.get("value")):
                if key not in keys:
                    keys.append(key)
    return keys


def add_ssh_plugin(job: dict[str, Any], public_key: str) -> dict[str, Any]:
    """Give the job SSH with ``public_key``: adds the portal's ssh plugin entry, or merges
    into an existing one (keeps its other settings and keys, turns jobssh on)."""
    keys = _split_keys(public_key)
    if len(keys) != 1 or not _PUBLIC_KEY.match(keys[0]):
        raise InvalidInputError(
            "the ssh public key must be one line like 'ssh-ed25519 AAAA... comment': "
            "pass the .pub file's content")
    key = keys[0]
    plugins = _plugins(job, create=True)
    assert plugins is not None
    entry = next((e for e in plugins if _is_ssh_entry(e)), None)
    if entry is None:
        plugins.append({"plugin": "ssh",
                        "parameters": {"jobssh": True, "userssh": {"type": "custom", "value": key}}})
        return job
    params = entry.get("parameters")
    if not isinstance(params, dict):
        params = entry["parameters"] = {}
    params["jobssh"] = True
    userssh = params.get("userssh")
    if not isinstance(userssh, dict):
        userssh = params["userssh"] = {}
    existing = _split_keys(userssh.get("value"))
    if key not in existing:
        existing.append(key)
    userssh["type"] = userssh.get("type") or "custom"
    userssh["value"] = "\n".join(existing)
    return job


# ------------------------------------------------------------------ storages

def _storage_pairs(storages: Iterable[Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in storages:
        name: Any
        mount: Any
        if isinstance(item, str):
            name, mount = item, None
        elif isinstance(item, dict):
            name, mount = item.get("name"), item.get("mountPath")
        else:
            try:
                name, mount = item
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"storage {item!r} is not (name, mount_path): use e.g. ('data', '/mnt/data')") from None
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"storage {item!r} has no name: use e.g. ('data', None)")
        name = name.strip()
        mount = mount or f"/mnt/{name}"
        if not isinstance(mount, str) or not mount.startswith("/"):
            raise InvalidInputError(f"mount path {mount!r} for storage {name!r} must be absolute")
        pairs.append((name, mount))
    return pairs


def add_storages(job: dict[str, Any], storages: Sequence[Any]) -> dict[str, Any]:
    """Mount storages: ``extras.storages`` gets ``{name, mountPath}`` per storage (default
    mountPath ``/mnt/<name>``); a storage already listed gets the new mount path. An
    empty list adds ``storages: []``, which mounts the user's default storages."""
    extras = job.get("extras")
    if not isinstance(extras, dict):
        extras = job["extras"] = {}
    current = extras.get("storages")
    if not isinstance(current, list):
        current = extras["storages"] = []
    for name, mount in _storage_pairs(storages):
        entry = next((s for s in current if isinstance(s, dict) and s.get("name") == name), None)
        if entry is None:
            current.append({"name": name, "mountPath": mount})
        else:
            entry["mountPath"] = mount
    return job


# ------------------------------------------------------------------ overrides

def _target_roles(job: dict[str, Any], task_role: str | None) -> list[str]:
    roles = job.get("taskRoles")
    if not isinstance(roles, dict) or not roles:
        raise InvalidInputError("the job has no taskRoles: add one before overriding its fields")
    if task_role is None:
        return [r for r in roles if isinstance(roles[r], dict)]
    if task_role not in roles or not isinstance(roles[task_role], dict):
        raise InvalidInputError(f"the job has no task role {task_role!r} (task roles: {', '.join(roles)})")
    return [task_role]


def _override_image(job: dict[str, Any], targets: list[str], image: str) -> None:
    prereqs = job.get("prerequisites")
    if not isinstance(prereqs, list):
        prereqs = job["prerequisites"] = []
    roles = job["taskRoles"]
    users: dict[str, set[str]] = {}
    for role, spec in roles.items():
        if isinstance(spec, dict) and isinstance(spec.get("dockerImage"), str):
            users.setdefault(spec["dockerImage"], set()).add(role)
    images = {p["name"]: p for p in prereqs
              if isinstance(p, dict) and p.get("type") == "dockerimage" and isinstance(p.get("name"), str)}
    for role in targets:
        current = roles[role].get("dockerImage")
        if current in images and users.get(current, set()) <= set(targets):
            images[current]["uri"] = image     # nobody else uses it: change it in place
            continue
        used = {p.get("name") for p in prereqs if isinstance(p, dict)}
        index = 0
        while f"docker_image_{index}" in used:
            index += 1
        new = {"name": f"docker_image_{index}", "type": "dockerimage", "uri": image}
        prereqs.append(new)
        images[new["name"]] = new
        for other in targets:
            if roles[other].get("dockerImage") == current:
                roles[other]["dockerImage"] = new["name"]
        users[new["name"]] = set(targets)


def apply_overrides(job: dict[str, Any], *, name: str | None = None, image: str | None = None,
                    gpu: int | None = None, cpu: int | None = None, memory_mb: int | None = None,
                    instances: int | None = None, virtual_cluster: str | None = None,
                    retry: int | None = None, storages: Sequence[Any] | None = None,
                    ssh_public_key: str | None = None, keep_alive: bool | None = None,
                    task_role: str | None = None) -> dict[str, Any]:
    """Options typed next to a YAML job (``%%pai_job --gpu 2``) win over its fields.
    Resource options apply to every task role, or only to ``task_role``. The image
    changes the task roles' dockerimage prerequisite (a new one when another role
    shares it). None leaves a field as written."""
    if not isinstance(job, dict):
        raise InvalidInputError("the job must be a mapping: parse the YAML first")
    targets = _target_roles(job, task_role)
    roles = job["taskRoles"]
    if name is not None:
        if not isinstance(name, str) or not _NAME_OK.match(name) or len(name) > MAX_JOB_NAME:
            raise InvalidInputError(f"job name {name!r} is invalid: use letters, digits, '_' and '-'")
        job["name"] = name
    if image is not None:
        if not isinstance(image, str) or not image.strip():
            raise InvalidInputError("the image must be a non-empty name like 'ubuntu:22.04'")
        _override_image(job, targets, image.strip())
    for label, key, value, minimum in (("gpu", "gpu", gpu, 0), ("cpu", "cpu", cpu, 0),
                                       ("memory_mb", "memoryMB", memory_mb, 0)):
        if value is None:
            continue
        _check_int(label, value, minimum)
        for role in targets:
            res = roles[role].get("resourcePerInstance")
            if not isinstance(res, dict):
                res = roles[role]["resourcePerInstance"] = {}
            res[key] = value
    if instances is not None:
        _check_int("instances", instances, 1)
        for role in targets:
            roles[role]["instances"] = instances
    if virtual_cluster is not None:
        if not isinstance(virtual_cluster, str) or not virtual_cluster:
            raise InvalidInputError("virtual_cluster must be a name, e.g. 'default'")
        defaults = job.get("defaults")
        if not isinstance(defaults, dict):
            defaults = job["defaults"] = {}
        defaults["virtualCluster"] = virtual_cluster
    if retry is not None:
        job["jobRetryCount"] = _check_int("retry", retry, 0)
    if storages is not None:
        add_storages(job, storages)
    if ssh_public_key:
        add_ssh_plugin(job, ssh_public_key)
    if keep_alive:
        for role in targets:
            commands = roles[role].get("commands")
            if not isinstance(commands, list):
                commands = roles[role]["commands"] = []
            if not commands or not isinstance(commands[-1], str) or commands[-1].strip() != KEEP_ALIVE:
                commands.append(KEEP_ALIVE)
    return job
