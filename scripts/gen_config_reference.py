#!/usr/bin/env python3
"""Write docs/CONFIGURATION.md from the code: every configurable trait (``%config`` of the
magics, the server extension and its backend, any other traitlets class of pai_magic), every
environment variable (pai_magic/core/envvars.py), every CLI verb with its options.

    python scripts/gen_config_reference.py           # rewrite the file
    python scripts/gen_config_reference.py --check   # exit 1 when the file is out of date

tests/unit/test_config_reference.py runs the check, so the file never drifts from the code.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OUTPUT = REPO / "docs" / "CONFIGURATION.md"

#: Where a class's traits are set, by the package it lives in.
HOW_TO_SET = {
    "magics": "in a notebook: `%config {cls}.{name} = value`; or `c.{cls}.{name}` in an IPython config file",
    "server": "`c.{cls}.{name} = value` in jupyter_server_config.py (or --{cls}.{name}=value)",
}
DEFAULT_HOW = "`c.{cls}.{name} = value` in the Jupyter config file of the application that loads it"


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _modules() -> list[object]:
    import pai_magic

    found = []
    for info in sorted(pkgutil.walk_packages(pai_magic.__path__, "pai_magic."), key=lambda m: m.name):
        if ".labextension" in info.name or info.name.endswith("__main__"):
            continue
        found.append(importlib.import_module(info.name))
    return found


def configurables() -> list[tuple[str, type, dict[str, object]]]:
    """(package, class, its config traits incl. those of pai_magic base classes) of every
    traitlets class pai_magic defines; a base class that a listed class extends is left out
    (its traits show under the class that is configured by name)."""
    from traitlets.config import Configurable

    classes = {}
    for module in _modules():
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, Configurable) and cls.__module__ == module.__name__:
                classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    found = []
    for cls in classes.values():
        if any(other is not cls and issubclass(other, cls) for other in classes.values()):
            continue
        traits: dict[str, object] = {}
        for klass in reversed(inspect.getmro(cls)):
            if klass.__module__.startswith("pai_magic.") and issubclass(klass, Configurable):
                traits.update(klass.class_own_traits(config=True))
        if traits:
            found.append((cls.__module__.split(".")[1], cls, traits))
    return sorted(found, key=lambda t: (t[0], t[1].__name__))


def _default(trait: object) -> str:
    try:
        text = trait.default_value_repr()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a dynamic default has no static repr
        text = "(computed)"
    return text


def traits_section() -> list[str]:
    lines = ["## Configurable traits", ""]
    for package, cls, traits in configurables():
        how = HOW_TO_SET.get(package, DEFAULT_HOW)
        lines += [f"### `{cls.__name__}` ({cls.__module__})", "",
                  _cell((inspect.getdoc(cls) or "").split("\n\n")[0]), "",
                  "Set " + how.format(cls=cls.__name__, name="NAME") + ".", "",
                  "| trait | type | default | what it does |", "|---|---|---|---|"]
        for name in sorted(traits):
            trait = traits[name]
            lines.append(f"| `{name}` | {type(trait).__name__} | `{_cell(_default(trait))}` | "
                         f"{_cell(getattr(trait, 'help', '') or '')} |")
        lines.append("")
    return lines


def env_section() -> list[str]:
    from pai_magic.core.envvars import ENV_VARS

    lines = ["## Environment variables", "",
             "The list lives in `pai_magic/core/envvars.py`; the code reads no other.", ""]
    for group, title in (("pai_magic", "pai_magic's own"), ("embedded backend", "The embedded backend's"),
                         ("in a task", "Set by OpenPAI in a task, read by what pai_magic runs there"),
                         ("standard", "Standard variables pai_magic honours")):
        lines += [f"### {title}", "", "| variable | what it does |", "|---|---|"]
        lines += [f"| `{v.name}` | {_cell(v.meaning)} |" for v in ENV_VARS if v.group == group]
        lines.append("")
    return lines


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of its arguments
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                name += f" {action.metavar or action.dest.upper()}"
        else:
            name = str(action.metavar or action.dest)
        default = action.default
        said = "default" in (action.help or "").lower()
        shown = "" if said or default in (None, False, argparse.SUPPRESS, [], "") else f" (default: `{_cell(default)}`)"
        rows.append(f"| `{_cell(name)}` | {_cell(action.help or '')}{shown} |")
    return rows


def cli_section() -> list[str]:
    from pai_magic.cli import PROG, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    helps = {choice.dest: choice.help for choice in sub._choices_actions}  # noqa: SLF001
    lines = ["## Command line", "",
             f"`{PROG} [--json] [--profile NAME] VERB ...`; every verb also takes `--json` and `--profile`.", "",
             "### Global options", "", "| option | what it does |", "|---|---|", *_option_rows(parser), ""]
    for verb in sorted(sub.choices):
        verb_parser = sub.choices[verb]
        lines += [f"### `{PROG} {verb}`", "", _cell(helps.get(verb) or verb_parser.description or ""), "",
                  "| argument | what it does |", "|---|---|"]
        lines += [row for row in _option_rows(verb_parser)
                  if not row.startswith(("| `--json`", "| `--profile NAME`"))]
        lines.append("")
    return lines


def render() -> str:
    head = ["# Configuration reference", "",
            "Generated from the code by `python scripts/gen_config_reference.py`; do not edit by hand "
            "(tests/unit/test_config_reference.py fails when this file and the code disagree).", ""]
    return "\n".join(head + traits_section() + env_section() + cli_section()).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/CONFIGURATION.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO)} is out of date: run python scripts/gen_config_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
