"""Core errors told in the notebook's words: one line, CLI verbs named as magics.

Pure text (no IPython, no session), so the job watcher (:mod:`.status`) and the error
decorators (:mod:`.errors`) both phrase an error the same way without importing each other.
"""
from __future__ import annotations

import re

from pai_magic.core.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    PaiError,
    PaiTimeoutError,
    UnreachableError,
)
from pai_magic.magics.args import one_line

_BOTH_HINT = re.compile(r"`?pai-magic login[^`/]*`?\s*(?:/|or)\s*(%pai_login)")


#: CLI verb -> the magic that does the same in a notebook (``submit`` is the cell magic).
_VERB_TO_MAGIC = {
    "login": "%pai_login", "profiles": "%pai_profile", "local": "%pai_local", "jobs": "%pai_jobs",
    "job": "%pai_job", "stop": "%pai_stop", "logs": "%pai_logs", "submit": "%%pai_job",
    "ssh-info": "%pai_ssh_info", "ssh-key": "%pai_ssh_key", "ssh": "%pai_ssh", "images": "%pai_images",
    "upload": "%pai_upload", "download": "%pai_download", "storage": "%pai_storage",
    "mount": "%pai_mount", "umount": "%pai_umount", "doctor": "%pai_doctor",
    "kernel": "%pai_kernel", "logout": "%pai_logout", "run-notebook": "%pai_run_notebook",
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
        return f"The cluster{where} refused the token (expired or revoked; {message.rstrip('.')}): run %pai_login to log in again."
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
