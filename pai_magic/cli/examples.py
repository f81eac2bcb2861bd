"""Examples shown at the end of ``pai-magic VERB --help``: a researcher copies a line and edits it,
which beats reading an option list. Every verb has some (a test holds that)."""
from __future__ import annotations

import argparse

HEADER = "examples:"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("pai-magic local --write-profile          # a cluster on this machine, logged in",
         "printf %s \"$PAI_PASSWORD\" | pai-magic login http://10.0.0.1 --user alice --password-stdin",
         "pai-magic submit --image python:3.11 --gpu 1 --wait -- python train.py",
         "pai-magic --json jobs | jq -r '.items[].name'"),
    "local": ("pai-magic local --write-profile",
              "pai-magic local --port 9186 --user alice --password-env PAI_PASSWORD --write-profile",
              "pai-magic local --gpus 1 --write-profile   # a full cluster: a second GPU job waits"),
    "login": ("printf %s \"$PAI_PASSWORD\" | pai-magic login http://10.0.0.1 --user alice --password-stdin",
              "pai-magic login https://pai.example.org --token-env PAI_TOKEN --profile lab --vc gpu",
              "pai-magic login --password-env PAI_PASSWORD   # again, for the active profile"),
    "logout": ("pai-magic logout",
               "pai-magic logout --profile lab --revoke   # also revoke a pasted token on the cluster"),
    "whoami": ("pai-magic whoami",
               "pai-magic --profile lab --json whoami"),
    "profiles": ("pai-magic profiles",
                 "pai-magic profiles use lab",
                 "pai-magic profiles show lab",
                 "pai-magic profiles remove old-cluster"),
    "vcs": ("pai-magic vcs",
            "pai-magic --json vcs | jq -r '.virtual_clusters[] | select(.gpus_free > 0) | .name'"),
    "jobs": ("pai-magic jobs --state RUNNING",
             "pai-magic jobs --all --vc gpu --limit 50",
             "pai-magic --json jobs | jq -r '.items[].full_name'"),
    "submit": ("pai-magic submit job.yaml",
               "pai-magic submit job.yaml --gpu 2 --name resnet-sweep",
               "pai-magic submit --image python:3.11 --gpu 1 --memory 16G -- python train.py --lr 0.1",
               "pai-magic submit --image pytorch/pytorch --sync .:default --ssh --keep-alive -- bash run.sh",
               "pai-magic submit --image python:3.11 --wait --timeout 3600 -- python eval.py || echo failed",
               "pai-magic submit job.yaml --dry-run      # the protocol, secrets masked; nothing submitted"),
    "job": ("pai-magic job train_3f2a",
            "pai-magic job train_3f2a --wait --timeout 600 && echo succeeded",
            "pai-magic job bob~train_3f2a --json"),
    "stop": ("pai-magic stop train_3f2a",
             "pai-magic stop train_3f2a --wait"),
    "logs": ("pai-magic logs train_3f2a",
             "pai-magic logs train_3f2a --follow",
             "pai-magic logs train_3f2a --task worker/1 --stderr --tail"),
    "ssh-key": ("pai-magic ssh-key",
                "pai-magic ssh-key --add --title laptop"),
    "ssh-info": ("pai-magic ssh-info train_3f2a",),
    "ssh": ("pai-magic ssh train_3f2a -- nvidia-smi -L",
            "pai-magic ssh train_3f2a --task worker/1 --timeout 60 -- 'tail -n 20 log.txt'",
            "pai-magic ssh train_3f2a                 # an interactive shell (in a terminal)",
            "pai-magic ssh train_3f2a --print-command"),
    "upload": ("pai-magic upload data/ train_3f2a:/data/in",
               "pai-magic upload config.yaml train_3f2a:config.yaml --task worker/0"),
    "download": ("pai-magic download train_3f2a:out/model.pt ./model.pt",
                 "pai-magic download train_3f2a:/data/out ./results"),
    "images": ("pai-magic images",
               "pai-magic images 'team/*' --tags",
               "pai-magic images pytorch --details --registry http://10.0.0.1:5000"),
    "push": ("docker save my-image:1.0 -o my-image.tar && pai-magic push my-image.tar team/my-image:1.0",),
    "image-tag": ("pai-magic image-tag team/my-image:1.0 team/my-image:stable",),
    "image-rm": ("pai-magic image-rm team/my-image:old",
                 "pai-magic image-rm team/my-image:1.0 --force   # also the other tags of that image"),
    "doctor": ("pai-magic doctor",
               "pai-magic doctor --registry http://10.0.0.1:5000 --daemon-json /etc/docker/daemon.json"),
    "storage": ("pai-magic storage",
                "pai-magic storage default --check",
                "pai-magic storage --usage --warn-above 0.8"),
    "mount": ("pai-magic mount                          # what is mounted",
              "pai-magic mount --storage default ~/pai-data",
              "pai-magic mount 10.0.0.5:/data ~/data --dry-run",
              "pai-magic mount --storage default ~/pai-data --rootless"),
    "kernel": ("pai-magic kernel install pai-gpu --image pytorch/pytorch:latest --gpu 1",
               "pai-magic kernel install pai-cpu --image python:3.11 --gpu 0 --cpu 8 --memory 32G --profile lab",
               "pai-magic kernel list",
               "pai-magic kernel remove pai-gpu"),
    "run-notebook": (
        "pai-magic run-notebook train.ipynb --image python:3.11 -p lr 0.01 --wait",
        "pai-magic run-notebook train.ipynb --image pytorch/pytorch --gpu 1 -p lr 0.1 -p lr 0.01 --wait",
        "pai-magic run-notebook sweep.ipynb --image python:3.11 -p lr 0.1 -p lr 0.01 -p bs 32 -p bs 64 --grid",
        "pai-magic run-notebook report.ipynb --image python:3.11 --html --timeout 3600 --out results --wait",
        "pai-magic run-notebook train.ipynb --image python:3.11 --storage default --wait   # a durable copy too"),
    "notebook-result": (
        "pai-magic notebook-result pai-nb-train_3f2a8c1d",
        "pai-magic notebook-result pai-nb-train_3f2a8c1d --wait   # follow a run started without --wait"),
    "umount": ("pai-magic umount ~/pai-data",
               "pai-magic umount ~/pai-data --dry-run"),
}


class ExamplesFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but prints the examples block line by line, as typed."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(HEADER):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def add_examples(parser: argparse.ArgumentParser, verb: str) -> None:
    """Put the verb's examples at the end of its help (nothing for a verb without any)."""
    lines = EXAMPLES.get(verb)
    if not lines:
        return
    parser.epilog = HEADER + "\n" + "\n".join("  " + line for line in lines)
    parser.formatter_class = ExamplesFormatter
