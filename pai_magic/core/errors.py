"""One error hierarchy for every face.

Each error carries a one-line message that says what went wrong *and what to do next*,
because the faces (magic, CLI, server extension, widget) print ``str(err)`` as-is and a
researcher should never need a traceback to know the next step.
"""
from __future__ import annotations


def one_line(text: object, limit: int | None = 300) -> str:
    """Collapse a message to one line (faces print exactly one line per error); with
    ``limit``, cut long ones (a server's HTML error page) and say so with "..."."""
    flat = " ".join(str(text).split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - 3] + "..."


class PaiError(Exception):
    """Base of everything pai_magic raises on purpose.

    ``status`` is the HTTP status a face should answer with (the server extension uses it);
    ``code`` is the OpenPAI / registry error code when one came back (``NoJobError`` ...);
    ``field`` names the form field a bad input concerns (``image``, ``gpu`` ..., the keys of
    :mod:`pai_magic.core.jobform`), so a form can show the message next to it; None otherwise.
    """

    status: int = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,  # noqa: B042
                 details: list[str] | None = None, field: str | None = None) -> None:
        # keyword-only extras: __reduce__ below keeps them through pickle and copy
        super().__init__(message)
        self.message = message.strip().splitlines()[0] if message.strip() else type(self).__name__
        self.code = code
        if status is not None:
            self.status = status
        self.details: list[str] = list(details or [])
        self.field = field

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, self.code, self.status, self.details, self.field))


def _rebuild(cls: type[PaiError], message: str, code: str | None, status: int, details: list[str],
             field: str | None) -> PaiError:
    """The other half of ``PaiError.__reduce__`` (the keyword-only fields survive a pickle)."""
    return cls(message, code=code, status=status, details=details, field=field)


class AuthError(PaiError):
    """The token is missing, expired or refused (401)."""

    status = 401


class ForbiddenError(PaiError):
    """Logged in, but not allowed (403), e.g. an application token changing the profile."""

    status = 403


class NotFoundError(PaiError):
    """A job, storage, virtual cluster, image or file that does not exist (404)."""

    status = 404


class ConflictError(PaiError):
    """A name already used: OpenPAI never reuses job names (409)."""

    status = 409


class InvalidInputError(PaiError):
    """Bad input from the user: a malformed job, a wrong option value (400).

    ``details`` holds one ``"path: message"`` line per problem.
    """

    status = 400


class RateLimitedError(PaiError):
    """The cluster's rate limit answered 429."""

    status = 429


class UnreachableError(PaiError):
    """No connection: wrong URL, host down, refused port, DNS failure."""

    status = 502


class PaiTimeoutError(PaiError):
    """A bounded wait ran out (network call, job wait, SSH read)."""

    status = 504


class ServerError(PaiError):
    """The other side failed (5xx) in a way the user cannot fix by changing input."""

    status = 502


class HostKeyError(PaiError):
    """An SSH host key changed within a job: refuse, never prompt."""

    status = 409


class TransferError(PaiError):
    """A file transfer broke or did not verify; no partial file was left in place."""

    status = 502


class MountError(PaiError):
    """Mounting or unmounting a share failed; the message says why and how to fix it."""

    status = 400


class RedirectError(PaiError):
    """The cluster URL answered with a redirect to another address (another host, port or
    scheme): never followed, because the token must not travel there and the answer would be
    another server's; the message names the target so the user can fix the profile's URL."""

    status = 502
