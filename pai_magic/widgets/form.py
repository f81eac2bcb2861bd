"""The panel's submit form: the magics' options as fields, each with its own error line.

Every value goes to the core's one check (:mod:`pai_magic.core.jobform`), whose errors name
the field concerned; the message is shown under that field, and the previous one cleared, so
a form never shows an error about a field that is now right. A YAML box imports a job into
the form, exports the form as a job, or is submitted as it is.
"""
from __future__ import annotations

from typing import Any

import ipywidgets as W

from pai_magic.widgets.views import error_html, note_html

_DESC = {"description_width": "110px"}


def _full(height: str | None = None) -> W.Layout:
    """Inputs stretch to the panel's width, without the fixed 300px that clipped them."""
    return W.Layout(width="auto", max_width="100%", flex="0 0 auto", height=height)


class SubmitForm:
    """The widgets of the form and the mapping between them and a jobform dict."""

    def __init__(self) -> None:
        self.name = W.Text(placeholder="a name stem, e.g. train (a unique suffix is added)",
                           description="Name", layout=_full(), style=_DESC)
        self.image = W.Text("ubuntu:22.04", placeholder="ubuntu:22.04 or HOST:5000/team/img:tag",
                            description="Image", layout=_full(), style=_DESC)
        self.commands = W.Textarea(placeholder="shell commands, one per line", description="Commands",
                                   layout=_full("90px"), style=_DESC)
        self.virtual_cluster = W.Combobox(placeholder="default: the profile's", options=[], ensure_option=False,
                                          description="Virtual cluster", layout=_full(), style=_DESC)
        self.gpu = W.IntText(0, description="GPUs", layout=_full(), style=_DESC)
        self.cpu = W.IntText(1, description="CPUs", layout=_full(), style=_DESC)
        self.memory = W.Text("", placeholder="e.g. 8G or 512M (default 4G)", description="Memory",
                             layout=_full(), style=_DESC)
        self.instances = W.IntText(1, description="Instances", layout=_full(), style=_DESC)
        self.retry = W.IntText(0, description="Retries", layout=_full(), style=_DESC)
        self.storages = W.Text("", placeholder="NAME or NAME:/mount/path, comma separated",
                               description="Storage", layout=_full(), style=_DESC)
        self.ssh = W.Checkbox(False, description="SSH into the tasks (with your key)", indent=False,
                              layout=W.Layout(width="auto"))
        self.keep_alive = W.Checkbox(False, description="Keep alive after the commands (sleep infinity)",
                                     indent=False, layout=W.Layout(width="auto"))
        self.submit_button = W.Button(description="Submit", button_style="success", icon="play")
        self.result = W.HTML("")
        self.yaml = W.Textarea(placeholder="an OpenPAI protocol v2 job (YAML)", layout=_full("160px"))
        self.to_yaml_button = W.Button(description="Form → YAML", tooltip="Show the form's job as YAML")
        self.from_yaml_button = W.Button(description="YAML → form", tooltip="Fill the form from the YAML job")
        self.submit_yaml_button = W.Button(description="Submit YAML", tooltip="Submit the YAML job as it is")

        self.inputs: dict[str, W.Widget] = {
            "name": self.name, "image": self.image, "commands": self.commands,
            "virtualCluster": self.virtual_cluster, "gpu": self.gpu, "cpu": self.cpu, "memory": self.memory,
            "instances": self.instances, "retry": self.retry, "storages": self.storages, "ssh": self.ssh,
            "keepAlive": self.keep_alive, "yaml": self.yaml}
        # one error line per field, and one for the form as a whole (key None)
        self.errors: dict[str | None, W.HTML] = {key: W.HTML("") for key in self.inputs}
        self.errors[None] = W.HTML("")
        for html_widget in self.errors.values():
            html_widget.add_class("pai-panel-field-error")
        fields = []
        for key, widget in self.inputs.items():
            if key != "yaml":
                fields += [widget, self.errors[key]]
        yaml_box = W.VBox([self.yaml, self.errors["yaml"],
                           W.HBox([self.to_yaml_button, self.from_yaml_button, self.submit_yaml_button],
                                  layout=W.Layout(flex_flow="row wrap"))],
                          layout=W.Layout(width="100%"))
        self.yaml_accordion = W.Accordion(children=[yaml_box], titles=("YAML import / export",),
                                          selected_index=None, layout=W.Layout(width="100%"))
        self.box = W.VBox(fields + [W.HBox([self.submit_button]), self.errors[None], self.result,
                                    self.yaml_accordion],
                          layout=W.Layout(width="100%", overflow="hidden"))
        self.box.add_class("pai-panel-form")

    # ---- values ----------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The form as :mod:`pai_magic.core.jobform` reads it (empty fields: not given)."""
        return {
            "name": self.name.value, "image": self.image.value, "commands": self.commands.value,
            "virtualCluster": self.virtual_cluster.value or None, "gpu": self.gpu.value, "cpu": self.cpu.value,
            "memory": self.memory.value or None, "instances": self.instances.value, "retry": self.retry.value,
            "storages": self.storages.value or None, "ssh": bool(self.ssh.value),
            "keepAlive": bool(self.keep_alive.value)}

    def fill(self, form: dict[str, Any]) -> None:
        """Put a jobform dict (``form_from_protocol``: clone, YAML import) into the fields."""
        memory = form.get("memoryMB")
        storages = form.get("storages") or []
        self.name.value = str(form.get("name") or "")
        self.image.value = str(form.get("image") or "")
        self.commands.value = str(form.get("commands") or "")
        self.virtual_cluster.value = str(form.get("virtualCluster") or "")
        self.gpu.value = int(form.get("gpu") or 0)
        self.cpu.value = int(form.get("cpu") or 1)
        if isinstance(memory, int):
            self.memory.value = f"{memory // 1024}G" if memory % 1024 == 0 else f"{memory}M"
        self.instances.value = int(form.get("instances") or 1)
        self.retry.value = int(form.get("retry") or 0)
        self.storages.value = ", ".join(storages) if isinstance(storages, list) else str(storages)
        self.ssh.value = bool(form.get("ssh"))
        self.keep_alive.value = bool(form.get("keepAlive"))
        self.clear_errors()

    # ---- errors ----------------------------------------------------------------------------

    def show_error(self, field: str | None, message: str) -> None:
        """The message under ``field`` (``memoryMB`` is the memory box); every other error goes."""
        key = "memory" if field == "memoryMB" else field
        if key not in self.errors:
            key = None
        for name, widget in self.errors.items():
            widget.value = error_html(message) if name == key else ""
        if key == "yaml":
            self.yaml_accordion.selected_index = 0

    def clear_errors(self) -> None:
        for widget in self.errors.values():
            widget.value = ""

    def show_result(self, message: str) -> None:
        self.result.value = note_html(message)

    def error_of(self, field: str | None) -> str:
        """The text shown under ``field`` ('' when none): what tests and a screen reader see."""
        import html
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.errors[field].value))

    def shown_errors(self) -> dict[str | None, str]:
        return {k: self.error_of(k) for k in self.errors if self.errors[k].value}
