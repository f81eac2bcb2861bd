"""The lint and type gates: the test command fails on any flake8 or mypy finding, so the
code stays as clean as it is now. Both tools read their configuration from setup.cfg."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: What flake8 checks: the package, its tests, benchmarks and helper scripts.
LINT_PATHS = ["pai_magic", "tests", "bench", "scripts"]


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_flake8_runs_with_bugbear_so_raise_from_is_checked():
    # Without the plugin, B904 in setup.cfg would select nothing and the gate would pass silently.
    version = _run(["flake8", "--version"], timeout=120)
    assert version.returncode == 0, version.stderr
    assert "flake8-bugbear" in version.stdout, "install the test extra: pip install -e '.[test]'"


def test_flake8_is_clean():
    proc = _run(["flake8", *LINT_PATHS], timeout=300)
    assert proc.returncode == 0 and not proc.stdout.strip(), (
        f"flake8 found {len(proc.stdout.splitlines())} problem(s):\n{proc.stdout}{proc.stderr}")


def test_mypy_is_clean_and_strict_on_the_core():
    # files = pai_magic and the strict [mypy-pai_magic.core.*] section come from setup.cfg
    proc = _run(["mypy", "--no-error-summary", "--cache-dir", str(REPO / ".mypy_cache")], timeout=600)
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
    assert "error:" not in proc.stdout
