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
from typing import Any, Callable, Iterator, TypeVar

from IPython.core.error import UsageError

from pai_magic.core.errors import PaiError
from pai_magic.magics.messages import _cli_to_magic, friendly_message  # noqa: F401  (their old home)

F = TypeVar("F", bound=Callable[..., Any])


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

    return wrapper


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
    if not hasattr(ipython, "set_custom_exc") or getattr(ipython, "custom_exceptions", None):
        return False
    ipython.set_custom_exc((PaiError,), _one_line_handler)
    return True


def remove_one_line_errors(ipython: Any) -> None:
    if getattr(ipython, "custom_exceptions", ()) == (PaiError,):
        ipython.set_custom_exc((), None)
