"""The shape ARCHITECTURE.md promises: the core loads without any face's toolkit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "pai_magic" / "core"


def test_every_core_module_imports_without_ipython_widgets_or_tornado():
    modules = sorted(
        "pai_magic." + ".".join(p.relative_to(CORE.parent).with_suffix("").parts)
        for p in CORE.rglob("*.py") if p.name != "__init__.py")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('IPython', 'ipywidgets', 'tornado', "
        "'ipykernel', 'jupyter_server'))\n"
        "print(len({modules!r}), bad)\n".replace("{modules!r}", repr(modules))
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.split(" ", 1)
    assert int(count) > 30 and bad.strip() == "[]", out.stdout
