"""Validation must not pay for jsonschema's optional format libraries (seconds per CLI call)."""
from __future__ import annotations

import subprocess
import sys


def test_protocol_validation_does_not_import_the_slow_format_library():
    code = (
        "import sys, importlib.util\n"
        "from pai_magic.core.protocol import protocol_errors\n"
        "assert protocol_errors({'protocolVersion': 2}) != []\n"
        "print('rfc3987_syntax' in sys.modules, importlib.util.find_spec('rfc3987_syntax') is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded, installed = out.stdout.split()
    assert loaded == "False"
    if installed == "True":  # hidden only while jsonschema imported, importable again afterwards
        again = subprocess.run([sys.executable, "-c", "import pai_magic.core.lazy_jsonschema, rfc3987_syntax"],
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
