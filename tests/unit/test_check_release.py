"""scripts/check_release.py (run by scripts/test after pytest) checks what it claims: these
tests feed its checks artifacts and listings that must fail, and ones that must pass."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.scripts import load_script


@pytest.fixture(scope="module")
def cr():
    return load_script("check_release.py")


WHEEL_FILES = [
    "pai_magic/__init__.py",
    "pai_magic/core/protocol/data/server_protocol_schema.yaml",
    "pai_magic/server/openapi.yaml",
    "pai_magic-9.9.9.data/data/share/jupyter/labextensions/pai-magic/package.json",
    "pai_magic-9.9.9.data/data/share/jupyter/labextensions/pai-magic/static/remoteEntry.0123abcd.js",
    "pai_magic-9.9.9.data/data/share/jupyter/labextensions/pai-magic/install.json",
    "pai_magic-9.9.9.data/data/etc/jupyter/jupyter_server_config.d/pai_magic.json",
    "pai_magic-9.9.9.dist-info/licenses/LICENSE",
]
ENTRY_POINTS = ("[console_scripts]\npai-magic = pai_magic.cli:main\n\n"
                "[jupyter_client.kernel_provisioners]\npai-magic = pai_magic.kernel.provisioner:X\n")


def _wheel(path: Path, files: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in files:
            zf.writestr(name, "x")
        zf.writestr("pai_magic-9.9.9.dist-info/entry_points.txt", ENTRY_POINTS)
    return path


def test_a_complete_wheel_passes(cr, tmp_path):
    c = cr.Checker()
    cr.check_contents(c, _wheel(tmp_path / "pai_magic-9.9.9-py3-none-any.whl", WHEEL_FILES), cr.WHEEL_MUST_HOLD, "9.9.9")
    assert c.failures == []


@pytest.mark.parametrize("left_out", [f for f in WHEEL_FILES if f != "pai_magic/__init__.py"])
def test_a_wheel_without_a_required_file_fails(cr, tmp_path, left_out):
    c = cr.Checker()
    files = [f for f in WHEEL_FILES if f != left_out]
    cr.check_contents(c, _wheel(tmp_path / "pai_magic-9.9.9-py3-none-any.whl", files), cr.WHEEL_MUST_HOLD, "9.9.9")
    assert len(c.failures) == 1


def test_build_leftovers_and_a_wrong_version_fail(cr, tmp_path):
    c = cr.Checker()
    files = WHEEL_FILES + ["pai_magic/__pycache__/x.cpython-311.pyc"]
    cr.check_contents(c, _wheel(tmp_path / "pai_magic-1.0.0-py3-none-any.whl", files), cr.WHEEL_MUST_HOLD, "9.9.9")
    assert any("__pycache__" in f for f in c.failures) and any("version 9.9.9" in f for f in c.failures)


def test_an_sdist_without_the_prebuilt_labextension_fails(cr, tmp_path):
    path = tmp_path / "pai_magic-9.9.9.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name in ["pai_magic/__init__.py", "pai_magic/core/protocol/data/server_protocol_schema.yaml",
                     "labextension/install.json", "jupyter-config/jupyter_server_config.d/pai_magic.json",
                     "LICENSE", "CHANGELOG.md", "pyproject.toml"]:
            info = tarfile.TarInfo(f"pai_magic-9.9.9/{name}")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    c = cr.Checker()
    cr.check_contents(c, path, cr.SDIST_MUST_HOLD, "9.9.9")
    assert len(c.failures) == 2 and all("labextension" in f for f in c.failures)


def test_listings_count_only_the_directory_the_extension_is_under(cr):
    listing = ("JupyterLab v4.6.6\n/usr/share/jupyter/labextensions\n"
               "        pai-magic v0.1.0 enabled OK (python, pai_magic)\n"
               "/venv/share/jupyter/labextensions\n        other v1.0.0 enabled OK\n")
    where = cr.section_of(listing, r"^(/\S+/labextensions)$", r"^\s+pai-magic v0\.1\.0 enabled\s+OK")
    assert where == ["/usr/share/jupyter/labextensions"]  # so a check for /venv/... fails
    server = ("Config dir: /venv/etc/jupyter\n    other enabled\n"
              "Config dir: /usr/local/etc/jupyter\n    pai_magic.server enabled\n")
    assert cr.section_of(server, r"^Config dir: (\S+)$", r"^\s+pai_magic\.server enabled") == ["/usr/local/etc/jupyter"]
