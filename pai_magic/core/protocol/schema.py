"""The rest-server's ajv schema run with jsonschema, its errors as "path: message" lines.

The schema itself is data (pai_magic/core/protocol/data/server_protocol_schema.yaml) so that it
can be read side by side with the server's protocol.js. Two things are adapted when it
is loaded, both so that Python decides like JavaScript:

- a JavaScript ``$`` matches only at the very end, Python's also before a final newline:
  patterns get ``\\Z`` for their closing ``$`` (a name ``"job\\n"`` is refused as on the
  server);
- values are first made JSON-like the way js-yaml would have built them (string keys,
  tuples as lists), so jsonschema never sees a key it cannot match a pattern against.
"""
from __future__ import annotations

import contextvars
import functools
import re
from importlib import resources
from typing import Any, Iterable

import yaml

from pai_magic.core.lazy_jsonschema import jsonschema

from pai_magic.core.protocol.yamlio import js_string

__all__ = ["schema_errors", "server_schema", "format_path", "normalize"]

_PREREQ_KINDS = ("script", "output", "data", "dockerimage")
# the document being validated, for the one message that must look at a parent object
_root_instance: contextvars.ContextVar[Any] = contextvars.ContextVar("_root_instance", default=None)


def _js_anchors(node: Any) -> Any:
    """Rewrite every ``pattern`` / ``patternProperties`` regex's final ``$`` to ``\\Z``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                out[key] = _fix_dollar(value)
            elif key == "patternProperties" and isinstance(value, dict):
                out[key] = {_fix_dollar(k): _js_anchors(v) for k, v in value.items()}
            else:
                out[key] = _js_anchors(value)
        return out
    if isinstance(node, list):
        return [_js_anchors(v) for v in node]
    return node


def _fix_dollar(pattern: str) -> str:
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern


@functools.cache
def server_schema() -> dict[str, Any]:
    """The schema as stored (JavaScript regex syntax), loaded once."""
    text = resources.files("pai_magic.core.protocol").joinpath("data/server_protocol_schema.yaml").read_text(
        encoding="utf-8")
    schema: dict[str, Any] = yaml.safe_load(text)
    return schema


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    schema = _js_anchors(server_schema())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def normalize(value: Any) -> Any:
    """A deep copy shaped as js-yaml would have produced it: string keys (as JavaScript
    object keys), lists for tuples and sets as objects of nulls."""
    if isinstance(value, dict):
        return {js_string(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {js_string(k): None for k in value}
    return value


def format_path(parts: Iterable[Any]) -> str:
    """``taskRoles.worker.commands[0]``; the document itself is ``(root)``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def _join(path: str, key: str) -> str:
    # a key with a line break or other control character is quoted: each problem stays one line
    shown = key if key.isprintable() and key.strip() == key and key else repr(key)
    return shown if path == "(root)" else f"{path}.{shown}"


