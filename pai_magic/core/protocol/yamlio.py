"""Read and write protocol YAML the way the OpenPAI rest-server reads it.

The server parses a submitted job with js-yaml 3 (`safeLoad`), whose implicit types
differ from PyYAML's YAML 1.1 ones in ways that change what a job means:

- only ``true/True/TRUE/false/False/FALSE`` are booleans (PyYAML also turns
  ``yes/no/on/off`` into booleans, so ``name: no`` would stop being a string);
- floats do not need a dot (``1e3`` is a number, PyYAML keeps it a string);
- a mapping key is always a string (a JavaScript object key);
- a key repeated in one mapping is an error, not "the last one wins".

:func:`parse_protocol` therefore uses a loader with js-yaml's resolvers, and
:func:`dump_protocol` quotes every string that either YAML reader could mistake for
something else, so the text reads back identically on both sides.
"""
from __future__ import annotations

import datetime
import math
import re
from typing import Any, Hashable, Iterator

import yaml

from pai_magic.core.errors import InvalidInputError

__all__ = ["parse_protocol", "dump_protocol", "js_string", "JsYamlLoader", "YamlLimitError", "MAX_DEPTH",
           "MAX_ALIAS_VALUES"]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# js-yaml 3's type/bool.js and type/float.js patterns.
_JS_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_JS_FLOAT = re.compile(
    r"^(?:[-+]?(?:0|[1-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
    r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*"
    r"|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN))$"
)


