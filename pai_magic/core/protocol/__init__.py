"""The OpenPAI job protocol v2: validate, render and build jobs as a cluster would.

What a cluster accepts is decided by its rest-server (an ajv schema, then a few checks in
its submit middleware), not by the stricter openpai-protocol schema document; this
module accepts exactly what the server accepts and renders commands the way the server
renders them, so a job that passes here is not refused at submit, and the embedded
backend runs what a cluster would run. It is split into small modules:

- yamlio: reading/writing YAML as the server's js-yaml does;
- schema (+ data/server_protocol_schema.yaml): the server's schema;
- checks: the server's extra checks;
- render: the server's command and registry-auth rendering;
- validate: protocol_errors / validate_protocol (schema + checks);
- build: JobSpec -> protocol, names, ssh, storages, overrides, masking.

Everything a face or the backend needs is importable from here.
"""
from __future__ import annotations

from pai_magic.core.protocol.render import (  # noqa: F401  (public API)
    command_list,
    default_deployment,
    render_auth,
    render_commands,
    render_entrypoints,
    render_template,
)
from pai_magic.core.protocol.yamlio import dump_protocol, parse_protocol  # noqa: F401

from pai_magic.core.protocol.validate import protocol_errors, validate_protocol  # noqa: F401
from pai_magic.core.protocol.build import (  # noqa: F401
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

__all__ = [
    "protocol_errors", "validate_protocol", "parse_protocol", "dump_protocol",
    "render_commands", "render_auth", "render_entrypoints", "render_template",
    "command_list", "default_deployment",
    "JobSpec", "build_protocol", "unique_job_name", "mask_secrets", "add_ssh_plugin",
    "add_storages", "job_has_ssh", "ssh_user_keys", "apply_overrides",
    "SSH_PLUGIN_KEY", "MASK", "MAX_JOB_NAME",
]
