"""Kernelspecs that start a kernel inside an OpenPAI job: the one place their rules live.

The CLI (``pai-magic kernel install``) and the magic (``%pai_kernel install``) parse what the
person typed and call these functions. A kernelspec names a PROFILE (cluster URL, user, token
stay in the 0600 profile file), never a token or password: kernelspecs are world-readable
files that get copied around. The job settings go into ``metadata.kernel_provisioner.config``,
which jupyter_client passes to :class:`pai_magic.kernel.provisioner.PaiKernelProvisioner`.

Kernelspecs are written to the user's Jupyter data dir (``JUPYTER_DATA_DIR`` is respected),
where every frontend (JupyterLab's launcher, VS Code, ``jupyter console``, nbclient) finds them.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pai_magic.core.errors import InvalidInputError, NotFoundError

PROVISIONER_NAME = "pai-magic"
DEFAULT_LEASE_SECONDS = 180.0
DEFAULT_START_TIMEOUT = 900.0  # a cluster may take minutes to schedule the job and pull the image
DEFAULT_PYTHON = "python3"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_PYTHON_RE = re.compile(r"^[A-Za-z0-9_./+=-]+(?: [A-Za-z0-9_./+=-]+)*\Z")
_STORAGE_RE = re.compile(r"^[A-Za-z0-9_.-]+(?::/[^\s:]*)?\Z")


@dataclass
class KernelSettings:
    """What a kernel job asks for; everything the provisioner needs besides the profile's secrets."""

    image: str
    profile: str = ""
    gpu: int = 1
    cpu: int = 4
    memory_mb: int = 16384
    virtual_cluster: str = ""
    storages: list[str] = field(default_factory=list)
    python: str = DEFAULT_PYTHON
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    start_timeout: float = DEFAULT_START_TIMEOUT

    def validate(self) -> "KernelSettings":
        from pai_magic.core.jobform import check_count, check_image

        if not isinstance(self.image, str) or not self.image.strip():
            raise InvalidInputError("Give the image the kernel runs in, e.g. --image pytorch/pytorch:latest "
                                    "(it needs Python with ipykernel).")
        self.image = check_image(self.image)  # the rules (and words) of every job form
        # a job with no CPU would be refused by the cluster only when the kernel starts
        self.gpu = check_count("gpu", self.gpu) or 0
        self.cpu = check_count("cpu", self.cpu) or self.cpu
        value = self.memory_mb
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"--memory must be at least 1 MB, e.g. 16G, got {value!r}.")
        if not isinstance(self.python, str) or not _PYTHON_RE.match(self.python.strip()):
            raise InvalidInputError(f"--python {self.python!r} is not a command: give e.g. python3 or "
                                    "/opt/conda/bin/python (letters, digits, / . _ - + = and spaces).")
        self.python = self.python.strip()
        for storage in self.storages:
            if not _STORAGE_RE.match(str(storage)):
                raise InvalidInputError(f"--storage {storage!r} is not NAME or NAME:/mount/path.")
        try:
            lease = float(self.lease_seconds)
        except (TypeError, ValueError):
            raise InvalidInputError(f"lease_seconds {self.lease_seconds!r} is not a number of seconds.") from None
        if not math.isfinite(lease) or lease < 5:
            raise InvalidInputError(f"--lease must be a number of seconds, at least 5 (the provisioner renews "
                                    f"it every few seconds), got {self.lease_seconds!r}.")
        self.lease_seconds = lease
        try:
            start = float(self.start_timeout)
        except (TypeError, ValueError):
            start = math.nan
        if not math.isfinite(start) or start <= 0:
            raise InvalidInputError(f"--start-timeout must be more than 0 seconds (how long a start may wait for "
                                    f"the cluster), got {self.start_timeout!r}.")
        self.start_timeout = start
        return self

    def config(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v not in ("", None, [])}


def resources_text(gpu: int) -> str:
    return f"{gpu} GPU" if gpu == 1 else (f"{gpu} GPUs" if gpu else "no GPU")


def display_name(cluster: str, settings: KernelSettings, kernel_name: str = "") -> str:
    """``Python 3 on OpenPAI (lab, 1 GPU)``: what the launcher shows; with ``kernel_name``
    ``Python 3 on OpenPAI (lab, 1 GPU, pai-big)``, for a kernel that would look like another."""
    extra = f", {kernel_name}" if kernel_name else ""
    return f"Python 3 on OpenPAI ({cluster}, {resources_text(settings.gpu)}{extra})"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(f"Kernel name {name!r} is invalid: use letters, digits, '.', '_' and '-' "
                                "(at most 64, not starting with '.' or '-'), e.g. pai-gpu.")
    return name.lower()


