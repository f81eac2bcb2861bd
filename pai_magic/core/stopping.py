"""Stopping a job from any face (``pai-magic stop``, ``%pai_stop``, the sidebar's Stop).

Why a module above :mod:`pai_magic.core.jobs`: a notebook run started on this machine is
stopped the way its own stop does it (the runner saves, what ran is fetched, then the job
stops), and the notebook core itself builds on ``core.jobs``; a plain STOP ended the container
with the executed cells still in it, lost for good.
"""
from __future__ import annotations

from pai_magic.core.client import PaiClient
from pai_magic.core.jobs import stop_job as stop_plain_job
from pai_magic.core.kinds import NOTEBOOK, job_kind
from pai_magic.core.models import JobDetail
from pai_magic.core.notebook.results import find_result
from pai_magic.core.notebook.run import stop_run


def stop_job(client: PaiClient, name: str, *, user: str | None = None, wait: bool = False,
             timeout: float | None = 60.0, poll: float = 2.0) -> JobDetail | None:
    """:func:`pai_magic.core.jobs.stop_job`, with a notebook run of this machine stopped its own way."""
    return stop_plain_job(client, name, user=user, wait=wait, timeout=timeout, poll=poll,
                          stopper=stop_notebook_run)


def stop_notebook_run(client: PaiClient, name: str, user: str | None) -> bool:
    """Stop a notebook run of this machine its own way; False when ``name`` is not one (another
    kind, another user's, or a run started elsewhere), and then a plain STOP is sent."""
    if job_kind(name) != NOTEBOOK or (user is not None and user != client.user):
        return False
    if find_result(f"{client.user}~{name}") is None:
        return False  # started elsewhere: no folder here to bring it into
    stop_run(client, name)
    return True
