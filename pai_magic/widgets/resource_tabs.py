"""The panel's Images and Storage tabs: what a job can run and mount.

Images come from the registry the magics push to (the profile's, else ``PAI_REGISTRY``):
repositories and tags in one list, a picked tag's size, date and platforms in one table, and
"Use this image" puts its full reference (registry host included, so the cluster pulls it
from there) into the submit form. Storages come from ``core.storage.overview``: where each is
mounted on this machine, and how full it is.
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as W

from pai_magic.widgets.common import guarded
from pai_magic.widgets.common import set_if_changed as _set
from pai_magic.widgets.views import image_details_html, note_html, storages_html

MAX_IMAGE_OPTIONS = 500


class ImagesTab:
    """``profile`` gives the profile (or None); ``on_use`` receives the picked image reference."""

    def __init__(self, profile: Callable[[], Any], on_use: Callable[[str], None]) -> None:
        self._profile = profile
        self._on_use = on_use
        self._images: dict[str, tuple[str, str]] = {}   # option -> (repository, tag)
        self.registry_host: str | None = None
        self.filter = W.Text(placeholder="filter repositories, e.g. team/*", continuous_update=False,
                             layout=W.Layout(flex="1 1 auto", width="auto", min_width="0"))
        self.list_button = W.Button(description="List images", icon="list")
        self.list = W.Select(options=[], rows=8, layout=W.Layout(width="auto", max_width="100%"))
        self.detail = W.HTML("")
        self.use_button = W.Button(description="Use this image", icon="arrow-right", disabled=True,
                                   tooltip="Put this image into the submit form")
        self.status = W.HTML("")
        self.list_button.on_click(lambda _b: self.load())
        self.filter.observe(lambda _c: self.load(), names="value")
        self.list.observe(self._picked, names="value")
        self.use_button.on_click(lambda _b: self.use())
        self.box = W.VBox([W.HBox([self.filter, self.list_button], layout=W.Layout(width="100%")),
                           self.status, self.list, self.detail, self.use_button], layout=W.Layout(width="100%"))

    def _client(self, workers: int) -> Any:
        from pai_magic.core.registry.client import RegistryClient

        return RegistryClient.from_profile(self._profile(), workers=workers)

    def load(self) -> None:
        """The registry's repositories and tags."""
        def work() -> Any:
            with self._client(4) as client:
                return client.host, client.list_images(self.filter.value.strip() or None)

        _set(self.status, "value", note_html("Reading the registry..."))
        found = guarded(work, self.status)
        if found is None:
            return
        host, listing = found
        self.registry_host = host
        pairs = [(item.repository, tag) for item in listing for tag in sorted(item.tags)]
        self._images = {f"{repo}:{tag}": (repo, tag) for repo, tag in pairs[:MAX_IMAGE_OPTIONS]}
        self.list.options = list(self._images)
        more = f" (first {MAX_IMAGE_OPTIONS} shown)" if len(pairs) > MAX_IMAGE_OPTIONS else ""
        _set(self.status, "value", note_html(
            f"{len(pairs)} image tag(s) in {host}{more}: pick one for its size, date and platforms."
            if pairs else f"No image in {host} yet: push one with %pai_image_push or `pai-magic push`."))
        _set(self.use_button, "disabled", True)
        _set(self.detail, "value", "")

    def _picked(self, change: Any) -> None:
        choice = change.get("new")
        if not choice or choice not in self._images:
            _set(self.use_button, "disabled", True)
            return
        repo, tag = self._images[choice]

        def work() -> Any:
            from pai_magic.core.registry.details import tag_details

            with self._client(2) as client:
                return tag_details(client, repo, tag)

        details = guarded(work, self.status)
        _set(self.detail, "value", image_details_html(details or []))
        _set(self.use_button, "disabled", False)

    def use(self) -> None:
        """Hand the picked image, with its registry host, to the submit form."""
        choice = self.list.value
        if choice and choice in self._images:
            repo, tag = self._images[choice]
            self._on_use(f"{self.registry_host}/{repo}:{tag}" if self.registry_host else f"{repo}:{tag}")


class StorageTab:
    """``client`` gives the cluster client (raises when not logged in)."""

    def __init__(self, client: Callable[[], Any]) -> None:
        self._client = client
        self.button = W.Button(description="Show storages", icon="hdd-o")
        self.table = W.HTML("")
        self.status = W.HTML("")
        self.button.on_click(lambda _b: self.load())
        self.box = W.VBox([self.button, self.status, self.table], layout=W.Layout(width="100%"))

    def load(self) -> None:
        """The cluster's storages, where each is mounted on this machine, and its usage."""
        from pai_magic.core.storage.overview import storage_overview

        rows = guarded(lambda: storage_overview(self._client()), self.status)
        if rows is not None:
            _set(self.table, "value", storages_html(rows))
