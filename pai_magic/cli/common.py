"""Helpers every CLI verb shares: the client for ``--profile``, printing text or ``--json``,
reading a secret from stdin or an environment variable (never argv, never a prompt), tables."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
from typing import Any, Callable, Iterable, Sequence

from pai_magic.core.errors import InvalidInputError


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def profile_name(args: argparse.Namespace) -> str | None:
    return getattr(args, "profile", None)


def client_for(args: argparse.Namespace):
    """The PaiClient of the profile chosen by ``--profile`` / PAI_PROFILE / PAI_URL / the active one."""
    from pai_magic.core.client import PaiClient
    from pai_magic.core.profiles import load_profile

    return PaiClient(load_profile(profile_name(args)))


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    return value


def emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str] | None = None) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text`` (a string or a function making it).

    Every key of our own in ``data`` is snake_case (scripts use jq; tests/integration/test_cli_json_keys.py
    checks every verb). The producers spell them so; nothing is converted here, because some values
    are other people's data that must keep its keys (a job protocol's ``taskRoles``, a storage's ``data``).
    """
    if wants_json(args):
        sys.stdout.write(json.dumps(to_jsonable(data), indent=None, sort_keys=False) + "\n")
    else:
        body = text() if callable(text) else text
        if body:
            sys.stdout.write(body if body.endswith("\n") else body + "\n")
    sys.stdout.flush()


def read_secret(*, from_stdin: bool, env_var: str | None, what: str) -> str | None:
    """A password or token from stdin (first line) or from ``env_var``; None when neither was asked."""
    if from_stdin and env_var:
        raise InvalidInputError(f"Give the {what} once: --{what}-stdin or --{what}-env, not both.")
    if from_stdin:
        line = sys.stdin.readline()
        value = line.rstrip("\r\n")
        if not value:
            raise InvalidInputError(
                f"No {what} on stdin: pipe it in, e.g. `printf %s \"$PASS\" | pai-magic login ...`.")
        return value
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise InvalidInputError(f"The environment variable {env_var} holding the {what} is not set or empty.")
        return value
    return None


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain, aligned text table (no colours: output is often piped)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def when(ms: int | None) -> str:
    """Epoch milliseconds as local ``YYYY-MM-DD HH:MM:SS``."""
    if not ms:
        return "-"
    try:
        return _dt.datetime.fromtimestamp(int(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(ms)


def nonempty(items: Iterable[str]) -> list[str]:
    return [i for i in items if i]
