"""pai_magic: drive an OpenPAI GPU cluster from Jupyter.

``%load_ext pai_magic`` registers the magics (``%pai_login``, ``%%pai_job``, ``%pai_jobs`` ...).
This module imports nothing at load: the magics module imports the core (HTTP, YAML, SSH)
only when a magic first needs it, so loading the extension stays fast.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"  # the one version source: pyproject reads it ([tool.hatch.version])


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pai_magic``: register every pai_magic Magics class."""
    from pai_magic.magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext pai_magic``: stop the job watcher and remove the magics."""
    from pai_magic.magics import unregister

    unregister(ipython)


def job(name: str, user: str | None = None) -> Any:
    """Re-attach to an existing job by name (e.g. after a kernel restart).

    Returns a ``JobHandle``; ending a cell with it shows its live status again.
    ``name`` may be ``USER~NAME``. Raises the core's ``PaiError`` (one line) when the job
    does not exist or the cluster cannot be reached.
    """
    from pai_magic.magics.handle import attach

    if user is None and "~" in (name or ""):
        user, name = name.split("~", 1)
    return attach(name, user=user)
