"""Docker registry support: list, inspect, push a ``docker save`` tar, tag, delete, doctor.

Modules: ``auth`` (challenges, Basic, Bearer tokens per scope), ``transport`` (Session,
timeouts, retries, errors), ``client`` (catalog, tags, manifests, blobs, tag, delete),
``details`` (digest, size, created, platform rows), ``push`` (docker-save archives),
``doctor`` (insecure-registries), ``job_image`` (a job's image prerequisite), ``models``.
"""
from pai_magic.core.registry.client import RegistryClient, open_registry
from pai_magic.core.registry.details import image_details, tag_details
from pai_magic.core.registry.doctor import DoctorCheck, check_insecure_registry
from pai_magic.core.registry.job_image import JobImage, job_image, job_image_from_profile
from pai_magic.core.registry.models import (
    DeleteResult,
    ImageDetail,
    ImageRef,
    PushProgress,
    PushResult,
    RepositoryTags,
    human_size,
    parse_reference,
)
from pai_magic.core.registry.push import push_archive

__all__ = [
    "RegistryClient", "open_registry", "human_size", "image_details", "tag_details", "DoctorCheck", "check_insecure_registry",
    "JobImage", "job_image", "job_image_from_profile", "DeleteResult", "ImageDetail", "ImageRef",
    "PushProgress", "PushResult", "RepositoryTags", "parse_reference", "push_archive",
]
