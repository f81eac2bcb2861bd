"""One version source, a license file, a changelog that names the version.

The built artifacts are checked by scripts/check-release (tests/unit/test_release_check.py);
these are the cheap source-tree checks."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pai_magic

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# hatch's default version pattern ([tool.hatch.version] without `pattern`)
HATCH_PATTERN = re.compile(r"""(?im)^(__version__|VERSION) *= *(['"])v?(?P<version>.+?)\2""")


def test_the_version_has_one_source_that_hatch_reads():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project.get("dynamic", [])
    source = PYPROJECT["tool"]["hatch"]["version"]["path"]
    assert source == "pai_magic/__init__.py"
    found = HATCH_PATTERN.search((REPO / source).read_text(encoding="utf-8"))
    assert found and found.group("version") == pai_magic.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev)?\d*", pai_magic.__version__)


def test_cli_version_prints_it():
    out = subprocess.run([sys.executable, "-m", "pai_magic", "--version"], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"pai-magic {pai_magic.__version__}"


def test_license_is_mit_as_the_metadata_says():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "pai_magic contributors" in text
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}


def test_changelog_has_the_current_version_and_an_unreleased_section():
    headings = re.findall(r"(?m)^## (.+)$", (REPO / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert headings[0] == "Unreleased"
    assert pai_magic.__version__ in headings
