"""``pai-magic images``, ``push``, ``image-tag``, ``image-rm`` (``doctor`` is in cli/doctor.py).

Thin: parse, call one function of :mod:`pai_magic.core.registry`, print text or ``--json``.
The registry is the profile's (``--profile``), or ``--registry URL`` with credentials from
``PAI_REGISTRY_USER`` / ``PAI_REGISTRY_PASSWORD`` or ~/.docker/config.json.
"""
from __future__ import annotations

import argparse
import sys

from pai_magic.cli.common import emit, profile_name, table, wants_json


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="URL",
                        help="registry to use instead of the profile's, scheme explicit (http://host:5000)")


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: SLF001
    i = subparsers.add_parser(
        "images", help="list the registry's repositories, tags and image details",
        description="Every repository of the registry (catalog pages followed to the end); --tags adds "
                    "their tags, --details one row per tag and platform (digest, size, created, OS/arch).")
    i.add_argument("filter", nargs="?", help="substring or glob on the repository name, e.g. 'team/*'")
    i.add_argument("--tags", action="store_true", help="list the tags of each repository")
    i.add_argument("--details", action="store_true", help="digest, compressed size, created, platform per tag")
    i.add_argument("--workers", type=int, default=8, help="concurrent requests (default 8)")
    _registry_option(i)
    i.set_defaults(func=run_images)

    p = subparsers.add_parser(
        "push", help="push a `docker save` archive to the registry (no Docker needed)",
        description="Push IMAGE.tar (from `docker save`, classic or OCI layout) as REPO:TAG: layers gzipped "
                    "while hashed, existing blobs skipped, the manifest last.")
    p.add_argument("archive", metavar="IMAGE.tar")
    p.add_argument("target", metavar="REPO:TAG")
    p.add_argument("--image", help="which image of an archive holding several (its RepoTag)")
    _registry_option(p)
    p.set_defaults(func=run_push)

    t = subparsers.add_parser("image-tag", help="give an image another tag (a manifest copy, no layer transfer)")
    t.add_argument("source", metavar="SRC", help="REPO:TAG or REPO@DIGEST")
    t.add_argument("target", metavar="DST", help="REPO:TAG")
    _registry_option(t)
    t.set_defaults(func=run_tag)

    r = subparsers.add_parser("image-rm", help="delete an image from the registry (by digest)",
                              description="Delete REPO:TAG. Registries delete by digest: when other tags "
                                          "name the same image the delete is refused unless --force, which "
                                          "removes them too (named on stderr).")
    r.add_argument("reference", metavar="REPO:TAG")
    r.add_argument("--force", action="store_true", help="also delete the other tags of the same image")
    _registry_option(r)
    r.set_defaults(func=run_rm)


def _client(args: argparse.Namespace, workers: int = 8):
    from pai_magic.core.registry import open_registry

    return open_registry(getattr(args, "registry", None), profile_name(args), workers=workers)


def run_images(args: argparse.Namespace) -> int:
    from pai_magic.core.errors import InvalidInputError
    from pai_magic.core.registry import human_size, image_details

    if args.workers < 1 or args.workers > 64:
        raise InvalidInputError("--workers must be between 1 and 64.")
    with _client(args, args.workers) as client:
        if args.details:
            rows = image_details(client, pattern=args.filter)
            emit(args, [r.to_dict() for r in rows], lambda: table(
                [[r.repository, r.tag, r.platform, r.digest[:19] if r.digest else "-", human_size(r.size),
                  r.created or "-", r.error or ""] for r in rows],
                ["REPOSITORY", "TAG", "PLATFORM", "DIGEST", "SIZE", "CREATED", ""]) if rows else "No images.")
        elif args.tags:
            listing = client.list_images(args.filter)
            emit(args, [i.to_dict() for i in listing], lambda: table(
                [[i.repository, ", ".join(i.tags) or "(no tags)"] for i in listing],
                ["REPOSITORY", "TAGS"]) if listing else "No repositories.")
        else:
            names = client.repositories(args.filter)
            emit(args, names, lambda: "\n".join(names) if names else "No repositories.")
    return 0


class _Progress:
    """Push progress on stderr: a line per blob, a live percentage when stderr is a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, event) -> None:
        from pai_magic.core.registry import human_size

        label = f"[{min(event.blob_index + 1, event.blob_count)}/{event.blob_count}]"
        if event.phase == "upload":
            if self.live and event.total_bytes:
                pct = 100 * event.done_bytes // max(1, event.total_bytes)
                sys.stderr.write(f"\r{label} uploading {event.digest[7:19]} {pct:3d}% of "
                                 f"{human_size(event.total_bytes)}")
                if event.done_bytes >= event.total_bytes:
                    sys.stderr.write("\n")
            elif event.done_bytes >= (event.total_bytes or 0):
                sys.stderr.write(f"{label} uploaded {event.digest[7:19]} ({human_size(event.total_bytes)})\n")
        elif event.phase == "skip":
            sys.stderr.write(f"{label} exists   {event.digest[7:19]} (skipped)\n")
        elif event.phase == "compress":
            sys.stderr.write(f"{label} compressing layer {event.blob_index + 1}\n")
        elif event.phase == "config":
            sys.stderr.write(f"{label} uploaded config {event.digest[7:19]}\n")
        elif event.phase == "manifest":
            sys.stderr.write("writing the manifest\n")
        sys.stderr.flush()


def run_push(args: argparse.Namespace) -> int:
    from pai_magic.core.registry import human_size, push_archive

    with _client(args) as client:
        result = push_archive(client, args.archive, args.target, image=args.image,
                              progress=None if wants_json(args) else _Progress())
        where = f"{client.host}/{result.reference}"
    emit(args, {**result.__dict__, "image": where}, lambda: (
        f"pushed {where} {result.digest} ({result.uploaded_blobs} blobs uploaded, {human_size(result.uploaded_bytes)}; "
        f"{result.skipped_blobs} already there)"))
    return 0


def run_tag(args: argparse.Namespace) -> int:
    with _client(args) as client:
        digest = client.tag(args.source, args.target)
    emit(args, {"source": args.source, "target": args.target, "digest": digest},
         f"tagged {args.target} -> {digest}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.delete(args.reference, force=args.force)
    if result.warning and not wants_json(args):
        sys.stderr.write(f"warning: {result.warning}\n")
    emit(args, {**result.__dict__, "warning": result.warning}, f"deleted {result.reference} ({result.digest})")
    return 0
