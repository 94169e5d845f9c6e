"""A one-node SLURM cluster on this machine for the launcher's tests: MUNGE, slurmctld and
slurmd from Debian's packages (``tests/slurm/install.sh``), configured by ``slurm.conf.in`` and
``cgroup.conf`` beside this file, with their state, logs and key in a temporary folder."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun", "sinfo")


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started here; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(path: str) -> str:
    found = shutil.which(path) or shutil.which(path, path="/usr/sbin:/sbin")
    if not found:
        raise ClusterUnavailable(f"{path} is not installed; run tests/slurm/install.sh (Debian's "
                                 "slurm-wlm and munge)")
    return found


def _start(command: list[str], what: str, log: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise ClusterUnavailable(f"{what} did not start (exit {result.returncode}): "
                                 f"{result.stderr.strip()} {tail}")


@contextmanager
def one_node_cluster(cpus: int = 2, memory_mb: int = 8000) -> Iterator[Path]:
    """Start the cluster, set ``$SLURM_CONF`` for this process (and so for sbatch and the jobs),
    yield its folder; stop every daemon afterwards."""
    commands = {name: _daemon(name) for name in DAEMONS}
    if os.geteuid() != 0:
        raise ClusterUnavailable("slurmd must run as root to start jobs; run the tests as root "
                                 "(CI does)")
    root = Path(tempfile.mkdtemp(prefix="slurm-"))  # short: the MUNGE socket path has a limit
    munge = root / "munge"
    munge.mkdir(mode=0o700)
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = munge / "munge.socket"
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text((HERE / "slurm.conf.in").read_text().format(
        host=host, user=getpass.getuser(), ctld_port=_free_port(), slurmd_port=_free_port(),
        munge_socket=socket_path, root=root, cpus=cpus, memory_mb=memory_mb))
    shutil.copy(HERE / "cgroup.conf", root / "cgroup.conf")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    pid_files = [munge / "munged.pid", root / "slurmctld.pid", root / "slurmd.pid"]
    try:
        _start([commands["munged"], "--force", f"--socket={socket_path}",
                f"--pid-file={pid_files[0]}", f"--log-file={munge / 'munged.log'}",
                f"--key-file={key}", f"--seed-file={munge / 'seed'}"], "munged",
               munge / "munged.log")
        _start([commands["slurmctld"], "-f", str(conf)], "slurmctld", root / "slurmctld.log")
        _start([commands["slurmd"], "-f", str(conf)], "slurmd", root / "slurmd.log")
        deadline = time.monotonic() + 60
        while True:
            state = subprocess.run([commands["sinfo"], "-h", "-o", "%T"], capture_output=True,
                                   text=True).stdout.strip()
            if state == "idle":
                break
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"the node did not come up (sinfo: {state!r}); see "
                                         f"{root / 'slurmd.log'}")
            time.sleep(0.5)
        yield root
    finally:
        for pid_file in reversed(pid_files):
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
