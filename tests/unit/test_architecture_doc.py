"""docs/ARCHITECTURE.md is a map of THIS repository: every path it names exists, every module
of the package is on it, and it points at no design file outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ARCHITECTURE.md"
TOP = ("pai_magic/", "labextension/", "jupyter-config/", "tests/", "scripts/", "notebooks/", "bench/", "docs/")
ROOT_FILES = {"pyproject.toml", "setup.cfg", "CHANGELOG.md", "LICENSE", "README.md"}


def named_paths(text: str) -> set[str]:
    """Backticked tokens that name a file or folder of the repository."""
    tokens = set(re.findall(r"`([^`\s]+)`", text))
    return {t for t in tokens if t.startswith(TOP) or t in ROOT_FILES}


def test_every_named_path_exists():
    missing = sorted(p for p in named_paths(DOC.read_text(encoding="utf-8")) if not (REPO / p).exists())
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_every_module_of_the_package_is_on_the_map():
    named = named_paths(DOC.read_text(encoding="utf-8"))
    modules = sorted(str(p.relative_to(REPO)) for p in (REPO / "pai_magic").rglob("*.py")
                     if "labextension" not in p.relative_to(REPO).parts)
    unlisted = [m for m in modules if m not in named]
    assert not unlisted, f"add these modules to docs/ARCHITECTURE.md: {unlisted}"


def test_it_describes_this_repository_alone():
    text = DOC.read_text(encoding="utf-8")
    assert "shared/design" not in text and "steering" not in text
    assert not re.search(r"\.\./|/work/", text)


def test_the_path_finder_sees_paths_and_ignores_code():
    found = named_paths("`pai_magic/core/errors.py` and `setup.cfg`, not `PaiError` or `%pai_job`")
    assert found == {"pai_magic/core/errors.py", "setup.cfg"}
