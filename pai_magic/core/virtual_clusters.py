"""Whether a virtual cluster (queue) exists on the cluster and the user may submit to it.

A setting that is only used later (a kernelspec's ``--vc``: the job is submitted when someone
opens a notebook, maybe days after the install) fails far from where it was typed: the check
belongs where the name is typed. But writing such a setting offline is legitimate, so
:func:`check_virtual_cluster_on` answers a warning (the check could not be made) instead of an
error when the cluster cannot be asked; only a definite "no" from the cluster is an error.

OpenPAI: ``GET /virtual-clusters`` lists every VC; ``GET /users/<me>`` says which ones the user
may use (``virtualCluster``), and an admin may use all of them.

:func:`vc_usage` is the portal's home page in rows: per VC, GPUs, vCPUs and memory in use out of
the total, and whether the user may submit there. Why: a job or a kernel asking for GPUs that
are all taken waits (minutes, or until someone's job ends); this is where to look first.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class VcUsage:
    """One virtual cluster's resources as the cluster reports them (``resourcesUsed`` of ``resourcesTotal``)."""

    name: str
    gpus_used: int
    gpus_total: int
    cpus_used: int
    cpus_total: int
    memory_mb_used: int
    memory_mb_total: int
    usable: bool | None  # the user may submit there; None when the cluster did not say

    @property
    def gpus_free(self) -> int:
        return max(0, self.gpus_total - self.gpus_used)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "gpus_used": self.gpus_used, "gpus_total": self.gpus_total,
                "gpus_free": self.gpus_free, "cpus_used": self.cpus_used, "cpus_total": self.cpus_total,
                "memory_mb_used": self.memory_mb_used, "memory_mb_total": self.memory_mb_total,
                "usable": self.usable}

    def cells(self) -> list[Any]:
        """The row every face shows: name, GPUs free, GPUs, vCPUs, memory (GB), open to you."""
        return [self.name, self.gpus_free, f"{self.gpus_used} of {self.gpus_total}",
                f"{self.cpus_used} of {self.cpus_total}",
                f"{self.memory_mb_used / 1024:.0f} of {self.memory_mb_total / 1024:.0f} GB",
                {True: "yes", False: "no", None: "?"}[self.usable]]


VC_COLUMNS = ("virtual cluster", "GPUs free", "GPUs in use", "vCPUs in use", "memory in use", "yours")
NO_VCS = "The cluster lists no virtual cluster."


def _count(resources: Any, *keys: str) -> int:
    if not isinstance(resources, dict):
        return 0
    for key in keys:
        try:
            return max(0, int(float(resources[key])))
        except (KeyError, TypeError, ValueError):
            continue
    return 0


def vc_usage(client: Any) -> list[VcUsage]:
    """Every virtual cluster with its resources in use, the user's own first (then by name)."""
    clusters = client.virtual_clusters()
    try:
        user: dict[str, Any] | None = client.get_user()
    except PaiError:  # a token that may list VCs but not read the user: "?" in the last column
        user = None
    allowed: set[str] | None = None
    if isinstance(user, dict):
        names = user.get("virtualCluster")
        allowed = None if user.get("admin") or not isinstance(names, list) else {str(n) for n in names}
    rows = []
    for name, info in clusters.items():
        info = info if isinstance(info, dict) else {}
        used, total = info.get("resourcesUsed"), info.get("resourcesTotal")
        usable = None if user is None else (allowed is None or str(name) in allowed)
        rows.append(VcUsage(str(name), _count(used, "GPUs", "gpu"), _count(total, "GPUs", "gpu"),
                            _count(used, "vCores", "cpu"), _count(total, "vCores", "cpu"),
                            _count(used, "memory"), _count(total, "memory"), usable))
    return sorted(rows, key=lambda r: (r.usable is False, r.name))
