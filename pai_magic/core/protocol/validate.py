"""Whether the rest-server would accept a job: its schema, then its submit middleware's checks.

Kept apart from the package's ``__init__`` so that the builders can refuse a bad job without
importing the package they are part of (no import cycle).
"""
from __future__ import annotations

from typing import Any, cast

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol.checks import reference_errors
from pai_magic.core.protocol.schema import normalize, schema_errors
from pai_magic.core.protocol.yamlio import parse_protocol

__all__ = ["protocol_errors", "validate_protocol"]


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
    return cast("dict[str, Any]", job)  # no error lines: it is a mapping
