#!/usr/bin/env python3
"""Build the sdist and the wheel, install EACH into a fresh virtual environment, and check
what a lab installing pai_magic from an index gets.

    python scripts/check_release.py [--keep DIR]

The labextension must already be built (scripts/setup runs scripts/build-labextension): the
wheel ships it prebuilt, so installing needs no node. The virtual environments are made with
``--system-site-packages`` and pai_magic is installed with ``--no-deps``: the dependencies
come from the environment the tests already use (installing them twice would take minutes),
while pai_magic itself comes from the built artifact, which every check verifies
(``pai_magic.__file__`` and its dist-info live in the new environment). The declared
dependencies are checked to be present at the declared versions instead.

Checks, for the wheel and for the sdist:
- the archive holds the labextension (package.json, remoteEntry, install.json), the server
  extension's jupyter-config, LICENSE, the protocol schema data file;
- ``jupyter labextension list`` shows pai-magic enabled from the new environment;
- ``jupyter server extension list`` shows pai_magic.server enabled from the new environment;
- ``%load_ext pai_magic`` works in IPython and registers the magics;
- ``pai-magic --version`` prints the version of pai_magic/__init__.py.
Exit code 0 when all pass; otherwise 1, with one line per failed check.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST_NAME = "pai_magic"
LABEXT_NAME = "pai-magic"
SERVER_EXT = "pai_magic.server"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Files every artifact must hold: (what, regex on the archive member names).
WHEEL_MUST_HOLD = [
    ("the package", rf"^{DIST_NAME}/__init__\.py$"),
    ("the protocol schema data file", rf"^{DIST_NAME}/core/protocol/data/server_protocol_schema\.yaml$"),
    ("the server extension's API description", rf"^{DIST_NAME}/server/openapi\.yaml$"),
    ("the labextension's package.json", rf"\.data/data/share/jupyter/labextensions/{LABEXT_NAME}/package\.json$"),
    ("the labextension's remoteEntry",
     rf"\.data/data/share/jupyter/labextensions/{LABEXT_NAME}/static/remoteEntry\.[0-9a-f]+\.js$"),
    ("the labextension's install.json", rf"\.data/data/share/jupyter/labextensions/{LABEXT_NAME}/install\.json$"),
    ("the jupyter-config enabling the server extension",
     r"\.data/data/etc/jupyter/jupyter_server_config\.d/pai_magic\.json$"),
    ("LICENSE", r"\.dist-info/licenses/LICENSE$"),
    ("the pai-magic console script", r"\.dist-info/entry_points\.txt$"),
]
SDIST_MUST_HOLD = [
    ("the package", rf"^[^/]+/{DIST_NAME}/__init__\.py$"),
    ("the protocol schema data file", rf"^[^/]+/{DIST_NAME}/core/protocol/data/server_protocol_schema\.yaml$"),
    ("the prebuilt labextension's package.json", rf"^[^/]+/{DIST_NAME}/labextension/package\.json$"),
    ("the prebuilt labextension's remoteEntry", rf"^[^/]+/{DIST_NAME}/labextension/static/remoteEntry\.[0-9a-f]+\.js$"),
    ("install.json", r"^[^/]+/labextension/install\.json$"),
    ("the jupyter-config enabling the server extension", r"^[^/]+/jupyter-config/jupyter_server_config\.d/pai_magic\.json$"),
    ("LICENSE", r"^[^/]+/LICENSE$"),
    ("CHANGELOG.md", r"^[^/]+/CHANGELOG\.md$"),
    ("pyproject.toml", r"^[^/]+/pyproject\.toml$"),
]
#: Never in an artifact: build leftovers and local state.
MUST_NOT_HOLD = [r"(^|/)node_modules/", r"(^|/)__pycache__/", r"\.pyc$", r"(^|/)\.mypy_cache/"]


def expected_version() -> str:
    text = (REPO / DIST_NAME / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r"""(?m)^__version__ *= *(['"])(?P<v>.+?)\1""", text)
    if not found:
        raise SystemExit("check-release: no __version__ in pai_magic/__init__.py")
    return found.group("v")


class Checker:
    """Collects failures so one run reports every problem, not only the first."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.started = time.monotonic()

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        mark = "ok  " if ok else "FAIL"
        print(f"  {mark} {what}" + (f" ({detail})" if detail and not ok else ""), flush=True)
        if not ok:
            self.failures.append(what + (f": {detail}" if detail else ""))
        return ok

    def step(self, title: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {title}", flush=True)


def run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    proc.stdout = ANSI.sub("", proc.stdout)
    proc.stderr = ANSI.sub("", proc.stderr)
    return proc


def clean_env(work: Path) -> dict[str, str]:
    """The environment of every check: no PYTHONPATH (it would import the source tree), and
    Jupyter/IPython user folders that are empty, so only the new environment's files count."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    for var, sub in (("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_DATA_DIR", "jupyter-data"),
                     ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"), ("IPYTHONDIR", "ipython"),
                     ("PAI_MAGIC_CONFIG_DIR", "pai-config"), ("PAI_MAGIC_DATA_DIR", "pai-data")):
        (work / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(work / sub)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def archive_names(path: Path) -> list[str]:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    with tarfile.open(path) as tf:
        return tf.getnames()


def check_contents(c: Checker, artifact: Path, must_hold: list[tuple[str, str]], version: str) -> None:
    names = archive_names(artifact)
    for what, pattern in must_hold:
        rx = re.compile(pattern)
        c.check(any(rx.search(n) for n in names), f"{artifact.name} holds {what}", f"no member matches {pattern}")
    for pattern in MUST_NOT_HOLD:
        rx = re.compile(pattern)
        bad = [n for n in names if rx.search(n)]
        c.check(not bad, f"{artifact.name} holds no {pattern}", ", ".join(bad[:3]))
    c.check(f"-{version}" in artifact.name, f"{artifact.name} carries version {version}")
    if artifact.suffix == ".whl":
        with zipfile.ZipFile(artifact) as zf:
            entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
            points = zf.read(entry).decode()
        c.check("pai-magic = pai_magic.cli:main" in points, "the wheel declares the pai-magic command")
        c.check("jupyter_client.kernel_provisioners" in points, "the wheel declares the kernel provisioner")


def section_of(listing: str, header_rx: str, item_rx: str) -> list[str]:
    """The directory headers under which ``item_rx`` appears in a jupyter ... list output."""
    found, current = [], None
    for line in listing.splitlines():
        header = re.match(header_rx, line.strip())
        if header:
            current = header.group(1)
        elif current and re.search(item_rx, line):
            found.append(current)
    return found


def check_install(c: Checker, artifact: Path, work: Path, version: str) -> None:
    kind = "wheel" if artifact.suffix == ".whl" else "sdist"
    venv = work / f"venv-{kind}"
    env = clean_env(work / f"home-{kind}")
    py = venv / "bin" / "python"
    c.step(f"{kind}: fresh virtual environment, install {artifact.name}")
    made = run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], env=env, cwd=work, timeout=180)
    if not c.check(made.returncode == 0, f"{kind}: python -m venv", made.stderr[-300:]):
        return
    # --no-deps: dependencies come from the system site-packages (checked below); an sdist is
    # built into a wheel by pip in an isolated build environment, with no node anywhere.
    pip = run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(artifact)], env=env, cwd=work, timeout=600)
    if not c.check(pip.returncode == 0, f"{kind}: pip install {artifact.name}", (pip.stderr or pip.stdout)[-500:]):
        return

    probe = run([str(py), "-c", (
        "import sys, importlib.metadata as md, pai_magic\n"
        "from packaging.requirements import Requirement\n"
        "dist = md.distribution('pai_magic')\n"
        "print('FILE', pai_magic.__file__)\n"
        "print('DIST', dist.locate_file(''))\n"
        "print('VERSION', dist.version, pai_magic.__version__)\n"
        "for text in dist.requires or []:\n"
        "    req = Requirement(text)\n"
        "    if req.marker and not req.marker.evaluate({'extra': ''}):\n"
        "        continue\n"
        "    try:\n"
        "        have = md.version(req.name)\n"
        "    except md.PackageNotFoundError:\n"
        "        print('MISSING', req); continue\n"
        "    if not req.specifier.contains(have, prereleases=True):\n"
        "        print('MISSING', req, 'have', have)\n"
        "print('PREFIX', sys.prefix)\n")], env=env, cwd=work, timeout=120)
    lines = dict(line.split(" ", 1) for line in probe.stdout.splitlines() if " " in line and line.split(" ", 1)[0] != "MISSING")
    missing = [line for line in probe.stdout.splitlines() if line.startswith("MISSING")]
    prefix = str(venv)
    c.check(probe.returncode == 0, f"{kind}: import pai_magic", probe.stderr[-300:])
    c.check(lines.get("FILE", "").startswith(prefix), f"{kind}: pai_magic is imported from the new environment",
            lines.get("FILE", "?"))
    c.check(lines.get("DIST", "").startswith(prefix), f"{kind}: its metadata is the new environment's",
            lines.get("DIST", "?"))
    c.check(lines.get("VERSION") == f"{version} {version}", f"{kind}: installed version is {version}",
            lines.get("VERSION", "?"))
    c.check(not missing, f"{kind}: every declared dependency is present", "; ".join(missing))

    cli = run([str(venv / "bin" / "pai-magic"), "--version"], env=env, cwd=work, timeout=120)
    c.check(cli.returncode == 0 and cli.stdout.strip() == f"pai-magic {version}",
            f"{kind}: pai-magic --version prints {version}", (cli.stdout + cli.stderr).strip()[-200:])

    labext = run([str(py), "-m", "jupyterlab.labextensions", "list"], env=env, cwd=work, timeout=180)
    where = section_of(labext.stdout + labext.stderr, r"^(/\S+/labextensions)$",
                       rf"^\s+{LABEXT_NAME} v{re.escape(version)} enabled\s+OK")
    c.check(any(w.startswith(prefix) for w in where),
            f"{kind}: jupyter labextension list shows {LABEXT_NAME} v{version} enabled from the new environment",
            f"found under {where or 'no directory'}")

    serverext = run([str(py), "-m", "jupyter_server", "extension", "list"], env=env, cwd=work, timeout=180)
    out = serverext.stdout + serverext.stderr
    where = section_of(out, r"^Config dir: (\S+)$", rf"^\s+{re.escape(SERVER_EXT)} enabled")
    c.check(any(w.startswith(prefix) for w in where),
            f"{kind}: jupyter server extension list shows {SERVER_EXT} enabled from the new environment",
            f"found under {where or 'no config dir'}")
    c.check(re.search(rf"^\s+{re.escape(SERVER_EXT)}\s.*OK$", out, re.M) is not None,
            f"{kind}: {SERVER_EXT} validates (imports and has its extension points)", out[-400:])

    script = work / f"load-{kind}.ipy"
    script.write_text(
        "%load_ext pai_magic\n"
        "import sys, pai_magic\n"
        "assert pai_magic.__file__.startswith(sys.prefix), pai_magic.__file__\n"
        "names = set(get_ipython().magics_manager.magics['line']) | set(get_ipython().magics_manager.magics['cell'])\n"
        "print('MAGICS', ' '.join(sorted(n for n in names if n.startswith('pai_'))))\n", encoding="utf-8")
    ipy = run([str(py), "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", str(script)],
              env=env, cwd=work, timeout=180)
    magics = next((line.split()[1:] for line in ipy.stdout.splitlines() if line.startswith("MAGICS")), [])
    c.check(ipy.returncode == 0 and {"pai_login", "pai_job", "pai_jobs", "pai_help"} <= set(magics),
            f"{kind}: %load_ext pai_magic registers the magics ({len(magics)} pai_ magics)",
            (ipy.stdout + ipy.stderr).strip()[-400:])


