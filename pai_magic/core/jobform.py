"""The one check of a job a person describes, for every face that submits one.

The magics and the CLI read options (``--image``, ``--gpu``, ``--memory 8G`` ...), the sidebar
and the panel read a form (the keys below). All of them hand what the person gave to
:func:`spec_from_form` (a job built from fields) or :func:`apply_form` (a YAML job with fields
written over it), so a value one face refuses is refused by all, with the same sentence.

Each refusal is an :class:`InvalidInputError` whose ``field`` is the form key concerned (a form
shows the message next to that field) and whose message speaks of what the person typed, not of
the protocol: "The image 'X' is not an image name: ...", never ``spec.image`` or ``image='...'``.

Form keys (the sidebar's JSON names): ``name`` (a stem; a unique suffix is added), ``image``,
``commands`` (text or a list of lines), ``virtualCluster``, ``gpu``, ``cpu``, ``memoryMB`` (an
int) or ``memory`` (``8G``, ``512M`` or MB), ``instances``, ``retry``, ``storages`` (``NAME`` or
``NAME:/mount/path`` items, or one text of them), ``ssh`` and ``keepAlive`` (booleans).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pai_magic.core.errors import InvalidInputError, PaiError
from pai_magic.core.protocol.build import KEEP_ALIVE

__all__ = ["FIELDS", "FieldError", "spec_from_form", "protocol_from_form", "overrides_from_form",
           "apply_form", "apply_overrides_checked", "check_job_images", "check_image", "parse_memory_mb",
           "parse_storages", "form_from_protocol", "form_cannot_hold", "MAX_COUNT", "MAX_NAME_STEM"]

# key -> what the person calls it (used in the messages)
FIELDS: dict[str, str] = {
    "name": "job name", "image": "image", "commands": "commands", "virtualCluster": "virtual cluster",
    "gpu": "GPUs per instance", "cpu": "CPUs per instance", "memoryMB": "memory", "memory": "memory",
    "instances": "instances", "retry": "retries", "storages": "storage", "ssh": "SSH",
    "keepAlive": "keep-alive",
}
MAX_COUNT = 100_000          # a realistic bound: a typo (10000000 GPUs) is refused at once
MAX_NAME_STEM = 60           # the suffix and kind prefixes must still fit OpenPAI's 255
MAX_MEMORY_MB = 1024 ** 3    # 1024 TiB
_COUNTS = {"gpu": 0, "cpu": 1, "instances": 1, "retry": 0}   # key -> smallest allowed value
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
_VC_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
_STORAGE_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?\Z")
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_MEMORY_FACTOR_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}
_UNIQUE_SUFFIX_RE = re.compile(r"_[a-z0-9]{8}\Z")
_TEMPLATE = "<%"
IMAGE_EXAMPLE = "ubuntu:22.04 or HOST:5000/team/img:tag"


def FieldError(field: str | None, message: str) -> InvalidInputError:  # noqa: N802 - reads as a class
    """The error a form shows next to ``field``."""
    return InvalidInputError(message, field=field)


# ------------------------------------------------------------------ single values

def check_name(value: Any) -> str | None:
    """A job name stem, or None when none was given (the face's default applies)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not _NAME_RE.match(value.strip()):
        raise FieldError("name", f"The job name {value!r} is not allowed: use letters, digits, '_' and '-', "
                                 "e.g. train_v2.")
    if len(value.strip()) > MAX_NAME_STEM:
        raise FieldError("name", f"The job name is too long: keep it under {MAX_NAME_STEM} characters "
                                 "(a unique suffix is added).")
    return value.strip()


def check_image(value: Any, field: str = "image") -> str:
    """An image reference as Docker writes it (``[HOST[:PORT]/]repo/name[:tag][@digest]``);
    a scheme (``http://``) is allowed before a private registry's host, as elsewhere."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, f"The image is empty: give one like {IMAGE_EXAMPLE}.")
    text = value.strip()
    raw = text.split("://", 1)[1] if "://" in text else text
    bad = FieldError(field, f"{text!r} is not an image name: write it like {IMAGE_EXAMPLE} "
                            "(lowercase letters, digits, '.', '_', '-' and '/', then :tag).")
    first, sep, rest = raw.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _HOST_RE.match(first):
            raise bad
        raw = rest
    from pai_magic.core.registry.models import parse_reference

    try:
        parse_reference(raw, None)
    except InvalidInputError:
        raise bad from None
    return text


def parse_memory_mb(value: Any, field: str = "memory") -> int:
    """``8G``, ``512M``, ``1.5GiB`` or a number of MB (an int, or text) -> megabytes."""
    if isinstance(value, bool):
        raise FieldError(field, f"Memory {value!r} is not a size: write it like 8G, 512M or 16384 (MB).")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        megabytes = float(value)
    else:
        match = _MEMORY_RE.match(str(value)) if isinstance(value, str) else None
        if not match:
            raise FieldError(field, f"Memory {value!r} is not a size: write it like 8G, 512M or 16384 (MB).")
        number, unit, _ = match.groups()
        megabytes = float(number) * _MEMORY_FACTOR_MB[unit.lower()]
    if megabytes < 1 or megabytes > MAX_MEMORY_MB:
        raise FieldError(field, f"Memory {value!r} is out of range: give between 1M and 1024T, e.g. 8G.")
    return int(round(megabytes))


def check_count(key: str, value: Any) -> int | None:
    """A whole number for ``gpu``, ``cpu``, ``instances`` or ``retry`` (None: not given)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    minimum = _COUNTS[key]
    number: Any = value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    elif isinstance(number, str) and re.fullmatch(r"\s*-?\d+\s*", number):
        number = int(number)
    label = FIELDS[key][0].upper() + FIELDS[key][1:]
    if isinstance(number, bool) or not isinstance(number, int):
        raise FieldError(key, f"{label} must be a whole number, got {value!r}.")
    if number < minimum:
        raise FieldError(key, f"{label} must be {minimum} or more, got {number}.")
    if number > MAX_COUNT:
        raise FieldError(key, f"{label} must be at most {MAX_COUNT} (a realistic number), got {number}.")
    return number


def parse_commands(value: Any) -> list[str]:
    """Shell lines from text (one per line) or a list of lines; blank lines dropped."""
    if value is None:
        lines: list[str] = []
    elif isinstance(value, str):
        lines = value.splitlines()
    elif isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        lines = [part for x in value for part in (x.splitlines() or [""])]
    else:
        raise FieldError("commands", "The commands must be shell lines (text, one command per line).")
    lines = [line.rstrip() for line in lines if line.strip()]
    if not lines:
        raise FieldError("commands", "The job has no commands: give at least one shell line, "
                                     "e.g. python train.py.")
    return lines


def check_virtual_cluster(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not _VC_RE.match(value.strip()):
        raise FieldError("virtualCluster", f"The virtual cluster {value!r} is not a name: use letters, digits, "
                                           "'_' and '-', e.g. default.")
    return value.strip()


def parse_storages(value: Any) -> list[tuple[str, str | None]]:
    """``NAME`` / ``NAME:/mount/path`` items (a list, or one text separated by commas or lines),
    ``(name, path)`` pairs or ``{name, mountPath}`` -> (name, absolute path or None for /mnt/NAME)."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = [x for x in re.split(r"[,\n]", value) if x.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise FieldError("storages", "Storage must be NAME or NAME:/mount/path items, e.g. confignfs:/data.")
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        name: Any
        path: Any
        if isinstance(item, str):
            name, sep, path = item.strip().partition(":")
            shown = item.strip()
        elif isinstance(item, dict):
            name, path, sep = item.get("name"), item.get("mountPath"), ":" if item.get("mountPath") else ""
            shown = f"{name}:{path}" if sep else str(name)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            name, path, sep = item[0], item[1], ":" if item[1] else ""
            shown = f"{name}:{path}" if sep else str(name)
        else:
            name, path, sep, shown = None, None, "", repr(item)
        if not isinstance(name, str) or not _STORAGE_RE.match(name.strip()):
            raise FieldError("storages", f"Storage {shown!r} is not NAME or NAME:/mount/path, e.g. confignfs:/data.")
        name = name.strip()
        if sep:
            path = str(path or "").strip()
            if not path.startswith("/"):
                raise FieldError("storages", f"Storage {shown!r}: the mount path must be absolute, "
                                             f"e.g. {name}:/mnt/{name}.")
            pairs.append((name, path))
        else:
            pairs.append((name, None))
    return pairs


def _bool(key: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        label = FIELDS[key]
        raise FieldError(key, f"{label[0].upper() + label[1:]} must be on or off (true or false), got {value!r}.")
    return value


# ------------------------------------------------------------------ whole forms

@dataclass
class _Checked:
    """A form's fields, each checked: what spec_from_form and overrides_from_form share."""

    name: str | None
    image: str | None
    virtual_cluster: str | None
    counts: dict[str, int]
    memory_mb: int | None
    storages: list[tuple[str, str | None]] | None
    ssh: bool
    keep_alive: bool


def _check_form(form: Mapping[str, Any], *, image_required: bool) -> _Checked:
    """Every field except the commands, in the order a form shows them; the first problem wins."""
    if not isinstance(form, Mapping):
        raise FieldError(None, "The job form must be a set of fields (name, image, commands ...).")
    unknown = sorted(str(k) for k in form if k not in FIELDS)
    if unknown:
        raise FieldError(None, f"Unknown field(s) {', '.join(unknown)}: the fields are {', '.join(FIELDS)}.")
    name = check_name(form.get("name"))
    image = check_image(form.get("image")) if (image_required or form.get("image") not in (None, "")) else None
    counts: dict[str, int] = {}
    vc = check_virtual_cluster(form.get("virtualCluster"))
    for key in ("gpu", "cpu"):
        value = check_count(key, form.get(key))
        if value is not None:
            counts[key] = value
    given = [k for k in ("memoryMB", "memory") if form.get(k) not in (None, "")]
    if len(given) == 2:
        raise FieldError("memory", "Give the memory once: memoryMB or memory, not both.")
    memory_mb = parse_memory_mb(form[given[0]], given[0]) if given else None
    for key in ("instances", "retry"):
        value = check_count(key, form.get(key))
        if value is not None:
            counts[key] = value
    storages = parse_storages(form.get("storages")) if form.get("storages") not in (None, "") else None
    return _Checked(name, image, vc, counts, memory_mb, storages,
                    _bool("ssh", form.get("ssh")), _bool("keepAlive", form.get("keepAlive")))


def _public_key(profile: Any, ssh_key: Callable[[], str] | None) -> str:
    try:
        if ssh_key is not None:
            return ssh_key()
        from pai_magic.core.ssh.keys import ensure_key

        return ensure_key(getattr(profile, "ssh_key", None)).public_line
    except PaiError as err:
        if err.field is None:
            err.field = "ssh"
        raise


def spec_from_form(form: Mapping[str, Any], profile: Any = None, *, ssh_key: Callable[[], str] | None = None,
                   resolve_image: bool = True, default_name: str = "job") -> Any:
    """The ``JobSpec`` for a filled form. ``profile`` gives the default virtual cluster, the SSH
    key (``ssh_key`` overrides how the public key line is found) and the registry an image
    without a host is looked up on (``resolve_image``, one HEAD when a registry is set up)."""
    from pai_magic.core.protocol.build import JobSpec

    checked = _check_form(form, image_required=True)
    commands = parse_commands(form.get("commands"))
    assert checked.image is not None
    image, registry_auth = checked.image, None
    if resolve_image:
        from pai_magic.core.registry.job_image import job_image_from_profile

        try:
            resolved = job_image_from_profile(checked.image, profile)
        except InvalidInputError as err:
            raise FieldError("image", str(err)) from None
        image, registry_auth = resolved.uri, resolved.registry_auth
    kwargs: dict[str, Any] = dict(
        name=checked.name or default_name, image=image, commands=commands,
        virtual_cluster=checked.virtual_cluster or getattr(profile, "virtual_cluster", None) or "default",
        storages=checked.storages or [], keep_alive=checked.keep_alive, registry_auth=registry_auth)
    kwargs.update(checked.counts)
    if checked.memory_mb is not None:
        kwargs["memory_mb"] = checked.memory_mb
    if checked.ssh:
        kwargs["ssh_public_key"] = _public_key(profile, ssh_key)
    return JobSpec(**kwargs)


def protocol_from_form(form: Mapping[str, Any], profile: Any = None, *,
                       ssh_key: Callable[[], str] | None = None, resolve_image: bool = True,
                       default_name: str = "job") -> dict[str, Any]:
    """The protocol dict for a filled form (what ``submit_job`` takes)."""
    from pai_magic.core.protocol.build import build_protocol

    spec = spec_from_form(form, profile, ssh_key=ssh_key, resolve_image=resolve_image, default_name=default_name)
    job: dict[str, Any] = build_protocol(spec)
    return job


def overrides_from_form(form: Mapping[str, Any], profile: Any = None, *,
                        ssh_key: Callable[[], str] | None = None) -> dict[str, Any]:
    """``apply_overrides`` keywords for the fields given next to a YAML job (all optional;
    empty when none is given). ``keep_alive`` is in it only when on."""
    from pai_magic.core.protocol.build import unique_job_name

    if form.get("commands") not in (None, "", []):
        raise FieldError("commands", "A YAML job has its own commands: give commands or a YAML job, not both.")
    checked = _check_form({k: v for k, v in form.items() if k != "commands"}, image_required=False)
    out: dict[str, Any] = dict(checked.counts)
    if checked.name:
        out["name"] = unique_job_name(checked.name)
    if checked.image:
        out["image"] = checked.image
    if checked.virtual_cluster:
        out["virtual_cluster"] = checked.virtual_cluster
    if checked.memory_mb is not None:
        out["memory_mb"] = checked.memory_mb
    if checked.storages:
        out["storages"] = checked.storages
    if checked.ssh:
        out["ssh_public_key"] = _public_key(profile, ssh_key)
    if checked.keep_alive:
        out["keep_alive"] = True
    return out


def _append_keep_alive(job: dict[str, Any]) -> None:
    """End every task role's commands with ``sleep infinity``; a malformed ``commands`` is left
    for the validator to name (rather than replaced)."""
    roles = job.get("taskRoles")
    for role in (roles.values() if isinstance(roles, dict) else []):
        commands = role.get("commands") if isinstance(role, dict) else None
        if isinstance(commands, list) and not (
                commands and isinstance(commands[-1], str) and commands[-1].strip() == KEEP_ALIVE):
            commands.append(KEEP_ALIVE)


def apply_form(job: Any, form: Mapping[str, Any], profile: Any = None, *,
               ssh_key: Callable[[], str] | None = None) -> dict[str, Any]:
    """A parsed YAML job with the form's fields written over it (in place, and returned), its
    images checked as a form's would be."""
    if not isinstance(job, dict) or not isinstance(job.get("taskRoles"), dict):
        raise FieldError(None, "This is not a job (a YAML mapping with `taskRoles:`): fix the YAML, "
                               "or give an image and shell commands instead.")
    return apply_overrides_checked(job, overrides_from_form(form, profile, ssh_key=ssh_key))


def apply_overrides_checked(job: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``apply_form`` for overrides already made by :func:`overrides_from_form`."""
    from pai_magic.core.protocol.build import apply_overrides

    if not isinstance(job, dict) or not isinstance(job.get("taskRoles"), dict):
        raise FieldError(None, "This is not a job (a YAML mapping with `taskRoles:`): fix the YAML, "
                               "or give an image and shell commands instead.")
    rest = dict(overrides)
    keep_alive = rest.pop("keep_alive", False)
    if rest:
        apply_overrides(job, **rest)
    if keep_alive:
        _append_keep_alive(job)
    check_job_images(job)
    return job


def check_job_images(job: Any) -> None:
    """Each ``dockerimage`` prerequisite of a YAML job names an image as a form would
    (templated uris, ``<% $parameters.x %>``, are left to the cluster)."""
    prereqs = job.get("prerequisites") if isinstance(job, dict) else None
    for item in prereqs if isinstance(prereqs, list) else []:
        if isinstance(item, dict) and item.get("type") == "dockerimage":
            uri = item.get("uri")
            if isinstance(uri, str) and _TEMPLATE in uri:
                continue
            check_image(uri)


# ------------------------------------------------------------------ the other way

# top-level and task-role keys the form either sets or that carry nothing it would lose
_FORM_TOP = {"protocolVersion", "name", "type", "prerequisites", "jobRetryCount", "taskRoles",
             "defaults", "extras"}
_FORM_TASK = {"instances", "dockerImage", "resourcePerInstance", "commands", "completion", "taskRetryCount"}


def form_cannot_hold(job: Any) -> str | None:
    """Why the form cannot rebuild ``job`` exactly (several task roles, parameters, ports,
    registry credentials ...), as the sentence to show; None when it can. A face that gets a
    reason offers the job's YAML instead of a form that would silently drop something."""
    from pai_magic.core.protocol.build import SSH_PLUGIN_KEY

    roles = job.get("taskRoles") if isinstance(job, dict) else None
    if not isinstance(roles, dict) or len(roles) != 1:
        count = len(roles) if isinstance(roles, dict) else 0
        return f"This job has {count} task roles; the form holds one: edit its YAML instead."
    extra_top = sorted(str(k) for k in job if k not in _FORM_TOP)
    if extra_top:
        return f"This job uses {', '.join(extra_top)}, which the form does not show: edit its YAML instead."
    (role_name, role), = roles.items()
    extra_task = sorted(str(k) for k in role if k not in _FORM_TASK) if isinstance(role, dict) else ["?"]
    if extra_task:
        return (f"Task role {role_name} uses {', '.join(extra_task)}, which the form does not show: "
                "edit its YAML instead.")
    prerequisites = job.get("prerequisites") or []
    image = next((p for p in prerequisites if isinstance(p, dict) and p.get("type") == "dockerimage"
                  and p.get("name") == role.get("dockerImage")), None)
    if image is None or image.get("auth") or len(prerequisites) != 1:
        return "This job's image needs registry credentials or extra prerequisites: edit its YAML instead."
    resources = role.get("resourcePerInstance") or {}
    if isinstance(resources, dict) and resources.get("ports"):
        return "This job declares ports, which the form does not show: edit its YAML instead."
    extras = job.get("extras") if isinstance(job.get("extras"), dict) else {}
    plugins = extras.get(SSH_PLUGIN_KEY) or []
    other = sorted(set(map(str, extras)) - {"storages", SSH_PLUGIN_KEY}) + sorted(
        str(p.get("plugin")) for p in plugins if isinstance(p, dict) and p.get("plugin") != "ssh")
    defaults = job.get("defaults") if isinstance(job.get("defaults"), dict) else {}
    if other or set(defaults) - {"virtualCluster"}:
        return f"This job uses {', '.join(other) or 'defaults'} beyond the form: edit its YAML instead."
    return None


def form_from_protocol(job: Any) -> dict[str, Any]:
    """The form that rebuilds ``job`` (clone, YAML import): its first task role's image,
    commands and resources, the job's virtual cluster (OpenPAI's ``default`` when the job names
    none), retries, storages, SSH and keep-alive. The name is the stem (the unique suffix
    dropped), so a clone gets a fresh name. :func:`form_cannot_hold` says what it would drop."""
    if not isinstance(job, dict) or not isinstance(job.get("taskRoles"), dict) or not job["taskRoles"]:
        raise FieldError(None, "This is not a job (a YAML mapping with `taskRoles:`): nothing to fill the form with.")
    role = next(iter(job["taskRoles"].values()))
    role = role if isinstance(role, dict) else {}
    images = {p.get("name"): p for p in job.get("prerequisites") or []
              if isinstance(p, dict) and p.get("type") == "dockerimage"}
    image = images.get(role.get("dockerImage"), {}).get("uri", "")
    commands = [c for c in role.get("commands") or [] if isinstance(c, str)]
    keep_alive = bool(commands) and commands[-1].strip() == KEEP_ALIVE
    if keep_alive:
        commands = commands[:-1]
    res: dict[str, Any] = role.get("resourcePerInstance") or {}
    res = res if isinstance(res, dict) else {}
    extras: dict[str, Any] = job.get("extras") or {}
    extras = extras if isinstance(extras, dict) else {}
    storages = [f"{s['name']}:{s['mountPath']}" if s.get("mountPath") and s["mountPath"] != f"/mnt/{s['name']}"
                else str(s["name"])
                for s in extras.get("storages") or [] if isinstance(s, dict) and s.get("name")]
    from pai_magic.core.protocol.build import job_has_ssh

    name = str(job.get("name") or "")
    defaults: dict[str, Any] = job.get("defaults") or {}
    defaults = defaults if isinstance(defaults, dict) else {}
    return {
        "name": _UNIQUE_SUFFIX_RE.sub("", name), "image": image, "commands": "\n".join(commands),
        "virtualCluster": defaults.get("virtualCluster") or "default", "gpu": res.get("gpu", 0), "cpu": res.get("cpu", 1),
        "memoryMB": res.get("memoryMB", 4096), "instances": role.get("instances", 1),
        "retry": job.get("jobRetryCount", 0), "storages": storages, "ssh": job_has_ssh(job),
        "keepAlive": keep_alive,
    }
