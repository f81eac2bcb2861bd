"""docs/CONFIGURATION.md is what scripts/gen_config_reference.py makes from the code now, and
the environment-variable list in pai_magic/core/envvars.py is exactly what the code reads."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pai_magic.core.envvars import ENV_VARS, env_var_names
from tests.fixtures.scripts import load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen():
    return load_script("gen_config_reference.py")


def test_the_checked_in_reference_matches_the_code(gen):
    current = (REPO / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    assert current == gen.render(), "docs/CONFIGURATION.md is out of date: run python scripts/gen_config_reference.py"


def test_the_reference_lists_every_trait_verb_and_variable(gen):
    from pai_magic.cli import build_parser
    from pai_magic.magics.jobs import PaiMagics
    from pai_magic.server.app import PaiMagicExtension

    text = gen.render()
    for name in PaiMagics.class_traits(config=True):
        if name not in ("config", "log"):
            assert f"| `{name}` |" in text
    for name in PaiMagicExtension.class_own_traits(config=True):
        assert f"| `{name}` |" in text
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for verb in sub.choices:
        assert f"### `pai-magic {verb}`" in text
    for var in ENV_VARS:
        assert f"| `{var.name}` |" in text


def _environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
            and node.value.id == "os") or (isinstance(node, ast.Name) and node.id == "environ")


def env_vars_read(root: Path) -> dict[str, set[str]]:
    """Names (literals, or module-level string constants) read through os.environ[...], os.environ.get/pop/setdefault(...),
    os.getenv(...) or ``"NAME" in os.environ``, with the files that read them."""
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if "labextension" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # module-level NAME = "LITERAL": a variable read through a constant (ENV_VAR = "PAI_...")
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                     for t in n.targets if isinstance(t, ast.Name)}

        def literal(node: ast.AST) -> object:
            if isinstance(node, ast.Constant):
                return node.value
            return constants.get(node.id) if isinstance(node, ast.Name) else None

        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if node.func.attr in ("get", "pop", "setdefault") and _environ(node.func.value):
                    name = literal(node.args[0])
                elif node.func.attr == "getenv":
                    name = literal(node.args[0])
            elif isinstance(node, ast.Subscript) and _environ(node.value) and isinstance(node.ctx, ast.Load):
                name = literal(node.slice)
            elif isinstance(node, ast.Compare) and any(_environ(c) for c in node.comparators):
                name = literal(node.left)
            if isinstance(name, str):
                found.setdefault(name, set()).add(str(path.relative_to(root.parent)))
    return found


def test_the_code_reads_exactly_the_listed_environment_variables():
    read = env_vars_read(REPO / "pai_magic")
    unlisted = {name: sorted(files) for name, files in read.items() if name not in env_var_names()}
    assert not unlisted, f"add these to pai_magic/core/envvars.py (and regenerate the reference): {unlisted}"
    stale = [name for name in env_var_names() if name not in read]
    assert not stale, f"pai_magic/core/envvars.py lists variables nothing reads: {stale}"
    assert len(set(env_var_names())) == len(ENV_VARS)


def test_the_scan_finds_each_way_of_reading(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text('import os\nfrom os import environ\n'
                              'a = os.environ.get("A")\nb = os.environ["B"]\nc = os.getenv("C")\n'
                              'd = "D" in os.environ\ne = environ.get("E")\nos.environ.setdefault("F", "1")\n'
                              'G_VAR = "G"\ng = os.environ.get(G_VAR)\n')
    assert set(env_vars_read(pkg)) == {"A", "B", "C", "D", "E", "F", "G"}
