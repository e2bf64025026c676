#!/usr/bin/env python3
"""A private Slurm cluster on localhost, for the tests and the benchmark.

    python tools/local_slurm.py start [--nodes 2]   # munged, slurmctld, one slurmd per node
    eval "$(python tools/local_slurm.py env)"       # point sbatch/squeue at it
    python tools/local_slurm.py status
    python tools/local_slurm.py stop                # by PID, never by process name

Everything lives in one folder (default /tmp/volcano-slurm, or $VOLCANO_SLURM_DIR):
its own slurm.conf, a munged with its own socket, state, spool, logs and PID
files. Starting is idempotent: daemons that run are kept, stale PID files from
a crash or a ``kill -9`` are cleared. Needs root and Debian's slurmctld, slurmd,
slurm-client and munge packages; no systemd, no cgroups.

With ``--accounting`` it also keeps accounting, as a site does: its own MariaDB
(a data folder, socket and port of its own) and slurmdbd, ``jobacct_gather/linux``
for each step's CPU time and peak memory, and a cluster, an account and a user
registered with ``sacctmgr``. That needs Debian's mariadb-server and slurmdbd.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from volcano_gif.commands import CommandError
from volcano_gif.commands import run
from volcano_gif.slurm import ENDED_STATES

DEFAULT_DIR = Path(os.environ.get("VOLCANO_SLURM_DIR", "/tmp/volcano-slurm"))
CTLD_PORT = int(os.environ.get("VOLCANO_SLURM_PORT", "16817"))
PARTITION = "debug"
MUNGE_KEY = Path("/etc/munge/munge.key")
REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
ACCOUNTING_PROGRAMS = ("mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "sacctmgr", "sacct")
#: The database account slurmdbd uses (only on this private, loopback-only server).
DB_USER, DB_PASSWORD = "slurm", "volcano-localhost"
#: What sacctmgr registers: the cluster, one account for the learners, and root in it.
ACCOUNT = "class"


class ClusterError(RuntimeError):
    """The cluster could not be started, stopped or queried."""


def missing_programs(accounting: bool = False) -> list[str]:
    """The Slurm and munge programs (and, with ``accounting``, MariaDB's and slurmdbd)
    that are not installed."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    wanted = (*REQUIRED_PROGRAMS, *(ACCOUNTING_PROGRAMS if accounting else ()))
    return [name for name in wanted if shutil.which(name, path=search) is None]


def _program(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(
            f"{name} is not installed: apt-get install --no-install-recommends "
            "slurmctld slurmd slurm-client munge"
        )
    return found


def _run(args: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        return run(args, env=env)
    except CommandError as error:
        raise ClusterError(str(error)) from None


@dataclass(frozen=True)
class Cluster:
    """The files of one private cluster.

    ``settings`` override or add slurm.conf lines, e.g.
    ``(("SlurmdTimeout", "10"), ("MaxArraySize", "101"))``. ``cred_expire``
    shortens the job credentials' lifetime, which is also how long a requeued
    job waits before it may start again (Slurm's default: 120 s).
    """

    folder: Path = DEFAULT_DIR
    nodes: int = 1
    port: int = CTLD_PORT
    settings: tuple[tuple[str, str], ...] = ()
    cred_expire: int | None = None
    accounting: bool = False  # MariaDB + slurmdbd on ports port - 2 and port - 1

    @property
    def db_port(self) -> int:
        return self.port - 2

    @property
    def dbd_port(self) -> int:
        return self.port - 1

    @property
    def db_dir(self) -> Path:
        """MariaDB's data, socket and PID file: a folder of the mysql user's own."""
        return self.folder / "mariadb"

    @property
    def db_socket(self) -> Path:
        return self.db_dir / "mysql.sock"

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def munge_dir(self) -> Path:
        return self.folder / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    @property
    def node_names(self) -> list[str]:
        return [f"n{index}" for index in range(1, self.nodes + 1)]

    def pid_file(self, daemon: str) -> Path:
        if daemon == "munged":
            return self.munge_dir / "munged.pid"
        if daemon == "mariadbd":
            return self.db_dir / "mariadbd.pid"
        return self.folder / f"{daemon}.pid"

    def env(self) -> dict[str, str]:
        """The environment for Slurm clients that talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # ----------------------------------------------------------- configuration
    def slurm_conf(self, layout: str) -> str:
        host = socket.gethostname().split(".")[0]
        lines = [
            "# Written by tools/local_slurm.py: a private cluster on localhost.",
            "ClusterName=volcano",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={self.port}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}"
            + (f",cred_expire={self.cred_expire}" if self.cred_expire else ""),
            f"StateSaveLocation={self.folder}/state",
            f"SlurmdSpoolDir={self.folder}/spool/%n",
            f"SlurmctldPidFile={self.pid_file('slurmctld')}",
            f"SlurmdPidFile={self.folder}/slurmd-%n.pid",
            f"SlurmctldLogFile={self.folder}/slurmctld.log",
            f"SlurmdLogFile={self.folder}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            *(
                self._accounting_lines()
                if self.accounting
                else [
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                ]
            ),
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.folder}/jobcomp.txt",
            "MailProg=/bin/true",
            # Fast scheduling: a freed core is reused at once, not after a second.
            "Epilog=/bin/true",
            "SchedulerParameters=bf_interval=1,batch_sched_delay=0,sched_min_interval=0",
            "MinJobAge=3600",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "SlurmdTimeout=60",
            "InactiveLimit=0",
            "KillWait=5",
        ]
        overrides = dict(self.settings)
        lines = [
            f"{key}={overrides.pop(key)}" if (key := line.split("=", 1)[0]) in overrides else line
            for line in lines
        ]
        lines += [f"{key}={value}" for key, value in overrides.items()]
        for index, name in enumerate(self.node_names, start=1):
            lines.append(
                f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 "
                f"Port={self.port + index} {layout} State=UNKNOWN"
            )
        lines.append(
            f"PartitionName={PARTITION} Nodes={','.join(self.node_names)} "
            "Default=YES MaxTime=INFINITE State=UP"
        )
        return "\n".join(lines) + "\n"

    def _accounting_lines(self) -> list[str]:
        return [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=localhost",
            f"AccountingStoragePort={self.dbd_port}",
            # For slurmdbd, the munge socket that authenticates to it.
            f"AccountingStoragePass={self.munge_socket}",
            "AccountingStorageEnforce=associations,limits,qos",
            # Each step's CPU time and peak memory, sampled every second.
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=1",
        ]

    def slurmdbd_conf(self) -> str:
        return "\n".join([
            "# Written by tools/local_slurm.py: the private cluster's accounting.",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.dbd_port}",
            "SlurmUser=root",
            f"PidFile={self.pid_file('slurmdbd')}",
            f"LogFile={self.folder}/slurmdbd.log",
            "StorageType=accounting_storage/mysql",
            # 127.0.0.1, not localhost: the client library would look for the
            # system's socket instead of this port.
            "StorageHost=127.0.0.1",
            f"StoragePort={self.db_port}",
            f"StorageUser={DB_USER}",
            f"StoragePass={DB_PASSWORD}",
            "StorageLoc=slurm_acct_db",
        ]) + "\n"  # fmt: skip


def node_layout() -> str:
    """This machine's CPU and memory layout, as ``slurmd -C`` reports it."""
    first_line = _run([_program("slurmd"), "-C"]).splitlines()[0]
    fields = dict(re.findall(r"(\w+)=(\S+)", first_line))
    keys = ["CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory"]
    return " ".join(f"{key}={fields[key]}" for key in keys if key in fields)


# ------------------------------------------------------------------ processes
def _pid_alive(pid_file: Path, program: str) -> int | None:
    """The PID in ``pid_file`` if that process runs ``program``; else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
        executable = os.readlink(f"/proc/{pid}/exe")
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError, PermissionError):
        return None
    # Debian's slurmctld is a link to slurmctld-wlm: compare resolved paths.
    expected = os.path.realpath(_program(program))
    return pid if executable.removesuffix(" (deleted)") == expected else None


def _wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")


def _ensure_munge_key() -> None:
    if MUNGE_KEY.exists():
        return
    MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
    _run([_program("mungekey"), "--create", f"--keyfile={MUNGE_KEY}"])
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o600)


def _start_munged(cluster: Cluster) -> None:
    if _pid_alive(cluster.pid_file("munged"), "munged"):
        return
    _ensure_munge_key()
    cluster.munge_dir.mkdir(parents=True, exist_ok=True)
    for stale in (cluster.munge_socket, cluster.pid_file("munged")):
        stale.unlink(missing_ok=True)
    Path(f"{cluster.munge_socket}.lock").unlink(missing_ok=True)
    shutil.chown(cluster.munge_dir, "munge", "munge")
    cluster.munge_dir.chmod(0o755)  # munged wants its socket folder searchable by all
    _run([
        _program("runuser"), "-u", "munge", "--", _program("munged"),
        f"--socket={cluster.munge_socket}",
        f"--pid-file={cluster.pid_file('munged')}",
        f"--log-file={cluster.munge_dir}/munged.log",
        f"--seed-file={cluster.munge_dir}/munged.seed",
        f"--key-file={MUNGE_KEY}",
    ])  # fmt: skip
    _wait_for(cluster.munge_socket.exists, "munged's socket", 10)


def _start_mariadb(cluster: Cluster) -> None:
    """MariaDB on 127.0.0.1:db_port, data and socket in the cluster's folder."""
    if _pid_alive(cluster.pid_file("mariadbd"), "mariadbd"):
        return
    data = cluster.db_dir / "data"
    if not (data / "mysql").is_dir():
        data.mkdir(parents=True, exist_ok=True)
        shutil.chown(cluster.db_dir, "mysql", "mysql")
        shutil.chown(data, "mysql", "mysql")
        _run([_program("mariadb-install-db"), "--user=mysql", f"--datadir={data}",
              "--skip-test-db"])  # fmt: skip
    for stale in (cluster.db_socket, cluster.pid_file("mariadbd")):
        stale.unlink(missing_ok=True)
    subprocess.Popen(
        [_program("mariadbd"), "--user=mysql", f"--datadir={data}",
         f"--socket={cluster.db_socket}", f"--port={cluster.db_port}",
         "--bind-address=127.0.0.1", f"--pid-file={cluster.pid_file('mariadbd')}",
         "--skip-log-bin", f"--log-error={cluster.db_dir}/mariadbd.log"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    _wait_for(cluster.db_socket.exists, "MariaDB's socket", 30)
    _run([_program("mariadb"), "-S", str(cluster.db_socket), "-u", "root", "-e",
          f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; "
          f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';"])  # fmt: skip


def _start_slurmdbd(cluster: Cluster) -> None:
    """slurmdbd beside slurm.conf, then the cluster, account and user it accounts for."""
    if not _pid_alive(cluster.pid_file("slurmdbd"), "slurmdbd"):
        conf = cluster.folder / "slurmdbd.conf"
        conf.write_text(cluster.slurmdbd_conf())
        conf.chmod(0o600)  # slurmdbd refuses a readable one: it holds the password
        cluster.pid_file("slurmdbd").unlink(missing_ok=True)
        _run([_program("slurmdbd")], env=cluster.env())

    def answers() -> bool:
        try:
            _run([_program("sacctmgr"), "-n", "show", "cluster"], env=cluster.env())
        except ClusterError:
            return False
        return True

    _wait_for(answers, "slurmdbd", 30)
    # Only what is missing: sacctmgr fails on what exists already.
    listed = _run([_program("sacctmgr"), "-n", "-P", "show", "assoc",
                   "format=cluster,account,user"], env=cluster.env())  # fmt: skip
    known = {tuple(line.split("|")) for line in listed.splitlines() if line}
    wanted = (
        (("volcano", "root", ""), ["cluster", "volcano"]),
        (("volcano", ACCOUNT, ""), ["account", ACCOUNT, "Description=learners",
                                    "Organization=volcano"]),
        (("volcano", ACCOUNT, "root"), ["user", "root", f"Account={ACCOUNT}"]),
    )  # fmt: skip
    for association, what in wanted:
        if association not in known:
            _run([_program("sacctmgr"), "-i", "add", *what], env=cluster.env())


def _start_slurmctld(cluster: Cluster) -> None:
    if _pid_alive(cluster.pid_file("slurmctld"), "slurmctld"):
        return
    cluster.pid_file("slurmctld").unlink(missing_ok=True)
    # -c: start with no jobs from an earlier (crashed) run; -i: ignore broken state.
    _run([_program("slurmctld"), "-c", "-i", "-f", str(cluster.conf)], env=cluster.env())


def _start_slurmd(cluster: Cluster, node: str) -> None:
    pid_file = cluster.folder / f"slurmd-{node}.pid"
    if _pid_alive(pid_file, "slurmd"):
        return
    pid_file.unlink(missing_ok=True)
    (cluster.folder / "spool" / node).mkdir(parents=True, exist_ok=True)
    _run([_program("slurmd"), "-N", node, "-f", str(cluster.conf)], env=cluster.env())


def node_states(cluster: Cluster) -> dict[str, str]:
    """``{node: state}`` as sinfo reports them."""
    try:
        output = _run([_program("sinfo"), "-h", "-N", "-o", "%N %t"], env=cluster.env())
    except ClusterError:
        return {}
    return dict(line.split() for line in output.splitlines() if line.strip())


def start(cluster: Cluster, timeout: float = 60) -> float:
    """Start (or complete) the cluster; return the seconds it took to become idle."""
    began = time.monotonic()
    if os.geteuid() != 0:
        raise ClusterError("the private cluster runs its daemons as root: run this as root")
    for folder in (cluster.folder, cluster.folder / "state", cluster.folder / "spool"):
        folder.mkdir(parents=True, exist_ok=True)
    running = _pid_alive(cluster.pid_file("slurmctld"), "slurmctld")
    wanted = cluster.slurm_conf(node_layout())
    if running and cluster.conf.exists() and cluster.conf.read_text() != wanted:
        stop(cluster)  # a different layout (node count): start again from scratch
    cluster.conf.write_text(wanted)
    _start_munged(cluster)
    if cluster.accounting:
        _start_mariadb(cluster)
        _start_slurmdbd(cluster)
    _start_slurmctld(cluster)
    for node in cluster.node_names:
        _start_slurmd(cluster, node)

    def all_idle() -> bool:
        states = node_states(cluster)
        return sorted(states) == cluster.node_names and all(
            state in {"idle", "mix", "alloc"} for state in states.values()
        )

    try:
        _wait_for(all_idle, f"nodes {', '.join(cluster.node_names)} to be idle", timeout)
    except ClusterError as error:
        raise ClusterError(f"{error}; see the logs in {cluster.folder}") from None
    return time.monotonic() - began


def _daemon_pid_files(cluster: Cluster) -> list[tuple[Path, str]]:
    slurmds = [(path, "slurmd") for path in sorted(cluster.folder.glob("slurmd-*.pid"))]
    accounting = [(cluster.pid_file("slurmdbd"), "slurmdbd"),
                  (cluster.pid_file("mariadbd"), "mariadbd")]  # fmt: skip
    # Also for a cluster started with accounting and stopped without saying so.
    if not cluster.accounting and not any(path.exists() for path, _ in accounting):
        accounting = []
    return [*slurmds, (cluster.pid_file("slurmctld"), "slurmctld"), *accounting,
            (cluster.pid_file("munged"), "munged")]  # fmt: skip


def _process_gone(pid: int) -> Callable[[], bool]:
    return lambda: not Path(f"/proc/{pid}").exists()


def stop(cluster: Cluster, timeout: float = 20) -> None:
    """Stop every daemon of the cluster by the PID in its PID file."""
    for pid_file, program in _daemon_pid_files(cluster):
        pid = _pid_alive(pid_file, program)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            try:
                _wait_for(_process_gone(pid), program, timeout)
            except ClusterError:
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def status(cluster: Cluster) -> dict[str, int | None]:
    """``{daemon pid file name: pid or None}``."""
    return {path.name: _pid_alive(path, program) for path, program in _daemon_pid_files(cluster)}


# ----------------------------------------------------------------- job queries
def job_records(cluster: Cluster, job_id: str) -> list[dict[str, str]]:
    """One record per job (or array task) from ``scontrol show job -o``."""
    try:
        output = _run([_program("scontrol"), "show", "job", "-o", job_id], env=cluster.env())
    except ClusterError as error:
        if "Invalid job id" in str(error):
            return []
        raise
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in output.splitlines() if line]


def wait_for_jobs(cluster: Cluster, job_ids: Iterable[str], timeout: float = 300) -> None:
    """Wait until every job and array task of ``job_ids`` has ended."""
    ids = list(job_ids)

    def ended() -> bool:
        records = [record for job in ids for record in job_records(cluster, job)]
        return bool(records) and all(r.get("JobState") in ENDED_STATES for r in records)

    _wait_for(ended, f"jobs {', '.join(ids)} to end", timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local_slurm.py", description="A private Slurm cluster on localhost."
    )
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the cluster's folder")
    parser.add_argument("--nodes", type=int, default=1, help="emulated nodes (default 1)")
    parser.add_argument(
        "--accounting", action="store_true",
        help="also run MariaDB and slurmdbd: sacct, seff-style reports, QOS limits",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=CTLD_PORT,
        help="slurmctld's port; node k uses port + k (default %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir.resolve(), args.nodes, args.port, accounting=args.accounting)
    try:
        if args.command == "start":
            seconds = start(cluster)
            print(f"cluster up in {seconds:.1f} s: {node_states(cluster)}", file=sys.stderr)
            print(f"export SLURM_CONF={shlex.quote(str(cluster.conf))}")
        elif args.command == "stop":
            stop(cluster)
        elif args.command == "status":
            for name, pid in status(cluster).items():
                print(f"{name}: {pid if pid else 'not running'}")
        else:
            print(f"export SLURM_CONF={shlex.quote(str(cluster.conf))}")
    except ClusterError as error:
        print(f"local_slurm.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
