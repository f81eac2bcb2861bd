"""SFTP throughput of pai_magic against stock OpenSSH ``sftp`` on the same private sshd.

Run from the repository root:  python bench/bench_sftp.py [--size-mib 200] [--rounds 3]

A private sshd (tests/fixtures/sshd.py: own config, host key, authorized_keys, loopback port)
serves both clients. OpenSSH's ``sftp`` is timed with each cipher it offers here and the
fastest is the baseline; then pai_magic's upload and download (connection included, as for
``sftp``) are timed in rounds interleaved with the baseline's, and the medians compared.

Two pai_magic figures are printed: the transfer with its size check (what ``sftp`` itself
does) and the full default, which also compares sha256 with the remote's ``sha256sum``
before renaming into place (overlapped with the data for downloads, after it for uploads).
Goal: ratio >= 0.9 for the transfer. Ratios only: absolute MiB/s depend on the machine.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pai_magic.core.ssh.connect import SshTarget, connect  # noqa: E402
from pai_magic.core.ssh.known_hosts import KnownHosts, host_key_alias  # noqa: E402
from pai_magic.core.ssh.transfer import download, upload  # noqa: E402
from tests.fixtures.sshd import PrivateSshd  # noqa: E402

CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr")


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        n = 0
        while n * len(block) < size:
            chunk = (n.to_bytes(8, "big") + block[8:])[:size - n * len(block)]
            fh.write(chunk)
            digest.update(chunk)
            n += 1
    return digest.hexdigest()


class OpenSsh:
    def __init__(self, sshd: PrivateSshd, work: Path) -> None:
        self.sshd, self.work = sshd, work
        self.known_hosts = work / "openssh_known_hosts"

    def run(self, cipher: str, batch: str) -> float:
        bfile = self.work / "batch"
        bfile.write_text(batch)
        argv = ["sftp", "-q", "-b", str(bfile), "-i", str(self.sshd.client_key), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                "-c", cipher, "-P", str(self.sshd.port), f"root@{self.sshd.host}"]
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=600)
        return time.perf_counter() - start

    def up(self, cipher: str, src: Path, dst: Path) -> float:
        seconds = self.run(cipher, f"put {src} {dst}\n")
        dst.unlink()
        return seconds

    def down(self, cipher: str, src: Path, dst: Path) -> float:
        seconds = self.run(cipher, f"get {src} {dst}\n")
        dst.unlink()
        return seconds


class PaiMagic:
    def __init__(self, sshd: PrivateSshd, work: Path) -> None:
        self.sshd = sshd
        self.known_hosts = KnownHosts(work / "pai_known_hosts")
        self.target = SshTarget(sshd.host, sshd.port, host_key_alias("bench~sftp", "worker", 0))

    def up(self, src: Path, dst: Path, verify: bool) -> float:
        start = time.perf_counter()
        with connect(self.target, self.sshd.client_key, known_hosts=self.known_hosts) as session:
            upload(session, src, str(dst), verify=verify)
        seconds = time.perf_counter() - start
        dst.unlink()
        return seconds

    def down(self, src: Path, dst: Path, verify: bool) -> float:
        start = time.perf_counter()
        with connect(self.target, self.sshd.client_key, known_hosts=self.known_hosts) as session:
            download(session, str(src), dst, verify=verify)
        seconds = time.perf_counter() - start
        dst.unlink()
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement (median)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if not shutil.which("sftp") or not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")):
        print("needs OpenSSH's sftp and sshd (apt-get install openssh-client openssh-server)", file=sys.stderr)
        return 2
    size = args.size_mib << 20
    mib = size / (1 << 20)
    work = Path(tempfile.mkdtemp(prefix="pai-bench-sftp-"))
    os.environ.setdefault("PAI_MAGIC_CONFIG_DIR", str(work / "config"))
    sshd = PrivateSshd(work / "sshd").start()
    try:
        src = work / "source.bin"
        make_file(src, size)
        remote_src = work / "remote_source.bin"
        shutil.copyfile(src, remote_src)
        openssh, pai = OpenSsh(sshd, work), PaiMagic(sshd, work)

        # 1. OpenSSH's fastest cipher here (one round each, both directions)
        per_cipher = {}
        for cipher in CIPHERS:
            try:
                up = openssh.up(cipher, src, work / "o_up.bin")
                down = openssh.down(cipher, remote_src, work / "o_down.bin")
            except subprocess.CalledProcessError:
                continue  # not offered by this OpenSSH build
            per_cipher[cipher] = (mib / up, mib / down)
            print(f"openssh sftp {cipher:32s} up {mib / up:7.1f} MiB/s   down {mib / down:7.1f} MiB/s")
        best = max(per_cipher, key=lambda c: sum(per_cipher[c]))
        print(f"baseline cipher: {best}")

        # 2. interleaved rounds: baseline, pai (transfer), pai (verified)
        times: dict[str, list[float]] = {k: [] for k in ("o_up", "o_down", "p_up", "p_down", "v_up", "v_down")}
        for _ in range(args.rounds):
            times["o_up"].append(openssh.up(best, src, work / "o_up.bin"))
            times["p_up"].append(pai.up(src, work / "p_up.bin", verify=False))
            times["v_up"].append(pai.up(src, work / "v_up.bin", verify=True))
            times["o_down"].append(openssh.down(best, remote_src, work / "o_down.bin"))
            times["p_down"].append(pai.down(remote_src, work / "p_down.bin", verify=False))
            times["v_down"].append(pai.down(remote_src, work / "v_down.bin", verify=True))
        rate = {k: mib / statistics.median(v) for k, v in times.items()}
        print(f"\n{args.size_mib} MiB, median of {args.rounds} interleaved rounds (connection setup included):")
        print(f"{'':34s}{'upload':>14s}{'download':>14s}")
        print(f"{'OpenSSH sftp (' + best.split('@')[0] + ')':34s}{rate['o_up']:10.1f} MiB/s{rate['o_down']:10.1f} MiB/s")
        print(f"{'pai_magic, size check':34s}{rate['p_up']:10.1f} MiB/s{rate['p_down']:10.1f} MiB/s")
        print(f"{'pai_magic, size + sha256 (default)':34s}{rate['v_up']:10.1f} MiB/s{rate['v_down']:10.1f} MiB/s")
        ratios = {"upload": rate["p_up"] / rate["o_up"], "download": rate["p_down"] / rate["o_down"],
                  "upload_verified": rate["v_up"] / rate["o_up"], "download_verified": rate["v_down"] / rate["o_down"]}
        print(f"\nratio to OpenSSH (goal >= 0.9): upload {ratios['upload']:.2f}, download {ratios['download']:.2f}")
        print(f"ratio with sha256 verification:  upload {ratios['upload_verified']:.2f}, "
              f"download {ratios['download_verified']:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"size_mib": args.size_mib, "baseline_cipher": best,
                                                   "mib_per_s": rate, "ratios": ratios,
                                                   "per_cipher": per_cipher}, indent=2))
    finally:
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