def kernels_dir() -> Path:
    """``<Jupyter data dir>/kernels``: the per-user kernelspec folder."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kernels"


def build_kernelspec(cluster: str, settings: KernelSettings) -> dict[str, Any]:
    """The kernel.json content. ``argv`` is what runs in the task (the supervisor replaces the
    Python with the configured one); interrupts are messages, since no signal reaches the task."""
    settings.validate()
    return {
        "argv": [settings.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display_name(cluster, settings),
        "language": "python",
        "interrupt_mode": "message",
        "env": {},
        "metadata": {
            "debugger": False,
            "supported_encryption": ["curve"],
            "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": settings.config()},
        },
    }


def install_kernel(name: str, settings: KernelSettings, *, replace: bool = True,
                   check_cluster: bool = True) -> dict[str, Any]:
    """Write the kernelspec ``name``; returns ``{name, display_name, path, config, replaced, warnings}``.

    The profile must exist (it is what the kernel connects with); the empty profile means the
    active one at install time, written into the spec so a later ``pai-magic use`` does not
    move running notebooks to another cluster. A virtual cluster given explicitly is checked
    against the cluster (``check_cluster``): one it says is unknown or not the user's is an
    error; one it cannot be asked about is installed anyway, with a line in ``warnings``.
    """
    from pai_magic.core.profiles import ENV_PROFILE_NAME, check_profile_name, load_profile

    name = check_name(name)
    settings.validate()
    if settings.profile:  # a named profile is looked up in the profile file, under the one name rule
        check_profile_name(settings.profile)
    profile = load_profile(settings.profile or None)
    if not settings.profile and profile.name == ENV_PROFILE_NAME:
        # the kernelspec names a profile, never a token, and the Jupyter server that starts the
        # kernel later looks the name up in the profile file: "env" would never be found there
        raise InvalidInputError("A kernel needs a saved profile (PAI_URL / PAI_TOKEN reach only this process): "
                                "log in with `pai-magic login URL` first, or give --profile NAME.")
    settings.profile = profile.name
    warnings: list[str] = []
    if settings.virtual_cluster and check_cluster:
        from pai_magic.core.jobform import check_virtual_cluster
        from pai_magic.core.virtual_clusters import check_virtual_cluster_on

        vc = settings.virtual_cluster = check_virtual_cluster(settings.virtual_cluster) or ""
        warning = check_virtual_cluster_on(profile, vc)
        warnings += [warning] if warning else []
    settings.virtual_cluster = settings.virtual_cluster or profile.virtual_cluster or ""
    spec = build_kernelspec(profile.name, settings)
    # two kernels on one cluster with as many GPUs (another image, Python or size) would be two
    # launcher cards with the same words: the later one also names itself
    if any(row["display_name"] == spec["display_name"] for row in list_kernels() if row["name"] != name):
        spec["display_name"] = display_name(profile.name, settings, name)
    target = kernels_dir() / name
    if target.exists() and not replace:
        raise InvalidInputError(f"A kernel named {name} is installed already: remove it first "
                                f"(pai-magic kernel remove {name}) or choose another name.")
    replaced = (target / "kernel.json").exists()
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "kernel.json.tmp"
    tmp.write_text(json.dumps(spec, indent=1) + "\n")
    tmp.replace(target / "kernel.json")
    return {"name": name, "display_name": spec["display_name"], "path": str(target),
            "config": spec["metadata"]["kernel_provisioner"]["config"], "replaced": replaced, "warnings": warnings}


def _ours(spec: dict[str, Any]) -> bool:
    prov = (spec.get("metadata") or {}).get("kernel_provisioner") or {}
    return prov.get("provisioner_name") == PROVISIONER_NAME


def list_kernels() -> list[dict[str, Any]]:
    """Every installed kernelspec that starts a kernel on OpenPAI (any Jupyter path)."""
    from jupyter_client.kernelspec import KernelSpecManager

    rows: list[dict[str, Any]] = []
    for name, path in sorted(KernelSpecManager().find_kernel_specs().items()):
        try:
            spec = json.loads((Path(path) / "kernel.json").read_text())
        except (OSError, ValueError):
            continue
        if _ours(spec):
            config = spec["metadata"]["kernel_provisioner"].get("config") or {}
            rows.append({"name": name, "display_name": spec.get("display_name", name), "path": str(path),
                         "profile": config.get("profile", ""), "image": config.get("image", ""),
                         "gpu": config.get("gpu", 0), "cpu": config.get("cpu", 0),
                         "memory_mb": config.get("memory_mb", 0)})
    return rows


def remove_kernel(name: str) -> dict[str, Any]:
    """Remove an OpenPAI kernelspec (refuses to touch other kernels)."""
    for row in list_kernels():
        if row["name"] == name.lower():
            shutil.rmtree(row["path"])
            return row
    raise NotFoundError(f"No OpenPAI kernel named {name} is installed: see `pai-magic kernel list`.")
