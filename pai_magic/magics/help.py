"""``%pai_help``: every pai_magic magic with its one-line purpose and an example.

A researcher who loaded the extension should not have to know the magic names to find
them; each line points at ``%name?`` for the full option list.
"""
from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from pai_magic.magics.render import Table


def _purpose(func: Any) -> str:
    """The first sentence of a magic's docstring (after the usage block lazy parsers add)."""
    doc = (getattr(func, "__doc__", None) or "").strip()
    lines = [ln.strip() for ln in doc.splitlines()]
    if lines and lines[0] == "::":  # IPython's magic_arguments put the usage first
        try:
            lines = lines[lines.index("", 2):]
        except ValueError:
            lines = []
    text = " ".join(ln for ln in lines if ln).split(". ")[0].rstrip(".")
    return text or "(no description)"


@magics_class
class HelpMagics(Magics):
    shell: Any  # the InteractiveShell: set by IPython when the class is registered

    @line_magic
    def pai_help(self, line: str = "") -> Table:
        """List every pai_magic magic with what it does. Example: ``%pai_help``"""
        manager = self.shell.magics_manager
        table = Table(["magic", "what it does"], title="pai_magic magics (add ? to any for its options)")
        for kind, prefix in (("cell", "%%"), ("line", "%")):
            for name, func in sorted(manager.magics[kind].items()):
                if name.startswith("pai_") and name != "pai_help":
                    table.rows.append([f"{prefix}{name}", _purpose(func)])
        return table
