"""Core errors become sentences a researcher understands, as one-line ``UsageError``.

A ``UsageError`` is what IPython shows as a single red line without a traceback, so every
failure the user can act on must end up as one. The core's messages already say what to do
next; here they get the notebook's words (``%pai_login`` rather than ``pai-magic login``) and
the context only the magic knows (the job name, the cluster URL).

Use :func:`usage_errors` as a context manager, or :func:`friendly` as a decorator on a
magic method.
"""
from __future__ import annotations

import contextlib
import functools
import re
from typing import Any, Callable, Iterator, TypeVar

from IPython.core.error import UsageError

from pai_magic.core.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    PaiError,
    PaiTimeoutError,
    UnreachableError,
)
from pai_magic.magics.args import one_line

F = TypeVar("F", bound=Callable[..., Any])


_BOTH_HINT = re.compile(r"`?pai-magic login[^`/]*`?\s*(?:/|or)\s*(%pai_login)")


#: CLI verb -> the magic that does the same in a notebook (``submit`` is the cell magic).
_VERB_TO_MAGIC = {
    "login": "%pai_login", "profiles": "%pai_profile", "local": "%pai_local", "jobs": "%pai_jobs",
    "job": "%pai_job", "stop": "%pai_stop", "logs": "%pai_logs", "submit": "%%pai_job",
    "ssh-info": "%pai_ssh_info", "ssh-key": "%pai_ssh_key", "ssh": "%pai_ssh", "images": "%pai_images",
    "upload": "%pai_upload", "download": "%pai_download", "storage": "%pai_storage",
    "mount": "%pai_mount", "umount": "%pai_umount",
}
# `pai-magic VERB ARGS` (quoted) or a bare pai-magic VERB; longest verbs first (ssh-info before ssh)
_VERBS = "|".join(sorted((re.escape(v) for v in _VERB_TO_MAGIC), key=len, reverse=True))
_QUOTED_CLI = re.compile(rf"`pai-magic ({_VERBS})\b([^`]*)`")
_BARE_CLI = re.compile(rf"\bpai-magic ({_VERBS})(?![\w-])")
_SAME_TWICE = re.compile(r"(%%?pai_\w+)\s*(?:/|or)\s*\1(?!\w)")


def _cli_to_magic(text: str) -> str:
    """The core speaks to every face; in a notebook the CLI verbs have magic names
    (``check with `pai-magic jobs``` would send a researcher to a terminal)."""
    text = _BOTH_HINT.sub(r"\1", text)
    text = _QUOTED_CLI.sub(lambda m: _VERB_TO_MAGIC[m.group(1)] + m.group(2).replace("--token-stdin", "--token")
                           .replace(" --write-profile", ""), text)
    text = _BARE_CLI.sub(lambda m: _VERB_TO_MAGIC[m.group(1)], text)
    return _SAME_TWICE.sub(r"\1", text)  # "%pai_images / pai-magic images" said it twice


def friendly_message(err: PaiError, *, url: str | None = None, job: str | None = None,
                     cluster: bool = True) -> str:
    """One line for ``err``, told in the notebook's terms.

    ``cluster=False`` for errors that did not come from the OpenPAI cluster (a registry's 401
    or a refused image delete is not "the cluster refused the token" / "a reused job name"):
    then only the core's own message is used, with CLI verbs named as magics.
    """
    message = _cli_to_magic(one_line(str(err))).replace(
        "--request-timeout / PAI_MAGIC_REQUEST_TIMEOUT", "%config PaiMagics.request_timeout = SECONDS")
    if not cluster:
        return message
    if isinstance(err, AuthError):
        if "%pai_login" in message:
            return message
        where = f" at {url}" if url else ""
        return (f"The cluster{where} refused the token (expired or revoked; {message.rstrip('.')}): "
                "run %pai_login to log in again.")
    if isinstance(err, ConflictError):
        name = f"'{job}'" if job else "of this job"
        return (f"The job name {name} was used before, and OpenPAI never reuses a name, not even of a "
                f"finished job: give the magic a NAME (a unique suffix is added) or change `name:` in the cell.")
    if isinstance(err, UnreachableError):
        if url and url not in message:
            return f"Cannot reach the cluster at {url}: {message}"
        return message
    if isinstance(err, InvalidInputError) and err.details:
        # the core's message usually quotes the first problem already: add only the others
        rest = [one_line(d) for d in err.details
                if one_line(d) not in message and one_line(d).partition(": ")[2] not in message]
        if not rest:
            return message
        shown = "; ".join(rest[:3])
        more = f" (+{len(rest) - 3} more)" if len(rest) > 3 else ""
        return f"{message.rstrip('.:;')}. Also: {shown}{more}"
    if isinstance(err, PaiTimeoutError):
        return message
    return message


@contextlib.contextmanager
def usage_errors(*, url: str | None = None, job: str | None = None) -> Iterator[None]:
    """Turn any ``PaiError`` raised inside into a one-line ``UsageError``."""
    try:
        yield
    except UsageError:
        raise
    except PaiError as err:
        raise UsageError(friendly_message(err, url=url, job=job)) from None


def _magic_request_timeout(magics: Any) -> Any:
    """Every request a magic makes (logins too) waits at most ``PaiMagics.request_timeout``."""
    from pai_magic.core.deadline import request_timeout_scope

    try:
        from pai_magic.magics.session import get_session

        seconds = get_session(magics.shell).request_timeout()
    except Exception:  # noqa: BLE001 - no session: the core's default applies
        seconds = None
    return request_timeout_scope(seconds)


def friendly(func: F | None = None, *, cluster: bool = True) -> Any:
    """Decorator for magic methods: ``PaiError`` -> one-line ``UsageError``.

    The cluster URL comes from the magic's session when one is active, so an unreachable or
    401 answer names the cluster. ``@friendly(cluster=False)`` for magics that talk to
    something else (the registry): see :func:`friendly_message`.
    """
    if func is None:
        return lambda f: friendly(f, cluster=cluster)

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with _magic_request_timeout(self):
                return func(self, *args, **kwargs)
        except UsageError:
            raise
        except PaiError as err:
            url = None
            if cluster:
                try:
                    from pai_magic.magics.session import get_session

                    url = get_session(self.shell).known_url()
                except Exception:  # noqa: BLE001 - context only; never hide the real error
                    url = None
            raise UsageError(friendly_message(err, url=url, cluster=cluster)) from None

    return wrapper  # type: ignore[return-value]


def _one_line_handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """A ``PaiError`` escaping from user code (``pai_magic.job("typo").wait()``) shows as one
    line in the notebook's terms, like a magic's error, instead of a traceback through HTTP code."""
    import sys

    # which service raised it is unknown here: the core's own message, no cluster rewording
    message = friendly_message(value, cluster=False) if isinstance(value, PaiError) else str(value)
    print(f"{etype.__name__}: {message}", file=sys.stderr)
    return None


def install_one_line_errors(ipython: Any) -> bool:
    """Show escaping PaiErrors as one line; only when no other extension owns IPython's single
    custom-exception hook (it is one slot: taking it from another extension would break that one)."""
    if not hasattr(ipython, "set_custom_exc") or getattr(ipython, "custom_exceptions", ()):
        return False
    ipython.set_custom_exc((PaiError,), _one_line_handler)
    return True


def remove_one_line_errors(ipython: Any) -> None:
    if getattr(ipython, "custom_exceptions", ()) == (PaiError,):
        ipython.set_custom_exc((), None)
