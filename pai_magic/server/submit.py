"""Turn the sidebar's submit request into a protocol dict the core submits.

Three shapes come in: a small ``spec`` (the sidebar's form), a protocol ``yaml`` document
(pasted), or the same ``protocol`` as JSON. The spec is checked field by field here so a
wrong type is a one-line 400 naming the field, then handed to the core's ``build_protocol``
(unique name, ssh plugin, storages, keep-alive). Validation as the rest-server does it
happens in ``submit_job``.
"""
from __future__ import annotations

from typing import Any

from pai_magic.core.errors import InvalidInputError

_INT_FIELDS = {"gpu": ("gpu", 0), "cpu": ("cpu", 1), "memoryMB": ("memory_mb", 1),
               "instances": ("instances", 1), "retry": ("retry", 0)}
_KNOWN = sorted({"name", "image", "commands", "virtualCluster", "ssh", "keepAlive", "storages"} | set(_INT_FIELDS))


def _int(spec: dict[str, Any], key: str, minimum: int) -> int | None:
    if key not in spec or spec[key] is None:
        return None
    value = spec[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"spec.{key} must be a whole number >= {minimum}, got {value!r}.")
    return value


def _bool(spec: dict[str, Any], key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInputError(f"spec.{key} must be true or false, got {value!r}.")
    return value


def _str(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"spec.{key} must be a string, got {type(value).__name__}.")
    return value.strip() or None


def _commands(spec: dict[str, Any]) -> list[str]:
    raw = spec.get("commands")
    if isinstance(raw, str):
        lines = raw.splitlines()
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        lines = list(raw)
    else:
        raise InvalidInputError("spec.commands must be shell lines: a list of strings or one string.")
    lines = [line.rstrip() for line in lines if line.strip()]
    if not lines:
        raise InvalidInputError("spec.commands is empty: give at least one shell line, e.g. [\"python train.py\"].")
    return lines


def _storages(spec: dict[str, Any]) -> list[tuple[str, str | None]]:
    raw = spec.get("storages") or []
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise InvalidInputError("spec.storages must be a list of \"NAME\" or \"NAME:/mount/path\".")
    pairs: list[tuple[str, str | None]] = []
    for item in raw:
        name, _, path = item.strip().partition(":")
        pairs.append((name, path or None))
    return pairs


def spec_from_request(spec: dict[str, Any], profile: Any) -> Any:
    """The core ``JobSpec`` for a sidebar spec (raises InvalidInputError naming the field)."""
    from pai_magic.core.protocol import JobSpec

    unknown = sorted(set(spec) - set(_KNOWN))
    if unknown:
        raise InvalidInputError(f"spec has unknown field(s) {', '.join(unknown)}; known: {', '.join(_KNOWN)}.")
    image = _str(spec, "image")
    if not image:
        raise InvalidInputError("spec.image is required, e.g. \"ubuntu:22.04\".")
    kwargs: dict[str, Any] = {
        "name": _str(spec, "name") or "job",
        "image": image,
        "commands": _commands(spec),
        "virtual_cluster": _str(spec, "virtualCluster") or getattr(profile, "virtual_cluster", None) or "default",
        "storages": _storages(spec),
        "keep_alive": _bool(spec, "keepAlive"),
    }
    for key, (field_name, minimum) in _INT_FIELDS.items():
        value = _int(spec, key, minimum)
        if value is not None:
            kwargs[field_name] = value
    if _bool(spec, "ssh"):
        from pai_magic.core.ssh.keys import ensure_key

        kwargs["ssh_public_key"] = ensure_key(getattr(profile, "ssh_key", None)).public_line
    return JobSpec(**kwargs)


def protocol_from_request(kind: str, payload: Any, profile: Any) -> dict[str, Any] | str:
    """What ``submit_job`` takes: a protocol dict, or the YAML text as it was sent."""
    if kind == "spec":
        from pai_magic.core.protocol import build_protocol

        return build_protocol(spec_from_request(payload, profile))
    if kind == "yaml":
        if not payload.strip():
            raise InvalidInputError("`yaml` is empty: paste an OpenPAI protocol v2 document.")
        from pai_magic.core.protocol import parse_protocol

        return parse_protocol(payload)
    if kind == "protocol":
        return payload
    raise InvalidInputError(f"Unknown submission kind {kind!r}: send spec, yaml or protocol.")
