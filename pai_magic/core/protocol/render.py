"""Turn a valid protocol into what runs, exactly as the OpenPAI rest-server does at submit.

The server (src/rest-server/src/middlewares/v2/protocol.js, ``protocolRender``) parses each
template with mustache.js 2.3 using ``<% %>`` as tags, then keeps only the text and plain
``name`` tokens of the top level: a name found in the context is pasted in as JavaScript
would stringify it, a name NOT found is written back as ``<% name %>`` (normalised
spacing), and every other tag kind (sections, comments, partials, ``&``, ``{}``) vanishes
together with whatever a section encloses. Mustache's "standalone line" rule also
removes the whole line of a lone non-variable tag. The result is trimmed.

Commands see ``$parameters``, ``$script``, ``$output`` and ``$data`` (the whole
prerequisite object a task role names, so ``<% $data.uri[0] %>`` works); they never see
``$secrets``, so a secret can only reach the registry ``auth`` fields. This module ports
that behaviour, including mustache's tokenizer, because a difference would make a job
run differently on the embedded backend than on a cluster.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pai_magic.core.errors import InvalidInputError
from pai_magic.core.protocol.yamlio import js_string

__all__ = ["render_template", "render_commands", "render_auth", "render_entrypoints",
           "TemplateError", "js_trim", "js_falsy", "default_deployment", "command_list"]

# JavaScript's \s (WhiteSpace + LineTerminator), which also drives String.prototype.trim.
_JS_WS_CHARS = "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
               "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_WS = "[" + re.escape(_JS_WS_CHARS) + "]"
_TAG_TYPE_RE = re.compile(r"#|\^|/|>|\{|&|=|!")
_WHITE_RE = re.compile(_JS_WS + "*")
_SPACE_SPLIT_RE = re.compile(_JS_WS + "+")
_EQUALS_RE = re.compile(_JS_WS + "*=")
_CURLY_RE = re.compile(_JS_WS + r"*\}")
_INDEX_RE = re.compile(r"\[([0-9]+)\]")
_ARRAY_INDEX_RE = re.compile(r"^(?:0|[1-9][0-9]*)$")

SERVER_TAGS = ("<%", "%>")
# mustache.js 2.3 caches parsed templates in a plain object keyed by the template text,
# so a template that IS the name of an Object.prototype member finds a function in the
# cache instead of tokens, and the server fails the submit ("tokens is not iterable").
_JS_OBJECT_MEMBERS = frozenset({
    "constructor", "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__",
    "__lookupSetter__", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable",
    "toLocaleString", "toString", "valueOf"})


class TemplateError(ValueError):
    """mustache.js refused the template (the rest-server then fails the submit);
    ``fix`` says what to change."""

    def __init__(self, message: str, fix: str = "balance the <% %> tags") -> None:
        super().__init__(message)
        self.fix = fix


def js_falsy(value: Any) -> bool:
    """JavaScript falsiness (an empty list or mapping is truthy there)."""
    if value is None or value is False or value == "":
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0 or value != value  # 0, -0 and NaN
    return False


def js_trim(text: str) -> str:
    """String.prototype.trim: strips JavaScript whitespace (which includes U+FEFF,
    unlike str.strip)."""
    return text.strip(_JS_WS_CHARS)


@dataclass
class _Tags:
    opening: re.Pattern[str]
    closing: re.Pattern[str]
    closing_curly: re.Pattern[str]


def _compile_tags(tags: tuple[str, str] | list[str] | str) -> _Tags:
    if isinstance(tags, str):
        # JavaScript's split(/\s+/, 2) keeps at most two pieces and drops the rest.
        tags = _SPACE_SPLIT_RE.split(tags)[:2]
    if len(tags) != 2:
        raise TemplateError(f"Invalid tags: {','.join(tags)}")
    open_tag, close_tag = tags
    return _Tags(re.compile(re.escape(open_tag) + _JS_WS + "*"),
                 re.compile(_JS_WS + "*" + re.escape(close_tag)),
                 re.compile(_JS_WS + "*" + re.escape("}" + close_tag)))


def _top_level_tokens(template: str, tags: tuple[str, str] = SERVER_TAGS
                      ) -> list[tuple[str, str]]:
    """mustache.js 2.3 ``parseTemplate`` reduced to what the server's render uses: the
    top-level ``text`` characters and ``name`` tokens, in order, after the standalone
    line stripping. Raises TemplateError where mustache.js throws."""
    if not template:
        return []
    if template in _JS_OBJECT_MEMBERS:
        raise TemplateError(f"the server cannot render a value that is exactly {template!r}",
                            fix="add something to it (e.g. a trailing comment or option)")
    compiled = _compile_tags(tags)
    tokens: list[tuple[str, str] | None] = []
    sections: list[str] = []
    spaces: list[int] = []
    has_tag = False
    non_space = False
    pos = 0
    end = len(template)

    def strip_space() -> None:
        nonlocal has_tag, non_space, spaces
        if has_tag and not non_space:
            while spaces:
                tokens[spaces.pop()] = None
        else:
            spaces = []
        has_tag = False
        non_space = False

    def scan_until(rx: re.Pattern[str]) -> str:
        nonlocal pos
        m = rx.search(template, pos)
        stop = m.start() if m else end
        value = template[pos:stop]
        pos = stop
        return value

    def scan(rx: re.Pattern[str]) -> str:
        nonlocal pos
        m = rx.match(template, pos)
        if not m:
            return ""
        pos = m.end()
        return m.group(0)

    while pos < end:
        for chr_ in scan_until(compiled.opening):
            if chr_ in _JS_WS_CHARS:
                spaces.append(len(tokens))
            else:
                non_space = True
            tokens.append(("text", chr_))
            if chr_ == "\n":
                strip_space()
        if not scan(compiled.opening):
            break
        has_tag = True
        kind = scan(_TAG_TYPE_RE) or "name"
        scan(_WHITE_RE)
        if kind == "=":
            value = scan_until(_EQUALS_RE)
            scan(_EQUALS_RE)
            scan_until(compiled.closing)
        elif kind == "{":
            value = scan_until(compiled.closing_curly)
            scan(_CURLY_RE)
            scan_until(compiled.closing)
            kind = "&"
        else:
            value = scan_until(compiled.closing)
        if not scan(compiled.closing):
            raise TemplateError(f"Unclosed tag at {pos}")
        tokens.append((kind, value))
        if kind in ("#", "^"):
            sections.append(value)
        elif kind == "/":
            if not sections:
                raise TemplateError(f'Unopened section "{value}"')
            opened = sections.pop()
            if opened != value:
                raise TemplateError(f'Unclosed section "{opened}"')
        elif kind in ("name", "&"):
            non_space = True
        elif kind == "=":
            compiled = _compile_tags(value)
    if sections:
        raise TemplateError(f'Unclosed section "{sections[-1]}" at {pos}')

    top: list[tuple[str, str]] = []
    depth = 0
    for token in tokens:
        if token is None:
            continue
        kind, value = token
        if kind in ("#", "^"):
            depth += 1
        elif kind == "/":
            depth -= 1
        elif depth == 0 and kind in ("text", "name"):
            top.append(token)
    return top


def _js_get(obj: Any, key: str) -> Any:
    """``obj[key]`` for the JSON-like values js-yaml produces (own properties only)."""
    if isinstance(obj, dict):
        return obj.get(key)
    if isinstance(obj, (list, tuple)):
        if key == "length":
            return len(obj)
        if _ARRAY_INDEX_RE.match(key) and int(key) < len(obj):
            return obj[int(key)]
        return None
    if isinstance(obj, str):
        if key == "length":
            return len(obj.encode("utf-16-le")) // 2
        if _ARRAY_INDEX_RE.match(key) and int(key) < len(obj):
            return obj[int(key)]
        return None
    return None


def _lookup(view: dict[str, Any], name: str) -> Any:
    """mustache.js Context.lookup with a single context (no parents)."""
    if name == ".":
        return view
    if name.find(".") > 0:
        value: Any = view
        for part in name.split("."):
            if value is None:
                break
            value = _js_get(value, part)
        return value
    return _js_get(view, name)


def render_template(template: str, view: dict[str, Any]) -> str:
    """The rest-server's ``render(template, dict)``: known names are pasted in, unknown
    ones are written back as ``<% name %>``, the result is trimmed."""
    out: list[str] = []
    for kind, value in _top_level_tokens(template):
        if kind == "text":
            out.append(value)
            continue
        name = _INDEX_RE.sub(r".\1", value)
        found = _lookup(view, name)
        out.append(js_string(found) if found is not None else f"<% {name} %>")
    return js_trim("".join(out))


# ------------------------------------------------------------------ protocol level

def _by_name(items: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                result[item["name"]] = item
    return result


def _prerequisites_of(job: dict[str, Any], kind: str) -> dict[str, Any]:
    items = job.get("prerequisites")
    return _by_name([p for p in items if isinstance(p, dict) and p.get("type") == kind]
                    if isinstance(items, list) else [])


def default_deployment(job: dict[str, Any]) -> dict[str, Any] | None:
    """The deployment named by ``defaults.deployment``, the only one the server applies."""
    defaults = job.get("defaults")
    if not isinstance(defaults, dict) or not isinstance(defaults.get("deployment"), str):
        return None
    return _by_name(job.get("deployments")).get(defaults["deployment"])


def command_list(job: dict[str, Any], role: str) -> list[str]:
    """The task role's command lines with the default deployment's preCommands before
    and postCommands after, each trimmed, before template rendering."""
    roles = job.get("taskRoles")
    if not isinstance(roles, dict) or not isinstance(roles.get(role), dict):
        known = ", ".join(sorted(roles)) if isinstance(roles, dict) else "none"
        raise InvalidInputError(f"the job has no task role {role!r} (task roles: {known})")
    commands = list(roles[role].get("commands") or [])
    deployment = default_deployment(job)
    if deployment is not None:
        dep_roles = deployment.get("taskRoles")
        entry = dep_roles.get(role) if isinstance(dep_roles, dict) else None
        if isinstance(entry, dict):
            if "preCommands" in entry:
                commands = list(entry["preCommands"]) + commands
            if "postCommands" in entry:
                commands = commands + list(entry["postCommands"])
    return [js_trim(c) if isinstance(c, str) else js_string(c) for c in commands]


def _command_view(job: dict[str, Any], role: str) -> dict[str, Any]:
    task_role = job["taskRoles"][role]

    def named(kind: str, field: str) -> Any:
        # JavaScript indexes the object with String(undefined) when the field is
        # absent, so a prerequisite literally named "undefined" is what it finds.
        key = task_role.get(field)
        return _prerequisites_of(job, kind).get("undefined" if key is None else js_string(key))

    return {
        "$parameters": job.get("parameters"),
        "$script": named("script", "script"),
        "$output": named("output", "output"),
        "$data": named("data", "data"),
    }


def render_commands(job: dict[str, Any], role: str) -> str:
    """The entrypoint the server builds for one task role: deployment preCommands +
    commands + postCommands, trimmed, joined by newlines, with ``$parameters``,
    ``$script``, ``$output`` and ``$data`` substituted. Secrets are never rendered here.
    Expects a job that passed validate_protocol."""
    text = "\n".join(command_list(job, role))
    try:
        return render_template(text, _command_view(job, role))
    except TemplateError as exc:
        raise InvalidInputError(
            f"taskRoles.{role}.commands: {exc}; {exc.fix}",
            details=[f"taskRoles.{role}.commands: {exc}"]) from None


def render_entrypoints(job: dict[str, Any]) -> dict[str, str]:
    """render_commands for every task role, in the job's order."""
    roles = job.get("taskRoles")
    return {role: render_commands(job, role) for role in (roles if isinstance(roles, dict) else {})}


