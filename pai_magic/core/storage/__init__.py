"""Cluster storages on the user's machine: list and probe them, mount them (kernel NFS or
sshfs through a job without root), and push a folder to them for jobs.

Modules: ``info`` (what the cluster offers), ``check`` (does the NFS server export it),
``nfs`` (kernel mount/umount as argv, sudo -n, one-sentence errors), ``mounttable`` (what is
mounted, from /proc/self/mountinfo), ``state`` (what pai_magic mounted), ``usage`` (space,
personal folder), ``rootless`` (sshfs through a job), ``sync`` (folder upload that moves no
bytes when nothing changed).
"""
