"""``%pai_images``, ``%pai_image_push``, ``%pai_image_tag``, ``%pai_image_rm``: the registry from a notebook.

Thin: parse the line, call one function of :mod:`pai_magic.core.registry`, return a
:class:`View` / :class:`Table` (HTML in a notebook, text in a terminal). Registry errors
become one-line ``UsageError``s here rather than through ``@friendly``, whose 401 wording is
about the cluster token, not the registry's credentials.
"""
from __future__ import annotations

import threading
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from pai_magic.magics.args import parse_line
from pai_magic.magics.errors import friendly
from pai_magic.magics.render import Table, View, esc
from pai_magic.magics.session import get_session


class _PushProgress:
    """A progress bar (ipywidgets when it can show, else text lines) fed by PushProgress events."""

    def __init__(self, target: str) -> None:
        self.bar: Any = None
        self.label: Any = None
        self.target = target
        try:
            import ipywidgets as widgets
            from IPython import get_ipython
            from IPython.display import display

            shell = get_ipython()
            if shell is not None and getattr(shell, "kernel", None) is not None:
                self.bar = widgets.FloatProgress(min=0, max=1, description="push", bar_style="info")
                self.label = widgets.Label(value=f"pushing {target}")
                display(widgets.HBox([self.bar, self.label]))
        except Exception:  # noqa: BLE001 - no widgets: text lines instead
            self.bar = None

    def __call__(self, event: Any) -> None:
        from pai_magic.core.registry import human_size

        done_blobs = event.blob_index + (1 if event.phase in ("skip", "config") else 0)
        fraction = 0.0
        if event.blob_count:
            part = (event.done_bytes / event.total_bytes) if event.phase == "upload" and event.total_bytes else 0
            fraction = min(1.0, (done_blobs + part) / (event.blob_count + 1))
        text = {
            "compress": f"compressing layer {event.blob_index + 1}/{event.blob_count - 1}",
            "upload": f"uploading blob {event.blob_index + 1}/{event.blob_count}: "
                      f"{human_size(event.done_bytes)} of {human_size(event.total_bytes)}",
            "skip": f"blob {event.blob_index + 1}/{event.blob_count} already there",
            "config": "config uploaded",
            "manifest": "writing the manifest",
            "done": f"pushed {self.target}",
        }.get(event.phase, event.phase)
        if event.phase == "done":
            fraction = 1.0
        if self.bar is not None:
            self.bar.value = fraction
            self.label.value = text
            if event.phase == "done":
                self.bar.bar_style = "success"
        elif event.phase != "upload" or (event.total_bytes and event.done_bytes >= event.total_bytes):
            print(text, flush=True)

    def failed(self) -> None:
        if self.bar is not None:
            self.bar.bar_style = "danger"


