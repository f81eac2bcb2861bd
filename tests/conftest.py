"""Shared test setup: every test gets its own config and data folders, and real services
are started by fixtures in tests/fixtures/ (one module per service)."""
from __future__ import annotations

import os

import pytest

# Tests run as root and their jobs write into the test's private (0700) tmp folders and run the
# Python under /root: embedded backends started by tests run jobs as themselves. The default
# (one unprivileged uid per user when root) is tested on purpose in test_local_hardening.py.
os.environ.setdefault("PAI_LOCAL_JOB_USER", "root")

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.local_backend",
    "tests.fixtures.sshd",
    "tests.fixtures.registry",
    "tests.fixtures.nfs",
    "tests.fixtures.ipython",
]


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Never touch the developer's real profile, keys or known_hosts."""
    cfg = tmp_path / "pai-config"
    data = tmp_path / "pai-data"
    monkeypatch.setenv("PAI_MAGIC_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("PAI_MAGIC_DATA_DIR", str(data))
    for var in ("PAI_URL", "PAI_USER", "PAI_TOKEN", "PAI_PROFILE", "PAI_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    yield
