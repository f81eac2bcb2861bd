"""The ``pai-magic`` command line (also ``python -m pai_magic``).

Each area is a module listed in :data:`COMMAND_MODULES` exposing ``register(subparsers)``;
a verb's parser calls ``set_defaults(func=handler)`` where ``handler(args) -> int``.
The frame adds ``--json`` and ``--profile`` to every verb, and turns every
:class:`~pai_magic.core.errors.PaiError` (and every argparse complaint) into exit code 2
with ONE line on stderr, never a traceback. Nothing here prompts: secrets come from stdin
or an environment variable.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from pai_magic.cli.examples import add_examples
from pai_magic.core.errors import InvalidInputError, PaiError

PROG = "pai-magic"

# Other areas add their module here (e.g. "pai_magic.cli.ssh").
COMMAND_MODULES: tuple[str, ...] = (
    "pai_magic.cli.local_cmd",
    "pai_magic.cli.login",
    "pai_magic.cli.jobs",
    "pai_magic.cli.storage",
    "pai_magic.cli.registry",
    "pai_magic.cli.ssh",
    "pai_magic.cli.doctor",
    "pai_magic.cli.kernel",
    "pai_magic.cli.notebook",
    "pai_magic.cli.vcs",
)


class CliUsageError(InvalidInputError):
    """Bad command line: argparse's complaint, raised instead of exiting."""


class RaisingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises on bad input, so one place prints one line (and tests can call main())."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliUsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _add_common(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--profile`` on a verb (SUPPRESS keeps a value given before the verb)."""
    strings = parser._option_string_actions  # noqa: SLF001 (argparse has no public lookup)
    if "--json" not in strings:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help="print machine-readable JSON on stdout")
    if "--profile" not in strings:
        parser.add_argument("--profile", default=argparse.SUPPRESS, metavar="NAME",
                            help="cluster profile to use (default: PAI_PROFILE, PAI_URL, or the active one)")
    if "--request-timeout" not in strings:
        parser.add_argument("--request-timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                            help="give up on the cluster after this long per request, retries included "
                                 "(default: PAI_MAGIC_REQUEST_TIMEOUT or 30)")


def build_parser() -> RaisingParser:
    parser = RaisingParser(prog=PROG, description="Drive an OpenPAI cluster (or the embedded local backend).")
    parser.add_argument("--json", action="store_true", default=False, help="print machine-readable JSON")
    parser.add_argument("--profile", default=None, metavar="NAME", help="cluster profile to use")
    parser.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS",
                        help="give up on the cluster after this long per request (default 30)")
    from pai_magic import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=RaisingParser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for verb, sub in subparsers.choices.items():
        _add_common(sub)
        add_examples(sub, verb)
    add_examples(parser, "")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (0 ok, 1 job not succeeded, 2 error, 130 interrupted)."""
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
        if extra:  # argparse would send the user to the top-level --help; the verb's own help says more
            _deepest(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
        func = getattr(args, "func", None)
        if func is None:
            raise CliUsageError(f"{PROG}: choose a command: {', '.join(sorted(_verbs(parser)))} "
                                f"(see `{PROG} --help`)")
        from pai_magic.core.deadline import request_timeout_scope

        with request_timeout_scope(getattr(args, "request_timeout", None)):
            return int(func(args) or 0)
    except PaiError as exc:
        _error_line(str(exc))
        return 2
    except KeyboardInterrupt:
        _error_line("interrupted")
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that keeps tracebacks away from users
        if os.environ.get("PAI_MAGIC_DEBUG"):
            raise
        _error_line(f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                    "rerun with PAI_MAGIC_DEBUG=1 for details and report it")
        return 2


def _deepest(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the verb the user chose (``kernel install``), for its ``--help`` hint."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _deepest(chosen, args)
    return parser


def _verbs(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return list(action.choices)
    return []


def _error_line(message: str) -> None:
    text = " ".join(str(message).split()) or "error"
    if not text.startswith(PROG):
        text = f"{PROG}: {text}"
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def _quiet_stdout() -> None:
    """After a closed pipe (``pai-magic jobs | head``), keep Python from complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
