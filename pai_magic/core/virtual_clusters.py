"""Whether a virtual cluster (queue) exists on the cluster and the user may submit to it.

A setting that is only used later (a kernelspec's ``--vc``: the job is submitted when someone
opens a notebook, maybe days after the install) fails far from where it was typed: the check
belongs where the name is typed. But writing such a setting offline is legitimate, so
:func:`check_virtual_cluster_on` answers a warning (the check could not be made) instead of an
error when the cluster cannot be asked; only a definite "no" from the cluster is an error.

OpenPAI: ``GET /virtual-clusters`` lists every VC; ``GET /users/<me>`` says which ones the user
may use (``virtualCluster``), and an admin may use all of them.
"""
from __future__ import annotations

from typing import Any, Iterable

from pai_magic.core.errors import InvalidInputError, PaiError, one_line
from pai_magic.core.profiles import Profile


def virtual_cluster_problem(vc: str, clusters: Iterable[str], user: dict[str, Any] | None,
                            url: str) -> str | None:
    """Why ``vc`` cannot be used (one line naming the usable ones), or None when it can.

    ``user`` is the cluster's ``GET /users/<me>`` answer, or None when it could not be read
    (then only existence is checked: the cluster will still refuse a forbidden VC at submit).
    """
    names = sorted(str(c) for c in clusters)
    usable = names
    if isinstance(user, dict) and not user.get("admin"):
        allowed = user.get("virtualCluster")
        if isinstance(allowed, list):
            usable = [n for n in names if n in {str(a) for a in allowed}]
    listed = ", ".join(usable) or "none"
    if vc not in names:
        return (f"Virtual cluster {vc!r} does not exist on {url}; the ones you may use there: {listed}. "
                "Give one of them with --vc.")
    if vc not in usable:
        who = str((user or {}).get("username") or "you")
        return (f"Virtual cluster {vc!r} on {url} is not open to {who}; the ones you may use there: {listed}. "
                "Give one of them with --vc, or ask the cluster's admin for access.")
    return None


def check_virtual_cluster_on(profile: Profile, vc: str) -> str | None:
    """Raise ``InvalidInputError`` when the cluster says ``vc`` is unknown or not the user's;
    return a one-line warning when the cluster could not be asked (not logged in, unreachable,
    token refused), None when the cluster confirmed it."""
    from pai_magic.core.client import PaiClient

    not_checked = f"Virtual cluster {vc!r} was not checked against {profile.url}"
    if not profile.token:
        return f"{not_checked}: profile {profile.name!r} is not logged in (`pai-magic login {profile.url}`)."
    try:
        with PaiClient(profile) as client:
            clusters = client.virtual_clusters()
            try:
                user: dict[str, Any] | None = client.get_user()
            except PaiError:  # e.g. a token that may list VCs but not read the user: existence only
                user = None
    except PaiError as exc:
        return f"{not_checked} ({one_line(str(exc)).rstrip('.')})."
    problem = virtual_cluster_problem(vc, clusters, user, profile.url)
    if problem:
        raise InvalidInputError(problem)
    return None
