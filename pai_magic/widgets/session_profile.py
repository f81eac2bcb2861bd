"""Which profile a panel shown in a notebook talks to when none is given."""
from __future__ import annotations


def notebook_profile() -> str | None:
    """The profile this notebook chose (``%pai_login --profile``, ``%pai_profile``,
    ``PaiMagics.profile``), or None for the profile file's active one.

    Why: the panel shown in a notebook must talk to the cluster the notebook's magics talk to;
    the file's active profile may have been moved by the CLI or another kernel meanwhile.
    """
    from pai_magic.magics.session import get_session

    return get_session().wanted_profile_name()
