"""Wall time of ``%load_ext pai_magic`` in a fresh process, as a ratio to ``%load_ext ipyparallel``.

Each measurement runs in its own fresh Python process (nothing imported yet beyond what
IPython itself needs for an InteractiveShell), timing only the ``%load_ext`` line. The two
extensions alternate, several rounds, and the medians are compared, so machine noise
affects both sides alike. Goal: ratio <= 0.2.

Bytecode is allowed (as in an installed package) and kept in a temporary folder; a warm-up
run of each side compiles it first.

Run: ``python bench/bench_load_ext.py [--rounds 7]``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import io, json, sys, time, contextlib
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance(history_length=0)
shell.history_manager.enabled = False
name = sys.argv[1]
sink = io.StringIO()
with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
    start = time.perf_counter()
    shell.run_line_magic("load_ext", name)
    elapsed = time.perf_counter() - start
heavy = [m for m in ("requests", "yaml", "paramiko", "jsonschema", "ipywidgets", "pai_magic.core.client")
         if m in sys.modules]
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""


def measure(name: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, IPYTHONDIR=os.path.join(tmp, "ipython"),
                   PAI_MAGIC_CONFIG_DIR=os.path.join(tmp, "cfg"), PAI_MAGIC_DATA_DIR=os.path.join(tmp, "data"))
        # An installed package has compiled bytecode (pip writes it); this shell may forbid
        # writing it (PYTHONDONTWRITEBYTECODE), which would time the compiler instead. Keep
        # the bytecode in the temporary folder so the shared source tree stays untouched.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                          env.get("PYTHONPATH")]))
        measure("pai_magic", env)  # warm the OS file cache and bytecode for both sides
        measure("ipyparallel", env)
        ours, base, heavy = [], [], set()
        for _ in range(args.rounds):
            result = measure("pai_magic", env)
            ours.append(result["seconds"])
            heavy.update(result["heavy"])
            base.append(measure("ipyparallel", env)["seconds"])
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    ratio = m_ours / m_base if m_base else float("inf")
    print(f"%load_ext pai_magic   median {m_ours * 1000:7.1f} ms over {args.rounds} fresh processes")
    print(f"%load_ext ipyparallel median {m_base * 1000:7.1f} ms (baseline, same run)")
    print(f"ratio pai_magic / ipyparallel = {ratio:.3f} (goal <= 0.2) {'OK' if ratio <= 0.2 else 'OVER GOAL'}")
    print(f"(best-of ratio {min(ours) / min(base):.3f}: less sensitive to other load on the machine)")
    print(f"heavy modules imported by %load_ext pai_magic: {sorted(heavy) or 'none'}")


if __name__ == "__main__":
    main()