def _resolvers_without(tags: set[str]) -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    return {
        first: [(tag, rx) for tag, rx in entries if tag not in tags]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


#: deeper than any protocol needs; far below the recursion limit that would turn it into a crash
MAX_DEPTH = 100
#: values that aliases (``*name``) may add in total: a handful of ``<<: *defaults`` is a few
#: hundred; nested anchors that grow ninefold per level (an "alias bomb") reach millions
MAX_ALIAS_VALUES = 100_000


class YamlLimitError(yaml.YAMLError):
    """The text nests too deep or its aliases expand too far: refused before it costs time."""


class JsYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with js-yaml 3's implicit types, string keys and
    duplicate-key errors, and limits on nesting and alias expansion.

    Why the limits: an alias is composed once but every later ``json.dumps`` or walk over
    the result expands it, so a 620-byte document can stand for gigabytes; and a 50,000
    level ``[[[...`` exhausts Python's recursion. Both are refused while composing, with a
    message that says which limit was hit.
    """

    _depth = 0
    _alias_values = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            self._alias_values += self._sizes().get(id(node), 1)
            if self._alias_values > MAX_ALIAS_VALUES:
                raise YamlLimitError(
                    f"its aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values (from line "
                    f"{mark.line + 1}): write the values out instead of nesting anchors")
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"it nests deeper than {MAX_DEPTH} levels (line {mark.line + 1}): "
                                     f"flatten that structure")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        sizes = self._sizes()
        if isinstance(node, yaml.SequenceNode):
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            sizes[id(node)] = 1 + sum(sizes.get(id(k), 1) + sizes.get(id(v), 1) for k, v in node.value)
        return node

    def _sizes(self) -> dict[int, int]:
        """Expanded value count per composed node (nodes live until the document is built)."""
        sizes: dict[int, int] | None = self.__dict__.get("_node_sizes")
        if sizes is None:
            sizes = self.__dict__["_node_sizes"] = {}
        return sizes

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark)
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = js_string(self.construct_object(key_node, deep=True))
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicated mapping key {key!r}", key_node.start_mark)
            seen.add(key)
        self.flatten_mapping(node)  # merged pairs first, so explicit keys win
        # Keys are converted one by one (not through a dict first): in Python 1 == True,
        # in JavaScript "1" and "true" are different object keys.
        mapping: dict[Hashable, Any] = {}  # all str: js_string
        for key_node, value_node in node.value:
            key = js_string(self.construct_object(key_node, deep=True))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_set(self, node: yaml.MappingNode) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        # js-yaml's !!set is an object whose values are null.
        data: dict[str, Any] = {}
        yield data
        data.update({str(k): None for k in self.construct_mapping(node)})


JsYamlLoader.yaml_implicit_resolvers = _resolvers_without({_BOOL_TAG, _FLOAT_TAG})
JsYamlLoader.add_implicit_resolver(_BOOL_TAG, _JS_BOOL, list("tTfF"))
JsYamlLoader.add_implicit_resolver(_FLOAT_TAG, _JS_FLOAT, list("-+0123456789."))
JsYamlLoader.add_constructor("tag:yaml.org,2002:set", JsYamlLoader.construct_yaml_set)


class _ProtocolDumper(yaml.SafeDumper):
    """Quotes a string whenever PyYAML *or* js-yaml would read it as another type, and
    writes multi-line strings (descriptions, long commands) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:  # a protocol is a tree: never emit &anchors
        return True


_ProtocolDumper.yaml_implicit_resolvers = {
    first: list(entries) for first, entries in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
_ProtocolDumper.add_implicit_resolver(_BOOL_TAG, _JS_BOOL, list("tTfF"))
_ProtocolDumper.add_implicit_resolver(_FLOAT_TAG, _JS_FLOAT, list("-+0123456789."))


_YAML_LINE_BREAKS = ("\x85", "\u2028", "\u2029")  # YAML 1.1 breaks that PyYAML leaves unescaped


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(ch in value for ch in _YAML_LINE_BREAKS):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_ProtocolDumper.add_representer(str, _represent_str)


def parse_protocol(text: str | bytes) -> dict[str, Any]:
    """Parse protocol YAML as the rest-server does; bad YAML is an InvalidInputError
    that names the line. The result is not validated (see validate_protocol)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"the job file is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    if not isinstance(text, str):
        raise InvalidInputError("the job protocol must be YAML text: pass a str")
    try:
        job = yaml.load(text, Loader=JsYamlLoader)  # noqa: S506 (a SafeLoader subclass)
    except YamlLimitError as exc:
        raise InvalidInputError(f"job YAML refused: {exc}", details=[str(exc)]) from None
    except RecursionError:
        raise InvalidInputError(f"job YAML refused: it nests too deep (more than {MAX_DEPTH} levels): "
                                f"flatten that structure", details=["nesting too deep"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = exc.problem or exc.context or "malformed YAML"
        raise InvalidInputError(
            f"invalid job YAML at {where}: {problem}; fix that line and submit again",
            details=[f"line {mark.line + 1 if mark else '?'}: {problem}"]) from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "malformed YAML"
        raise InvalidInputError(f"invalid job YAML: {first}; fix it and submit again",
                                details=[first]) from None
    if not isinstance(job, dict):
        kind = "empty" if job is None else f"a {type(job).__name__}"
        raise InvalidInputError(
            f"the job YAML is {kind}, not a mapping: start it with 'protocolVersion: 2'",
            details=[f"(root): must be an object, got {kind}"])
    return job


def dump_protocol(job: dict[str, Any]) -> str:
    """Protocol dict -> YAML text in the protocol's usual key order (insertion order),
    readable by both PyYAML and the rest-server's js-yaml to the same values."""
    return yaml.dump(job, Dumper=_ProtocolDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=4096)


# ---------------------------------------------------------------- JavaScript values

def js_number(value: int | float) -> str:
    """ECMAScript Number::toString, because the server builds commands by string
    concatenation in JavaScript (``0.1`` stays ``0.1``, ``5.0`` becomes ``5``,
    ``1e21`` becomes ``1e+21``)."""
    if isinstance(value, int) and abs(value) < 2 ** 53:
        return str(value)
    f = float(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    digits, exp = _shortest_digits(abs(f))
    k = len(digits)
    n = exp + k  # the decimal point sits after n digits
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mant = digits[0] + ("." + digits[1:] if k > 1 else "")
        body = f"{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of a positive float (Python's repr uses the same
    algorithm as JavaScript): returns (digits without leading/trailing zeros, exponent)
    such that f == int(digits) * 10**exponent."""
    text = repr(f)
    mantissa, _, exp_text = text.partition("e")
    exp = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    exp -= len(frac)
    stripped = digits.rstrip("0")
    exp += len(digits) - len(stripped)
    return stripped or "0", exp


def js_string(value: Any) -> str:
    """``String(value)`` in JavaScript for the values js-yaml produces: what a
    parameter looks like once the server has pasted it into a command."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return str(value.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"))
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day).strftime(
            "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
    if isinstance(value, (bytes, bytearray)):
        return ",".join(str(b) for b in value)  # a Node Buffer prints its bytes
    return "[object Object]"
