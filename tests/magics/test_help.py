"""%pai_help lists every registered pai_ magic with a real description."""
from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell


def test_pai_help_lists_every_magic_with_its_purpose():
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "pai_magic")
        table = shell.run_line_magic("pai_help", "")
        listed = {row[0].lstrip("%") for row in table.rows}
        registered = {n for kind in ("line", "cell") for n in shell.magics_manager.magics[kind]
                      if n.startswith("pai_") and n != "pai_help"}
        assert registered and registered <= listed
        assert all(desc and desc != "(no description)" and "::" not in desc for _, desc in table.rows)
        assert "<table" in table._repr_html_()
    finally:
        InteractiveShell.clear_instance()
