"""Notebook parameters the way papermill takes them, and sweeps over them.

``-p NAME VALUE`` values are read like papermill's command line reads them (``True``/``False``
are booleans, ``None`` is None, then int, then float, else the text itself), so a notebook
that already runs under papermill gets the same Python values here. They are injected as a
new code cell tagged ``injected-parameters`` right after the cell tagged ``parameters`` (at
the top when there is none), which is what papermill writes: a person reading the executed
copy sees exactly what the run used. At the top, a cell of the notebook that sets the same
names later wins over the values given, so :func:`injection_warning` says so (papermill warns
too) and every face shows that line once; the run still goes ahead.

A parameter name becomes ``name = value`` in that cell: :func:`check_parameter_name` is the one
rule (a Python identifier, not a keyword), whichever face the names came from.

A sweep is one job per point. Repeating ``-p`` for a name gives that name several values;
several names with several values are zipped (same count) or, with ``grid``, crossed.
"""
from __future__ import annotations

import itertools
import json
import keyword
import math
from typing import Any, Iterable, Sequence

from pai_magic.core.errors import InvalidInputError

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill's CLI resolves it: bool, None, int, float, else str."""
    raw = str(text)
    if raw == "True":
        return True
    if raw == "False":
        return False
    if raw == "None":
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return raw
    return value


def check_parameter_name(name: Any) -> str:
    """A parameter name that can be assigned in the injected cell, else one line saying why."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidInputError(f"Parameter name {name!r} is not a Python name: use letters, digits and "
                                "'_', not starting with a digit and not a keyword such as 'class', e.g. lr.")
    return name


def parse_pairs(pairs: Iterable[Sequence[str]]) -> dict[str, list[Any]]:
    """``[(name, value), ...]`` -> ``{name: [values in order]}`` (repeats make a sweep)."""
    out: dict[str, list[Any]] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidInputError("Each parameter is -p NAME VALUE, e.g. -p lr 0.01.")
        name, value = check_parameter_name(str(pair[0]).strip()), pair[1]
        out.setdefault(name, []).append(value if not isinstance(value, str) else parse_value(value))
    return out


def sweep_points(values: dict[str, list[Any]], *, grid: bool = False) -> list[dict[str, Any]]:
    """One dict of parameters per job. Without ``grid``, multi-valued names are zipped."""
    if not values:
        return [{}]
    names = list(values)
    if grid:
        return [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))]
    lengths = {len(v) for v in values.values() if len(v) > 1}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}: {len(v)}" for n, v in values.items() if len(v) > 1)
        raise InvalidInputError(f"The swept parameters have different numbers of values ({detail}): give each "
                                "the same number, or add --grid for every combination.")
    count = lengths.pop() if lengths else 1
    return [{n: (v[i] if len(v) > 1 else v[0]) for n, v in values.items()} for i in range(count)]


def point_label(point: dict[str, Any]) -> str:
    """``lr=0.1 epochs=3``: how a face names one point of a sweep."""
    return " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in point.items())


def sweep_labels(points: list[dict[str, Any]]) -> list[str]:
    """Per point, the label of only the names whose values differ between the points (``n=2``):
    what tells the jobs of a sweep apart in a table; all empty for a single run."""
    if len(points) < 2:
        return ["" for _ in points]
    names = [n for n in dict.fromkeys(k for p in points for k in p)
             if len({repr(p.get(n)) for p in points}) > 1]
    return [point_label({n: p.get(n) for n in names}) for p in points]


def python_literal(value: Any) -> str:
    """Python source for a parameter value (JSON-like data only: what YAML and -p give)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(python_literal(v) for v in value)
        return f"[{inner}]"
    if isinstance(value, dict):
        inner = ", ".join(f"{python_literal(str(k))}: {python_literal(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise InvalidInputError(f"Parameter value {value!r} is not plain data (text, number, bool, list, dict).")


def _tags(cell: dict[str, Any]) -> list[str]:
    meta = cell.get("metadata") or {}
    tags = meta.get("tags") or []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def has_parameters_cell(nb: dict[str, Any]) -> bool:
    return any(PARAMETERS_TAG in _tags(c) for c in nb.get("cells", []))


def injection_warning(nb: dict[str, Any], params: dict[str, Any], where: str = "The notebook") -> str | None:
    """One line when ``params`` go to the top because no cell is tagged ``parameters``, else None.

    Why a warning and not an error: the run is still what papermill would do, and a notebook
    that never sets these names works; but one that sets them later silently ignores the values.
    """
    if not params or has_parameters_cell(nb):
        return None
    names = ", ".join(params)
    return (f"{where} has no cell tagged `parameters`: {names} were set in a new first cell, so a later cell "
            "that sets them again wins; tag the cell holding their defaults `parameters` (papermill's convention).")


def inject_parameters(nb: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The notebook with an ``injected-parameters`` cell (a copy; earlier injections replaced)."""
    for name in params:
        check_parameter_name(name)
    copy: dict[str, Any] = json.loads(json.dumps(nb))
    cells = [c for c in copy.get("cells", []) if INJECTED_TAG not in _tags(c)]
    if params:
        lines = ["# Parameters"] + [f"{k} = {python_literal(v)}" for k, v in params.items()]
        source = "\n".join(lines) + "\n"
        cell: dict[str, Any] = {"cell_type": "code", "execution_count": None,
                                "metadata": {"tags": [INJECTED_TAG]}, "outputs": [], "source": source}
        if int(copy.get("nbformat", 4)) >= 4 and int(copy.get("nbformat_minor", 0)) >= 5:
            cell["id"] = "injected-parameters"
        at = next((i + 1 for i, c in enumerate(cells) if PARAMETERS_TAG in _tags(c)), 0)
        cells.insert(at, cell)
    copy["cells"] = cells
    meta = copy.setdefault("metadata", {})
    meta.setdefault("pai_magic", {})["parameters"] = params
    return copy


def read_notebook(text: str | bytes, where: str = "the notebook") -> dict[str, Any]:
    """Parse notebook JSON with a one-line error instead of a traceback."""
    try:
        nb = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{where} is not a notebook (invalid JSON: {exc}): save it from Jupyter "
                                "and try again.") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise InvalidInputError(f"{where} is not a notebook (no cells list): give an .ipynb file.")
    if int(nb.get("nbformat", 0) or 0) < 4:
        raise InvalidInputError(f"{where} is nbformat {nb.get('nbformat')}: open and save it in Jupyter to "
                                "upgrade it to version 4.")
    return nb


def code_cell_count(nb: dict[str, Any]) -> int:
    return sum(1 for c in nb.get("cells", []) if c.get("cell_type") == "code")
