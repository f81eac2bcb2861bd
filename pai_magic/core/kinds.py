"""What a job was started for, read from its name alone.

A job list (the cluster's, the sidebar's, ``%pai_jobs``) carries names, not configs, so the
kind of a job pai_magic started on a person's behalf (a notebook kernel, a notebook run) is
written into the name's prefix: every face can label it without one more request per row,
and so can the OpenPAI portal's own job list, where a person sees the same prefix.
"""
from __future__ import annotations

KERNEL = "kernel"
NOTEBOOK = "notebook"

# Names match ^[a-zA-Z0-9_-]+$; the readable stem and the unique suffix follow the prefix.
PREFIXES: dict[str, str] = {KERNEL: "pai-kernel-", NOTEBOOK: "pai-nb-"}
LABELS: dict[str, str] = {KERNEL: "kernel", NOTEBOOK: "notebook run"}


def job_kind(name: str) -> str | None:
    """``KERNEL``, ``NOTEBOOK`` or None for a job name (``user~name`` or bare)."""
    bare = name.split("~", 1)[-1]
    for kind, prefix in PREFIXES.items():
        if bare.startswith(prefix):
            return kind
    return None


def kind_stem(kind: str, stem: str) -> str:
    """The stem to pass to ``unique_job_name`` for a job of ``kind``."""
    return PREFIXES[kind] + stem


def kind_short_name(name: str) -> str:
    """The bare name without its kind prefix: what a narrow list shows beside the kind label.

    Every kernel job's name starts with the same 11 characters, so a list that cuts long
    names would show ``pai-kerne...`` for all of them; the label already says the kind.
    """
    bare = name.split("~", 1)[-1]
    kind = job_kind(bare)
    return bare[len(PREFIXES[kind]):] if kind else bare


def kind_label(name: str) -> str:
    """The short label a face shows beside a job name ('' for an ordinary job)."""
    kind = job_kind(name)
    return LABELS[kind] if kind else ""
