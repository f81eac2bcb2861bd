"""``import jsonschema`` without the 5-7 s it costs in a Jupyter environment.

jsonschema's format checkers import every optional format library that is installed, and
the Jupyter stack installs ``rfc3987_syntax`` (through ``jsonschema[format-nongpl]``), which
compiles Lark grammars at import: every ``pai-magic submit`` paid seconds for a format
("iri") that no OpenPAI schema uses. When jsonschema is not yet loaded we hide that one
library for the duration of the import, then un-hide it, so a later direct
``import rfc3987_syntax`` in the same process still works (jsonschema's own "iri" checker is
then absent in this process, which nothing here relies on).
"""
from __future__ import annotations

import sys

_SLOW_OPTIONAL = "rfc3987_syntax"

if "jsonschema" in sys.modules or _SLOW_OPTIONAL in sys.modules:
    import jsonschema
else:
    sys.modules[_SLOW_OPTIONAL] = None  # type: ignore[assignment]  # makes its import fail fast
    try:
        import jsonschema
    finally:
        if sys.modules.get(_SLOW_OPTIONAL, 0) is None:
            del sys.modules[_SLOW_OPTIONAL]

__all__ = ["jsonschema"]