def render_auth(job: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Registry credentials per dockerimage prerequisite name, each ``auth`` field
    rendered with ``$secrets`` (the only place a secret is ever substituted). Holds
    secret values: never print or log the result."""
    secrets = job.get("secrets")
    result: dict[str, dict[str, str]] = {}
    for name, prereq in _prerequisites_of(job, "dockerimage").items():
        auth = prereq.get("auth")
        if not isinstance(auth, dict):
            continue
        rendered: dict[str, str] = {}
        for prop, value in auth.items():
            if isinstance(value, str):
                template = value
            elif js_falsy(value):  # mustache.js renders any falsy template as ""
                template = ""
            else:  # mustache.js calls .search() on it and the server fails
                raise InvalidInputError(
                    f"prerequisites.{name}.auth.{prop}: must be a string",
                    details=[f"prerequisites.{name}.auth.{prop}: must be a string"])
            try:
                rendered[prop] = render_template(template, {"$secrets": secrets})
            except TemplateError as exc:
                # the template text may hold a password: name the field, never its value
                raise InvalidInputError(
                    f"prerequisites.{name}.auth.{prop}: {exc}; {exc.fix}",
                    details=[f"prerequisites.{name}.auth.{prop}: {exc}"]) from None
        result[name] = rendered
    return result
