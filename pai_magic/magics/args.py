"""Turning what a researcher typed on a magic line into checked values.

IPython's own ``parse_argstring`` splits the line in non-POSIX mode (quotes stay in the
values) and lets ``shlex`` raise ``ValueError`` on an unbalanced quote; both reach the user as
a traceback or a wrong value. :func:`parse_line` splits the POSIX way and turns every problem
into a one-line ``UsageError`` that names the magic and says how to get its help.

The value parsers (:func:`parse_memory`, :func:`parse_task`, :func:`parse_storage`) raise
``UsageError`` too, so a magic can call them straight after parsing.
"""
from __future__ import annotations

import argparse
import re
import shlex
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic_arguments import construct_parser, real_name

from pai_magic.core.errors import one_line as core_one_line

_ROLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class lazy_magic_arguments:  # noqa: N801 - used like IPython's ``magic_arguments`` decorator
    """``@magic_arguments()`` without building the argparse parser at import time.

    IPython's decorator builds every parser (and formats its help) when the class body runs,
    which was over half of ``%load_ext pai_magic``. This one only records; the parser is built
    on the magic's first use (:func:`magic_parser`), and ``%magic?`` still shows the full
    option list because IPython's inspector asks ``obj.getdoc()`` first. Use it with IPython's
    own ``@argument`` decorators and parse with :func:`parse_line`.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if not getattr(func, "has_arguments", False):
            func.has_arguments = True  # type: ignore[attr-defined]
            func.decorators = []  # type: ignore[attr-defined]
        if self.name is not None:
            func.argcmd_name = self.name  # type: ignore[attr-defined]
        func.getdoc = lambda: help_text(func)  # type: ignore[attr-defined]
        return func


def magic_parser(magic_func: Callable[..., Any]) -> argparse.ArgumentParser:
    """The magic's parser, built (and its ``__doc__`` completed) on first use."""
    func = getattr(magic_func, "__func__", magic_func)
    parser = func.__dict__.get("parser")
    if parser is None:
        parser = construct_parser(func)  # also replaces __doc__ with the full help text
        func.__dict__["parser"] = parser
    return parser


def help_text(magic_func: Callable[..., Any]) -> str:
    """The full ``%magic?`` text: summary, usage and one line per option."""
    magic_parser(magic_func)
    return getattr(magic_func, "__func__", magic_func).__doc__ or ""


def one_line(text: str) -> str:
    """Collapse a message to one line, uncut: a magic's error may list several problems."""
    return core_one_line(text, limit=None)


def parse_line(magic_func: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse ``line`` with the ``@magic_arguments`` parser of ``magic_func``.

    Raises ``UsageError`` (never ``SystemExit`` or ``ValueError``) with the magic's name and
    a pointer to its ``?`` help.
    """
    name = real_name(magic_func)
    try:
        argv = shlex.split(line or "", posix=True)
    except ValueError as exc:
        raise UsageError(f"%{name}: {exc} (check your quotes); see %{name}? for the options.") from None
    parser = magic_parser(magic_func)
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(f"%{name}: {one_line(str(exc))}; see %{name}? for the options.") from None
    except SystemExit:  # argparse exits on --help style actions; a kernel must never exit
        raise UsageError(f"%{name}: see %{name}? for the options.") from None


def parse_memory(text: str | None) -> int | None:
    """``8G``, ``512M``, ``1.5GiB``, ``2048`` (MB) -> megabytes, as OpenPAI's ``memoryMB``
    (the core's one grammar, pai_magic.core.jobform, that every face's submit uses)."""
    if text is None:
        return None
    from pai_magic.core.errors import InvalidInputError
    from pai_magic.core.jobform import parse_memory_mb

    try:
        return parse_memory_mb(str(text))
    except InvalidInputError as err:
        raise UsageError(f"--memory: {err}") from None


def parse_task(text: str | None) -> tuple[str | None, int]:
    """``ROLE/INDEX``, ``ROLE`` (index 0) or ``INDEX`` (first role) -> (role, index)."""
    if text is None or text == "":
        return None, 0
    role, sep, index = str(text).partition("/")
    if not sep:
        if role.isdigit():
            return None, int(role)
        index = "0"
    if role and not _ROLE_RE.match(role):
        raise UsageError(f"--task {text!r}: the role name must match [A-Za-z_][A-Za-z0-9_]*, e.g. --task taskrole/0.")
    if not index.isdigit():
        raise UsageError(f"--task {text!r}: the index must be a number, e.g. --task {role or 'taskrole'}/0.")
    return (role or None), int(index)


def parse_storage(text: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:/mount/path`` -> (name, mount path or None for OpenPAI's /mnt/NAME)."""
    name, sep, path = str(text).partition(":")
    name = name.strip()
    if not name or not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise UsageError(f"--storage {text!r}: write NAME or NAME:/mount/path, e.g. --storage confignfs:/data.")
    if sep:
        path = path.strip()
        if not path.startswith("/"):
            raise UsageError(f"--storage {text!r}: the mount path must be absolute, e.g. {name}:/mnt/{name}.")
        return name, path
    return name, None


_RESERVED_VARS = frozenset({"get_ipython", "exit", "quit", "In", "Out", "display"})


def check_var(name: str | None, option: str = "-o") -> str | None:
    """A variable name for ``-o VAR``: a plain identifier that does not shadow what the
    shell itself needs (``get_ipython`` runs every magic; ``_`` names are IPython's)."""
    if name is None:
        return None
    import keyword

    if not _VAR_RE.match(name) or keyword.iskeyword(name):
        raise UsageError(f"{option} {name!r} is not a Python variable name: use letters, digits and _, "
                         f"e.g. {option} job.")
    if name in _RESERVED_VARS or name.startswith("_"):
        raise UsageError(f"{option} {name!r} would hide a name IPython needs: choose another, e.g. {option} job.")
    return name


def check_positive(value: int | None, option: str, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if value < minimum:
        raise UsageError(f"{option} {value} is too small: give a number >= {minimum}.")
    if value > 100_000:
        raise UsageError(f"{option} {value} is too large: give a realistic number.")
    return value
