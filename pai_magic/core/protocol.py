"""The OpenPAI job protocol v2: validate, render and build jobs as a cluster would.

What a cluster accepts is decided by its rest-server (an ajv schema, then a few checks in
its submit middleware), not by the stricter openpai-protocol schema document; this
module accepts exactly what the server accepts and renders commands the way the server
renders them, so a job that passes here is not refused at submit, and the embedded
backend runs what a cluster would run. It is split into small modules:

- protocol_yaml: reading/writing YAML as the server's js-yaml does;
- protocol_schema (+ data/server_protocol_schema.yaml): the server's schema;
- protocol_checks: the server's extra checks;
- protocol_render: the server's command and registry-auth rendering;
- protocol_build: JobSpec -> protocol, names, ssh, storages, overrides, masking.

Everything a face or the backend needs is importable from here.
"""
from __future__ import annotations

from typing import Any

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol_checks import reference_errors
from pai_magic.core.protocol_render import (  # noqa: F401  (public API)
    command_list,
    default_deployment,
    render_auth,
    render_commands,
    render_entrypoints,
    render_template,
)
from pai_magic.core.protocol_schema import normalize, schema_errors
from pai_magic.core.protocol_yaml import dump_protocol, parse_protocol  # noqa: F401

__all__ = [
    "protocol_errors", "validate_protocol", "parse_protocol", "dump_protocol",
    "render_commands", "render_auth", "render_entrypoints", "render_template",
    "command_list", "default_deployment",
    "JobSpec", "build_protocol", "unique_job_name", "mask_secrets", "add_ssh_plugin",
    "add_storages", "job_has_ssh", "ssh_user_keys", "apply_overrides",
    "SSH_PLUGIN_KEY", "MASK", "MAX_JOB_NAME",
]


def protocol_errors(job: Any) -> list[str]:
    """Every reason the rest-server would refuse ``job`` at submit, one "path: message"
    line each (empty list: the server accepts it). ``job`` is a parsed protocol, or YAML
    text, which is parsed as the server parses it. Never raises on odd input."""
    if isinstance(job, (str, bytes)):
        try:
            job = parse_protocol(job)
        except InvalidInputError as exc:
            return exc.details or [str(exc)]
    try:
        job = normalize(job)
        lines = schema_errors(job)
        if isinstance(job, dict):
            for line in reference_errors(job):
                if line not in lines:
                    lines.append(line)
        return lines
    except RecursionError:
        return ["(root): nested too deeply to be a job protocol"]
    except Exception as exc:  # noqa: BLE001  (a checker bug must not crash a face)
        return [f"(root): could not be checked (internal error {type(exc).__name__}); "
                "please report it with the job file"]


def validate_protocol(job: Any) -> dict[str, Any]:
    """Raise InvalidInputError (with ``.details`` = the "path: message" lines) unless the
    rest-server would accept ``job``; returns the job (parsed, when given YAML text)."""
    if isinstance(job, (str, bytes)):
        job = parse_protocol(job)
    lines = protocol_errors(job)
    if lines:
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise InvalidInputError(f"invalid job protocol: {lines[0]}{more}; fix the job and submit again",
                                code="InvalidProtocolError", details=lines)
    return job


# Builders come last: they use the functions above.
from pai_magic.core.protocol_build import (  # noqa: E402,F401
    MASK,
    MAX_JOB_NAME,
    SSH_PLUGIN_KEY,
    JobSpec,
    add_ssh_plugin,
    add_storages,
    apply_overrides,
    build_protocol,
    job_has_ssh,
    mask_secrets,
    ssh_user_keys,
    unique_job_name,
)
