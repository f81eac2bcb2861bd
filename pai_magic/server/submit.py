"""Turn the sidebar's submit request into a protocol dict the core submits.

Three shapes come in: a small ``spec`` (the sidebar's form), a protocol ``yaml`` document
(pasted), or the same ``protocol`` as JSON. The spec goes through the core's one check of a job
form (:mod:`pai_magic.core.jobform`, the same the magics, the CLI and the panel use), so a value
refused there is refused here with the same sentence and the ``field`` it concerns. Validation
as the rest-server does it happens in ``submit_job``.
"""
from __future__ import annotations

from typing import Any

from pai_magic.core.errors import InvalidInputError


def spec_from_request(spec: dict[str, Any], profile: Any) -> Any:
    """The core ``JobSpec`` for a sidebar spec (raises InvalidInputError with its ``field``)."""
    from pai_magic.core.jobform import spec_from_form

    return spec_from_form(spec, profile)


def protocol_from_request(kind: str, payload: Any, profile: Any) -> dict[str, Any] | str:
    """What ``submit_job`` takes: a protocol dict, or the YAML text as it was sent."""
    from pai_magic.core.jobform import check_job_images

    if kind == "spec":
        from pai_magic.core.protocol import build_protocol

        return build_protocol(spec_from_request(payload, profile))
    if kind == "yaml":
        if not payload.strip():
            raise InvalidInputError("The YAML is empty: paste an OpenPAI protocol v2 job.", field="yaml")
        from pai_magic.core.protocol import parse_protocol

        job = parse_protocol(payload)
        check_job_images(job)
        return job
    if kind == "protocol":
        check_job_images(payload)
        return payload
    raise InvalidInputError(f"Unknown submission kind {kind!r}: send spec, yaml or protocol.")
