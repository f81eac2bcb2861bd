"""The EnvironmentManager: what "Create Notebook Job" offers when the jobs run on OpenPAI.

One environment per image (``c.PaiScheduler.images``), each with the compute types of the
profile's virtual cluster, so the dialog's "Compute type" menu reads CPU, 1 GPU, 2 GPUs ...
The virtual cluster's GPU total is asked once (cached a minute); an unreachable cluster still
lists the configured types rather than an empty dialog.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List

from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.models import RuntimeEnvironment

from pai_magic.scheduler.settings import DEFAULT_COMPUTE_TYPES, compute_types

DEFAULT_IMAGES = ["jupyter/base-notebook:python-3.11"]


class PaiEnvironmentManager(EnvironmentManager):
    """Images x compute types; bound to a :class:`PaiScheduler` for its configuration."""

    def __init__(self, scheduler: Any = None) -> None:
        self.scheduler = scheduler
        self._vc_gpus: tuple[float, int | None] | None = None

    def _config(self, name: str, default: Any) -> Any:
        return getattr(self.scheduler, name, None) or default

    def _gpus(self) -> int | None:
        if self._vc_gpus is not None and time.monotonic() - self._vc_gpus[0] < 60:
            return self._vc_gpus[1]
        gpus: int | None = None
        try:
            from pai_magic.core.client import PaiClient
            from pai_magic.core.profiles import load_profile

            profile = load_profile(self._config("profile", None))
            with PaiClient(profile, timeout=(3.0, 5.0), retries=0) as client:
                vcs = client.virtual_clusters()
            total = (vcs.get(profile.virtual_cluster) or {}).get("resourcesTotal") or {}
            gpus = int(total.get("gpu") or total.get("GPUs") or 0)
        except Exception:  # noqa: BLE001 - the dialog must open even when the cluster does not answer
            gpus = None
        self._vc_gpus = (time.monotonic(), gpus)
        return gpus

    def compute_types(self) -> dict[str, dict[str, int]]:
        return compute_types(self._config("compute_types", DEFAULT_COMPUTE_TYPES), self._gpus())

    def list_environments(self) -> List[RuntimeEnvironment]:
        types = list(self.compute_types())
        envs = []
        for image in self._config("images", DEFAULT_IMAGES):
            envs.append(RuntimeEnvironment(
                name=image, label=f"OpenPAI: {image}",
                description=f"Runs on the OpenPAI cluster of your pai_magic profile in image {image}",
                file_extensions=["ipynb"], output_formats=["ipynb", "html"],
                metadata={"image": image}, compute_types=types,
                default_compute_type=types[0] if types else None, utc_only=False))
        return envs

    def manage_environments_command(self) -> str:
        return ""

    def output_formats_mapping(self) -> Dict[str, str]:
        return {"ipynb": "Notebook", "html": "HTML"}
