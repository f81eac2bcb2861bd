"""A submitted job's protocol back as the sidebar's submit form (clone, YAML import).

The form's spec is what :mod:`pai_magic.server.submit` turns into a protocol through the
core's ``build_protocol``; this module reads the same conventions backwards (one task role,
one image, the trailing ``sleep infinity`` of keep-alive, the ssh runtime plugin,
``extras.storages``). A job the form cannot express (several task roles, parameters,
secrets ...) is not guessed at: the answer says why and the sidebar offers its YAML instead.
"""
from __future__ import annotations

import re
from typing import Any

from pai_magic.core.protocol.build import KEEP_ALIVE, SSH_PLUGIN_KEY, job_has_ssh

# unique_job_name appends "_" + 8 of [a-z0-9]; a clone gets a fresh suffix from the same stem
_SUFFIX = re.compile(r"_[a-z0-9]{8}\Z")
# top-level keys the form either sets or that carry nothing the form would lose
_FORM_TOP = {"protocolVersion", "name", "type", "prerequisites", "jobRetryCount", "taskRoles",
             "defaults", "extras"}
_FORM_TASK = {"instances", "dockerImage", "resourcePerInstance", "commands", "completion", "taskRetryCount"}


def name_stem(name: str) -> str:
    """The readable stem of a job name (``train_ab12cd34`` -> ``train``)."""
    return _SUFFIX.sub("", name or "") or name or "job"


def spec_of_protocol(job: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(spec, None)`` when the form can hold ``job`` exactly, else ``(None, why)``."""
    roles = job.get("taskRoles")
    if not isinstance(roles, dict) or len(roles) != 1:
        count = len(roles) if isinstance(roles, dict) else 0
        return None, f"This job has {count} task roles; the form holds one: edit its YAML instead."
    extra_top = sorted(k for k in job if k not in _FORM_TOP)
    if extra_top:
        return None, f"This job uses {', '.join(extra_top)}, which the form does not show: edit its YAML instead."
    (role_name, role), = roles.items()
    extra_task = sorted(k for k in role if k not in _FORM_TASK) if isinstance(role, dict) else ["?"]
    if extra_task:
        return None, f"Task role {role_name} uses {', '.join(extra_task)}, which the form does not show: " \
                     "edit its YAML instead."
    images = [p for p in job.get("prerequisites") or [] if isinstance(p, dict) and p.get("type") == "dockerimage"]
    image = next((p for p in images if p.get("name") == role.get("dockerImage")), None)
    if image is None or image.get("auth") or len(job.get("prerequisites") or []) != 1:
        return None, "This job's image needs registry credentials or extra prerequisites: edit its YAML instead."
    commands = [c for c in role.get("commands") or [] if isinstance(c, str)]
    keep_alive = bool(commands) and commands[-1].strip() == KEEP_ALIVE
    if keep_alive:
        commands = commands[:-1]
    resources = role.get("resourcePerInstance") or {}
    if resources.get("ports"):
        return None, "This job declares ports, which the form does not show: edit its YAML instead."
    raw_extras = job.get("extras")
    extras: dict[str, Any] = raw_extras if isinstance(raw_extras, dict) else {}
    plugins = extras.get(SSH_PLUGIN_KEY) or []
    other = sorted(set(extras) - {"storages", SSH_PLUGIN_KEY}) + sorted(
        str(p.get("plugin")) for p in plugins if isinstance(p, dict) and p.get("plugin") != "ssh")
    if other or set((job.get("defaults") or {})) - {"virtualCluster"}:
        return None, f"This job uses {', '.join(other) or 'defaults'} beyond the form: edit its YAML instead."
    storages: list[str] = []
    for entry in extras.get("storages") or []:
        if isinstance(entry, dict) and entry.get("name"):
            mount = entry.get("mountPath")
            storages.append(entry["name"] if not mount or mount == f"/mnt/{entry['name']}"
                            else f"{entry['name']}:{mount}")
    spec: dict[str, Any] = {
        "name": name_stem(str(job.get("name") or "")),
        "image": str(image.get("uri") or ""),
        "commands": commands,
        "virtualCluster": str((job.get("defaults") or {}).get("virtualCluster") or "default"),
        "gpu": int(resources.get("gpu") or 0),
        "cpu": int(resources.get("cpu") or 1),
        "memoryMB": int(resources.get("memoryMB") or 4096),
        "instances": int(role.get("instances") or 1),
        "retry": int(job.get("jobRetryCount") or 0),
        "ssh": job_has_ssh(job),
        "keepAlive": keep_alive,
        "storages": storages,
    }
    return spec, None
