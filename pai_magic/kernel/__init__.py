"""Kernels on the cluster: a Jupyter kernel that runs inside an OpenPAI job.

A face of a new kind (a jupyter_client kernel provisioner) over the core: ``spec`` holds the
kernelspec rules (install, list, remove), ``job`` drives one kernel job, ``provisioner`` is
the jupyter_client plug-in and ``supervisor`` the stdlib-only script that runs in the task.
"""