_TYPE_WORDS = {
    "object": "an object (a mapping)",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _type_phrase(expected: Any) -> str:
    kinds = expected if isinstance(expected, list) else [expected]
    words = [_TYPE_WORDS.get(k, str(k)) for k in kinds]
    return " or ".join(words)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    if isinstance(value, (int, float)):
        return js_string(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _is_secret_path(parts: Iterable[Any]) -> bool:
    parts = list(parts)
    return "secrets" in parts[:1] or "auth" in parts


def _messages(error: jsonschema.ValidationError) -> list[str]:
    """One jsonschema error -> "path: message" lines a person can act on. Values under
    ``secrets`` or a registry ``auth`` are never quoted back (they may be passwords)."""
    path = format_path(error.absolute_path)
    if _is_secret_path(error.absolute_path):
        lines = _plain_messages(error, path)
        return [line.split(", got ")[0] for line in lines]
    return _plain_messages(error, path)


def _plain_messages(error: jsonschema.ValidationError, path: str) -> list[str]:
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    inst = error.instance
    if kind == "additionalProperties" and isinstance(inst, dict):
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        lines = []
        for key in inst:
            if key in props or any(re.search(p, key) for p in patterns):
                continue
            if patterns and not props:
                shown = next(iter(patterns)).replace(r"\Z", "$")
                lines.append(f"{_join(path, key)}: invalid name, must match {shown}")
            else:
                allowed = ", ".join(props)
                lines.append(f"{_join(path, key)}: unknown key (allowed: {allowed})")
        return lines
    if kind == "required":
        wanted = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [k for k in wanted if isinstance(inst, dict) and k not in inst]
        return [f"{_join(path, k)}: is required" for k in missing] or [f"{path}: {error.message}"]
    if kind == "type":
        return [f"{path}: must be {_type_phrase(error.validator_value)}, got {_describe(inst)}"]
    if kind == "enum":
        choices = ", ".join(js_string(v) if not isinstance(v, str) else repr(v)
                            for v in error.validator_value)
        if path.endswith("protocolVersion"):
            return [f"{path}: must be 2, got {_describe(inst)}"]
        return [f"{path}: must be one of {choices}, got {_describe(inst)}"]
    if kind == "pattern":
        shown = str(error.validator_value).replace(r"\Z", "$")
        return [f"{path}: {_describe(inst)} must match {shown} "
                "(letters, digits, '_' and '-' only)"]
    if kind == "maxLength":
        return [f"{path}: must be at most {error.validator_value} characters, "
                f"got {len(inst) if isinstance(inst, str) else '?'}"]
    if kind == "minimum":
        return [f"{path}: must be >= {js_string(error.validator_value)}, got {_describe(inst)}"]
    if kind == "minItems":
        what = "command" if path.endswith("ommands") else "item"
        return [f"{path}: must have at least {error.validator_value} {what}, got none"]
    if kind == "minProperties":
        return [f"{path}: must have at least {error.validator_value} entry, got none"]
    if kind == "oneOf":
        return _prerequisite_messages(error, path)
    if error.schema is False:
        return _false_schema_messages(error, path)
    return [f"{path}: {error.message.splitlines()[0] if error.message else 'is invalid'}"]


def _walk(node: Any, parts: Iterable[Any]) -> Any:
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _walk_schema(schema: dict[str, Any], parts: Iterable[Any]) -> Any:
    """Follow a jsonschema schema path, resolving local ``$ref`` steps."""
    node: Any = schema

    def resolve(at: Any) -> Any:
        return _walk(schema, at["$ref"][2:].split("/"))

    for part in parts:
        if part == "$ref" and isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/"):
            node = resolve(node)
            continue
        while isinstance(node, dict) and part not in node and str(node.get("$ref", "")).startswith("#/"):
            node = resolve(node)
        node = _walk(node, [part])
    return node


def _false_schema_messages(error: jsonschema.ValidationError, path: str) -> list[str]:
    """A property whose schema is ``false`` (the server's extraContainerOptions quirk).
    jsonschema reports it at the parent's path without the key, so find the key."""
    parent = _walk(_root_instance.get(), error.absolute_path)
    props = _walk_schema(_validator().schema, error.absolute_schema_path)
    if isinstance(parent, dict) and isinstance(props, dict):
        keys = [k for k, sub in props.items() if sub is False and k in parent]
        if keys:
            return [f"{_join(path, k)}: is not allowed here" for k in keys]
    return [f"{path}: is not allowed here"]


def _prerequisite_messages(error: jsonschema.ValidationError, path: str) -> list[str]:
    """A prerequisite matched none of the three kinds: report against the kind its
    ``type`` names, which is what the person meant."""
    inst = error.instance
    if not isinstance(inst, dict):
        return [f"{path}: must be an object (a mapping)"]
    kind = inst.get("type")
    if "type" not in inst:
        return [f"{path}.type: is required (one of {', '.join(_PREREQ_KINDS)})"]
    if kind not in _PREREQ_KINDS:
        return [f"{path}.type: must be one of {', '.join(_PREREQ_KINDS)}, got {_describe(kind)}"]
    branch = {"script": 0, "output": 0, "data": 1, "dockerimage": 2}[kind]
    lines: list[str] = []
    for sub in error.context or []:
        if sub.schema_path and sub.schema_path[0] == branch:
            lines.extend(_messages(sub))
    return lines or [f"{path}: is not a valid {kind} prerequisite"]


def schema_errors(job: Any) -> list[str]:
    """Every way ``job`` breaks the server's ajv schema, as sorted "path: message"
    lines; empty when the server's schema accepts it."""
    lines: list[str] = []
    job = normalize(job)
    token = _root_instance.set(job)
    try:
        for error in _validator().iter_errors(job):
            for line in _messages(error):
                if line not in lines:
                    lines.append(line)
    finally:
        _root_instance.reset(token)
    return sorted(lines)
