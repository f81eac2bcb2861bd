"""Notebooks as cluster jobs: parameters, sweeps, the run (upload, execute, follow, fetch), results.

``run_notebook`` is the whole run in one call; faces that show progress or allow a stop use
``prepare_run`` / ``submit_run`` / ``follow_run``; ``run_sweep`` is one job per point;
``results.find_result`` tells any face where a run's executed notebook is.
"""
from pai_magic.core.notebook.params import inject_parameters, parse_pairs, parse_value, point_label, sweep_points
from pai_magic.core.notebook.results import NotebookResult, all_results, find_result
from pai_magic.core.notebook.run import (NotebookRunSpec, PreparedRun, RunProgress, follow_run, prepare_run,
                                         run_notebook, stop_run, submit_run)
from pai_magic.core.notebook.sweep import run_sweep

__all__ = ["NotebookResult", "NotebookRunSpec", "PreparedRun", "RunProgress", "all_results", "find_result",
           "follow_run", "inject_parameters", "parse_pairs", "parse_value", "point_label", "prepare_run",
           "run_notebook", "run_sweep", "stop_run", "submit_run", "sweep_points"]