@magics_class
class RegistryMagics(Magics):
    """The private Docker registry of the profile: list, inspect, push a docker-save tar, tag, delete."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._client: Any = None
        self._key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def _registry(self, url: str | None = None, workers: int = 8) -> Any:
        """One client per registry and credentials, kept so digests stay cached between calls."""
        from pai_magic.core.registry import open_registry

        session = get_session(self.shell)
        fresh = open_registry(url, session.wanted_profile_name(), workers=workers)
        creds = fresh.transport.auth.credentials
        key = (fresh.url, creds.username if creds else None, hash(creds.password) if creds else None)
        with self._lock:
            if self._client is not None and self._key == key:
                fresh.close()
                self._client.workers = workers
                return self._client
            if self._client is not None:
                self._client.close()
            self._client, self._key = fresh, key
            return fresh

    @magic_arguments()
    @argument("filter", nargs="?", help="substring or glob on the repository name, e.g. 'team/*'")
    @argument("--tags", action="store_true", help="the tags of each repository")
    @argument("--details", action="store_true", help="digest, compressed size, created, platform for every tag")
    @argument("--registry", help="another registry than the profile's, e.g. --registry http://10.0.0.5:5000")
    @argument("--workers", type=int, default=8, help="concurrent requests (default 8)")
    @line_magic
    @friendly(cluster=False)
    def pai_images(self, line: str) -> Table:
        """The registry's repositories (every catalog page). Examples::

            %pai_images
            %pai_images team/* --tags
            %pai_images train --details
        """
        args = parse_line(self.pai_images, line)
        if not 1 <= args.workers <= 64:
            raise UsageError("%pai_images: --workers must be between 1 and 64.")
        from pai_magic.core.registry import human_size, image_details

        client = self._registry(args.registry, args.workers)
        where = f" matching {args.filter!r}" if args.filter else ""
        if args.details:
            rows = image_details(client, pattern=args.filter)
            table = Table(["repository", "tag", "platform", "digest", "size", "created"],
                          title=f"Images on {client.host}{where}", empty="No images.")
            for r, row in enumerate(rows):
                table.rows.append([row.repository, row.tag, row.platform, row.digest[:19] if row.digest else "-",
                                   human_size(row.size), row.created or row.error or "-"])
                if row.digest:
                    table.html_cells[(r, 3)] = f"<code title='{esc(row.digest)}'>{esc(row.digest[:19])}</code>"
            table.footer = f"{len(rows)} rows (one per tag and platform); sizes are compressed."
            return table
        if args.tags:
            listing = client.list_images(args.filter)
            table = Table(["repository", "tags"], title=f"Repositories on {client.host}{where}",
                          empty="No repositories.")
            table.rows = [[item.repository, ", ".join(item.tags) or "(no tags)"] for item in listing]
            table.footer = f"{len(listing)} repositories, {sum(len(i.tags) for i in listing)} tags."
            return table
        names = client.repositories(args.filter)
        table = Table(["repository"], title=f"Repositories on {client.host}{where}", empty="No repositories.")
        table.rows = [[name] for name in names]
        table.footer = f"{len(names)} repositories; --tags for their tags, --details for sizes and platforms."
        return table

    @magic_arguments()
    @argument("archive", help="a `docker save` tar, e.g. model.tar")
    @argument("target", help="REPO:TAG to push it as, e.g. team/train:v1")
    @argument("--image", help="which image of an archive holding several (its RepoTag)")
    @argument("--registry", help="another registry than the profile's")
    @line_magic
    @friendly(cluster=False)
    def pai_image_push(self, line: str) -> View:
        """Push a `docker save` archive without Docker. Example: ``%pai_image_push model.tar team/train:v1``"""
        args = parse_line(self.pai_image_push, line)
        from pai_magic.core.registry import human_size, push_archive

        client = self._registry(args.registry)
        progress = _PushProgress(args.target)
        try:
            result = push_archive(client, args.archive, args.target, image=args.image, progress=progress)
        except BaseException:
            progress.failed()
            raise
        image = f"{client.host}/{result.reference}"
        text = (f"Pushed {image}\n  digest   {result.digest}\n  uploaded {result.uploaded_blobs} blobs "
                f"({human_size(result.uploaded_bytes)}), {result.skipped_blobs} already there\n"
                f"  use it   %%pai_job --image {image}")
        return View(text)

    @magic_arguments()
    @argument("source", help="REPO:TAG (or REPO@DIGEST) to tag")
    @argument("target", help="the new REPO:TAG")
    @argument("--registry", help="another registry than the profile's")
    @line_magic
    @friendly(cluster=False)
    def pai_image_tag(self, line: str) -> View:
        """Another tag for an image, no layer transfer. Example: ``%pai_image_tag team/train:v1 team/train:stable``"""
        args = parse_line(self.pai_image_tag, line)
        digest = self._registry(args.registry).tag(args.source, args.target)
        return View(f"Tagged {args.target} -> {digest}")

    @magic_arguments()
    @argument("reference", help="REPO:TAG to delete, e.g. team/train:old")
    @argument("--force", action="store_true", help="also delete the other tags of the same image")
    @argument("--registry", help="another registry than the profile's")
    @line_magic
    @friendly(cluster=False)
    def pai_image_rm(self, line: str) -> View:
        """Delete an image. Registries delete by digest: other tags of the same image go too, so that
        needs ``--force``. Example: ``%pai_image_rm team/train:old``"""
        args = parse_line(self.pai_image_rm, line)
        result = self._registry(args.registry).delete(args.reference, force=args.force)
        text = f"Deleted {result.reference} ({result.digest})"
        html_text = f"<pre>{esc(text)}</pre>"
        if result.warning:
            text += f"\nWarning: {result.warning}"
            html_text += f"<div style='color:#9a6700'>Warning: {esc(result.warning)}</div>"
        return View(text, html_text)
