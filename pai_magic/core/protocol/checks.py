"""The checks the rest-server makes after its schema (middlewares/v2/protocol.js,
``protocolValidate``), plus the ones its render step makes by failing.

The server stops at the first of these; here every problem is reported, one
"path: message" line each, so a person fixes a job in one pass. The set of jobs accepted
is the same. Where the server would accept a job only to crash on it a moment later (a
500, the job not created), the job is refused here with a message instead:

- ``taskRoles`` that is not a mapping (the schema has no ``type`` there, the server then
  fails iterating it);
- a reference that only resolves through JavaScript's ``in`` operator looking up the
  prototype chain (``dockerImage: constructor``): names must be declared;
- templates mustache.js cannot parse (an unclosed ``<%``), and non-string ``auth`` values.

Two more known differences, both refusals of values no one means: ajv counts
``.inf`` as an integer (jsonschema does not), and js-yaml tolerates some tab-indented
lines that PyYAML rejects (the error names the line). Everything else was checked
against the server's own code (see tests/unit/data/protocol_server_cases.json).
"""
from __future__ import annotations

import re
from typing import Any

from pai_magic.core.protocol.render import TemplateError, _top_level_tokens, command_list, js_falsy

__all__ = ["reference_errors"]

# task-role field -> the prerequisite type it must name (field.toLowerCase() on the server)
_FIELD_KINDS = {"script": "script", "output": "output", "data": "data", "dockerImage": "dockerimage"}
_KINDS = ("script", "output", "data", "dockerimage")


def _declared(job: dict[str, Any]) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Prerequisite names per type (name -> index) and duplicate-name errors."""
    by_kind: dict[str, dict[str, int]] = {k: {} for k in _KINDS}
    errors: list[str] = []
    items = job.get("prerequisites")
    if not isinstance(items, list):
        return by_kind, errors
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind, name = item.get("type"), item.get("name")
        if not isinstance(kind, str) or kind not in by_kind or not isinstance(name, str):
            continue
        if name in by_kind[kind]:
            errors.append(f"prerequisites[{index}].name: duplicate {kind} prerequisite {name!r} "
                          f"(also prerequisites[{by_kind[kind][name]}]): rename one")
        else:
            by_kind[kind][name] = index
    return by_kind, errors


def _deployments(job: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    names: dict[str, int] = {}
    errors: list[str] = []
    items = job.get("deployments")
    if not isinstance(items, list):
        return names, errors
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        if name in names:
            errors.append(f"deployments[{index}].name: duplicate deployment {name!r} "
                          f"(also deployments[{names[name]}]): rename one")
        else:
            names[name] = index
    return names, errors


_PLAIN = re.compile(r"^[A-Za-z0-9_.-]+\Z")


def _shown(name: Any) -> str:
    """A name from the job as an error line shows it: as is when plain, quoted otherwise (a
    newline in a name must not break the one-line message, nor a space blur the list)."""
    text = str(name)
    return text if _PLAIN.match(text) else repr(text)


def _listed(names: Any) -> str:
    return ", ".join(_shown(n) for n in names) or "none"


def _field_error(role: str, field: str, value: Any, by_kind: dict[str, dict[str, int]]) -> str | None:
    kind = _FIELD_KINDS[field]
    if not isinstance(value, str) or value in by_kind[kind]:
        return None  # a non-string is already a schema error
    other = next((k for k in _KINDS if value in by_kind[k]), None)
    declared = _listed(by_kind[kind])
    if other is not None:
        return (f"taskRoles.{_shown(role)}.{field}: {value!r} is a {other} prerequisite, "
                f"not a {kind} one ({kind} prerequisites: {declared})")
    return (f"taskRoles.{_shown(role)}.{field}: prerequisite {value!r} does not exist "
            f"(declared {kind} prerequisites: {declared})")


def _template_error(path: str, template: str) -> str | None:
    try:
        _top_level_tokens(template)
    except TemplateError as exc:
        return f"{path}: {exc}: {exc.fix}"
    return None


def reference_errors(job: dict[str, Any]) -> list[str]:
    """The middleware's checks on a job that is a mapping: duplicate prerequisites (per
    type) and deployments, task-role prerequisite references (any type) and typed
    fields, the default deployment, and what makes the render step fail."""
    errors: list[str] = []
    by_kind, dup = _declared(job)
    errors += dup
    all_names = {n for names in by_kind.values() for n in names}
    deployments, dup = _deployments(job)
    errors += dup

    roles = job.get("taskRoles")
    if "taskRoles" in job and not isinstance(roles, dict):
        errors.append("taskRoles: must be an object (a mapping) of task role names to task roles")
        roles = {}
    for role, spec in (roles or {}).items():
        if not isinstance(spec, dict):
            continue
        refs = spec.get("prerequisites")
        if isinstance(refs, list):
            for index, ref in enumerate(refs):
                if isinstance(ref, str) and ref not in all_names:
                    errors.append(f"taskRoles.{_shown(role)}.prerequisites[{index}]: prerequisite {ref!r} "
                                  f"does not exist (declared: {_listed(sorted(all_names))})")
        for field in _FIELD_KINDS:
            if field in spec:
                line = _field_error(role, field, spec[field], by_kind)
                if line:
                    errors.append(line)

    defaults = job.get("defaults")
    default_ok = True
    if isinstance(defaults, dict) and isinstance(defaults.get("deployment"), str):
        name = defaults["deployment"]
        if name not in deployments:
            default_ok = False
            errors.append(f"defaults.deployment: deployment {name!r} does not exist "
                          f"(deployments: {_listed(deployments)})")
        else:
            dep = job["deployments"][deployments[name]]
            dep_roles = dep.get("taskRoles")
            if not isinstance(dep_roles, (dict, list)):
                default_ok = False  # the server's `role in deployment.taskRoles` throws
                errors.append(f"deployments[{deployments[name]}].taskRoles: must be an object "
                              "(a mapping) of task role names to preCommands/postCommands")

    errors += _render_errors(job, roles or {}, default_ok)
    return errors


def _render_errors(job: dict[str, Any], roles: dict[str, Any], default_ok: bool) -> list[str]:
    errors: list[str] = []
    if default_ok:
        for role, spec in roles.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("commands"), list):
                continue
            if not all(isinstance(c, str) for c in spec["commands"]):
                continue
            try:
                text = "\n".join(command_list(job, role))
            except Exception:  # noqa: BLE001 (shape already reported by the schema)
                continue
            line = _template_error(f"taskRoles.{_shown(role)}.commands", text)
            if line:
                errors.append(line)
    items = job.get("prerequisites")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or item.get("type") != "dockerimage":
            continue
        auth = item.get("auth")
        if not isinstance(auth, dict):
            continue
        for prop, value in auth.items():
            path = f"prerequisites[{index}].auth.{_shown(prop)}"
            if isinstance(value, str):
                line = _template_error(path, value)
                if line:
                    errors.append(line)
            elif not js_falsy(value) and prop not in ("username", "password", "registryuri"):
                errors.append(f"{path}: must be a string")  # the three named are schema errors
    return errors