def build(c: Checker, out: Path, env: dict[str, str]) -> tuple[Path | None, Path | None]:
    c.step("build the sdist, then the wheel from the sdist (python -m build)")
    labext = REPO / DIST_NAME / "labextension"
    if not c.check((labext / "package.json").is_file() and any((labext / "static").glob("remoteEntry.*.js")),
                   "the labextension is built (pai_magic/labextension)", "run scripts/build-labextension first"):
        return None, None
    proc = run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], env=env, cwd=out.parent, timeout=600)
    if not c.check(proc.returncode == 0, "python -m build", (proc.stderr or proc.stdout)[-800:]):
        return None, None
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    c.check(len(wheels) == 1 and len(sdists) == 1, "one wheel and one sdist", f"{wheels} {sdists}")
    return (wheels[0] if wheels else None), (sdists[0] if sdists else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    version = expected_version()
    c = Checker()
    work = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="pai-check-release-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wheel, sdist = build(c, work / "dist", clean_env(work / "home-build"))
        if wheel:
            check_contents(c, wheel, WHEEL_MUST_HOLD, version)
        if sdist:
            check_contents(c, sdist, SDIST_MUST_HOLD, version)
        for artifact in (wheel, sdist):
            if artifact:
                check_install(c, artifact, work, version)
    except subprocess.TimeoutExpired as exc:
        c.check(False, f"{' '.join(map(str, exc.cmd))[:120]} finished in time", f"timed out after {exc.timeout:g} s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    c.step("done")
    if c.failures:
        print(f"check-release: {len(c.failures)} check(s) failed:", file=sys.stderr)
        for failure in c.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"check-release: the wheel and the sdist of pai_magic {version} install and work.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
