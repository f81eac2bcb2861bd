"""JupyterLab's Notebook Jobs (jupyter-scheduler) on OpenPAI: the optional extra ``pai_magic[scheduler]``.

Enable it with ONE line in ``jupyter_server_config.py``::

    c.SchedulerApp.scheduler_class = "pai_magic.scheduler.PaiScheduler"

"Create Notebook Job" then lists one environment per image (``c.PaiScheduler.images``) and the
compute types of the profile's virtual cluster (``c.PaiScheduler.compute_types``: CPU, 1 GPU,
...); each job runs on OpenPAI through :mod:`pai_magic.core.notebook`; Stop stops the OpenPAI
job (after fetching what ran); the executed notebook (and HTML) appears in the Notebook Jobs
list. The three classes jupyter-scheduler swaps by configuration are here: the Scheduler
(:class:`PaiScheduler`), its ExecutionManager (:class:`PaiExecutionManager`, set by the
scheduler) and the EnvironmentManager (:class:`PaiEnvironmentManager`, adopted by the scheduler
so the one line above suffices; ``c.SchedulerApp.environment_manager_class`` may name it too).
"""
from pai_magic.scheduler.environments import PaiEnvironmentManager
from pai_magic.scheduler.executor import PaiExecutionManager
from pai_magic.scheduler.scheduler import PaiScheduler

__all__ = ["PaiEnvironmentManager", "PaiExecutionManager", "PaiScheduler"]
