#!/usr/bin/env python3
"""A private Slurm cluster on localhost, for the tests and the benchmark.

    python tools/local_slurm.py start [--nodes 2] [--accounting] [--learner NAME]
    eval "$(python tools/local_slurm.py env)"       # point sbatch/squeue at it
    python tools/local_slurm.py status
    python tools/local_slurm.py stop                # by PID, never by process name

Everything lives in one folder (default /tmp/volcano-slurm, or $VOLCANO_SLURM_DIR):
its own slurm.conf and cgroup.conf, a munged with its own socket, state, spool,
logs and PID files, and ``cluster.json`` with the ports and node names it chose.
Ports are picked free when the cluster is first started, and node names carry
the controller's port (``c23456n1``), so clusters never collide: not with each
other, not in the kernel's cgroups. Starting is idempotent: daemons that run are
kept, stale PID files from a crash or a ``kill -9`` are cleared; a start that
fails stops whatever it started. Needs root and Debian's slurmctld, slurmd,
slurm-client and munge packages; no systemd.

Two profiles. ``site`` (the default) is configured as a site configures Slurm:
cgroups enforce ``--mem`` and cores where the machine has a cgroup memory
controller (``proctrack/cgroup``, ``task/cgroup``, ``CR_Core_Memory``,
``ConstrainRAMSpace``), ``MinJobAge=300``, ``JobAcctGatherFrequency=30``,
``MaxArraySize=1001``, ``priority/multifactor``, a ``DefMemPerCPU``, and Slurm's
own scheduler timing. ``fast`` is the forgiving cluster of the benchmark: no
cgroups, memory not enforced, a scheduler tuned to start a freed core's next
task at once, ``MinJobAge=3600``, accounting sampled every second.

With ``--accounting`` it also keeps accounting, as a site does: its own MariaDB
(a data folder, socket and port of its own) and slurmdbd, ``jobacct_gather/linux``
for each step's CPU time and peak memory, and a cluster, an account and its users
(root, and each ``--learner``, made as a Unix user if need be) registered with
``sacctmgr``. That needs Debian's mariadb-server and slurmdbd.

Options make it a stricter site, as many are: ``--no-default-partition`` (every
job must name one: ``SBATCH_PARTITION``), ``--require-account`` (a
``job_submit.lua`` refuses a job that names no account: ``SBATCH_ACCOUNT``),
``--max-submit N`` (each learner may queue N jobs, every array task counting as
one: their association's ``MaxSubmitJobs``, with ``--accounting``), and ``--set
KEY=VALUE`` for any slurm.conf line (``DependencyParameters=kill_invalid_depend``,
``PrivateData=jobs``, ``MaxArraySize=500``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script, python tools/local_slurm.py: find the project
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.learners import Learner
from volcano_gif.commands import CommandError, run
from volcano_gif.slurm import ENDED_STATES, scontrol_records

DEFAULT_DIR = Path(os.environ.get("VOLCANO_SLURM_DIR", "/tmp/volcano-slurm"))
PARTITION = "debug"
PROFILES = ("site", "fast")
MUNGE_KEY = Path("/etc/munge/munge.key")
REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
ACCOUNTING_PROGRAMS = ("mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "sacctmgr", "sacct")
#: The database account slurmdbd uses (only on this private, loopback-only server).
DB_USER, DB_PASSWORD = "slurm", "volcano-localhost"
#: What sacctmgr registers: the cluster, one account for the learners, root and learners in it.
ACCOUNT = "class"
#: Ports are picked from here: below Linux's ephemeral range (32768-60999), so that
#: no client's outgoing connection takes a port between our pick and the daemon's bind.
PORT_RANGE = range(20000, 32000)
#: Where a cgroup v1 memory controller is mounted (Debian 12 here; no systemd).
CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
#: Held while MariaDB makes a new data folder: one at a time on this machine.
INSTALL_DB_LOCK = Path("/tmp/volcano-mariadb-install.lock")
#: A site's default memory per CPU for jobs that give no --mem (Slurm's own default, 0,
#: would give such a job its node's whole memory, and no other job could share the node).
DEF_MEM_PER_CPU = 1024
#: ``--require-account``: refuse a job that names no account, as sites that bill by
#: project do (in sbatch's words for an account Slurm does not know).
REQUIRE_ACCOUNT_LUA = """\
-- Written by tools/local_slurm.py: every job must name an account.
function slurm_job_submit(job_desc, part_list, submit_uid)
    if job_desc.account == nil then
        slurm.log_user("this site requires an account: sbatch --account=NAME, or SBATCH_ACCOUNT")
        return slurm.ESLURM_INVALID_ACCOUNT
    end
    return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    return slurm.SUCCESS
end
"""


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


def slurm_version() -> tuple[int, int]:
    """The installed Slurm's (major, minor): ``slurmctld -V`` says ``slurm-wlm 22.05.8``."""
    said = _run([_program("slurmctld"), "-V"])
    match = re.search(r"(\d+)\.(\d+)", said)
    if match is None:
        raise ClusterError(f"cannot read Slurm's version from {said!r}")
    return int(match.group(1)), int(match.group(2))


def cgroup_memory_controller() -> bool:
    """True where cgroups can enforce memory for Slurm: a cgroup v1 memory controller."""
    return CGROUP_V1_MEMORY.exists()


@dataclass(frozen=True)
class Layout:
    """What a cluster chose when it was first started, kept in its ``cluster.json``."""

    port: int  # slurmctld's; each node, slurmdbd and MariaDB have ports of their own
    node_ports: tuple[int, ...]
    dbd_port: int
    db_port: int

    @property
    def node_names(self) -> list[str]:
        """``c<port>n1`` ...: names no other cluster on this machine uses, so that
        the kernel's cgroups of two clusters' jobs (``slurm_<node>/uid_<uid>/job_<id>``)
        never meet."""
        return [f"c{self.port}n{index}" for index in range(1, len(self.node_ports) + 1)]


def free_ports(count: int, avoid: Iterable[int] = ()) -> list[int]:
    """``count`` ports that nothing listens on now, from :data:`PORT_RANGE`."""
    chosen: list[int] = []
    taken = set(avoid)
    for candidate in random.sample(PORT_RANGE, len(PORT_RANGE)):
        if candidate in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("", candidate))
            except OSError:
                continue
        chosen.append(candidate)
        if len(chosen) == count:
            return chosen
    raise ClusterError(f"no {count} free ports between {PORT_RANGE.start} and {PORT_RANGE.stop}")


class _InFolder:
    """A path in the cluster's folder, read as an attribute: ``cluster.conf``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, cluster: Cluster, owner: type[Cluster]) -> Path:
        return cluster.folder.joinpath(*self.parts)


@dataclass(frozen=True)
class Cluster:
    """The files of one private cluster.

    ``settings`` override or add slurm.conf lines, e.g.
    ``(("SlurmdTimeout", "10"), ("MaxArraySize", "101"))``. ``cred_expire``
    shortens the job credentials' lifetime, which is also how long a requeued
    job waits before it may start again (Slurm's default: 120 s). ``learners``
    are Unix users registered in accounting (made if missing). A stricter site:
    no ``default_partition``, ``require_account``, and ``max_submit`` jobs queued
    per learner (with accounting).
    """

    folder: Path = DEFAULT_DIR
    nodes: int = 1
    settings: tuple[tuple[str, str], ...] = ()
    cred_expire: int | None = None
    accounting: bool = False  # MariaDB + slurmdbd
    profile: str = "site"
    learners: tuple[str, ...] = ()
    default_partition: bool = True
    require_account: bool = False
    max_submit: int | None = None

    layout_file = _InFolder("cluster.json")

    def layout(self) -> Layout:
        """The ports and node names this cluster chose when first started."""
        try:
            data = json.loads(self.layout_file.read_text())
            return Layout(
                data["port"], tuple(data["node_ports"]), data["dbd_port"], data["db_port"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            raise ClusterError(
                f"{self.folder} holds no started cluster (no {self.layout_file.name}): "
                "start it with: python tools/local_slurm.py start"
            ) from None

    def _choose_layout(self) -> Layout:
        """This cluster's layout: the one it had, if its node count is the same, else new."""
        try:
            layout = self.layout()
        except ClusterError:
            layout = None
        if layout is None or len(layout.node_ports) != self.nodes:
            port, dbd, db, *nodes = free_ports(self.nodes + 3)
            layout = Layout(port, tuple(nodes), dbd, db)
            self.layout_file.write_text(json.dumps(layout.__dict__, indent=2) + "\n")
        return layout

    @property
    def node_names(self) -> list[str]:
        return self.layout().node_names

    #: MariaDB's data, socket and PID file: a folder of the mysql user's own.
    db_dir = _InFolder("mariadb")
    db_socket = _InFolder("mariadb", "mysql.sock")
    conf = _InFolder("slurm.conf")
    cgroup_conf = _InFolder("cgroup.conf")  # beside slurm.conf, where Slurm looks for it
    munge_dir = _InFolder("munge")
    munge_socket = _InFolder("munge", "munge.socket")
    job_submit_lua = _InFolder("job_submit.lua")  # beside slurm.conf, where Slurm looks

    @property
    def enforces_memory(self) -> bool:
        """True if cgroups enforce --mem here: the site profile, on a machine that can."""
        return self.profile == "site" and cgroup_memory_controller()

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
    def slurm_conf(self, layout: Layout, node_layout: str) -> str:
        host = socket.gethostname().split(".")[0]
        lines = [
            "# Written by tools/local_slurm.py: a private cluster on localhost,"
            f" profile {self.profile}.",
            "ClusterName=volcano",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={layout.port}",
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
            "SelectType=select/cons_tres",
            *self._profile_lines(),
            *(
                self._accounting_lines(layout)
                if self.accounting
                else [
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                ]
            ),
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.folder}/jobcomp.txt",
            "MailProg=/bin/true",
            # Emulated nodes on one machine: each takes its layout from this file.
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            *(["JobSubmitPlugins=lua"] if self.require_account else []),
        ]
        overrides = dict(self.settings)
        lines = [
            f"{key}={overrides.pop(key)}" if (key := line.split("=", 1)[0]) in overrides else line
            for line in lines
        ]
        lines += [f"{key}={value}" for key, value in overrides.items()]
        for name, port in zip(layout.node_names, layout.node_ports, strict=True):
            lines.append(
                f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 "
                f"Port={port} {node_layout} State=UNKNOWN"
            )
        lines.append(
            f"PartitionName={PARTITION} Nodes={','.join(layout.node_names)} "
            f"Default={'YES' if self.default_partition else 'NO'} MaxTime=INFINITE State=UP"
        )
        return "\n".join(lines) + "\n"

    def _profile_lines(self) -> list[str]:
        if self.profile == "fast":
            return [
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectTypeParameters=CR_Core",
                # A freed core takes the next task at once, not after a scheduler pass.
                "SchedulerParameters=bf_interval=1,batch_sched_delay=0,sched_min_interval=0",
                "Epilog=/bin/true",
                "MinJobAge=3600",
                "SlurmdTimeout=60",
                "KillWait=5",
            ]
        enforce = self.enforces_memory
        return [
            # As a site: cgroups track every process of a job and enforce its --mem and cores.
            f"ProctrackType=proctrack/{'cgroup' if enforce else 'linuxproc'}",
            f"TaskPlugin={'task/cgroup,task/affinity' if enforce else 'task/none'}",
            f"SelectTypeParameters={'CR_Core_Memory' if enforce else 'CR_Core'}",
            f"DefMemPerCPU={DEF_MEM_PER_CPU}",
            # Slurm's defaults, written out: what a learner's site has.
            "MinJobAge=300",
            "MaxArraySize=1001",
            "PriorityType=priority/multifactor",  # the default from 23.11; 22.05's is basic
        ]

    def cgroup_conf_text(self, version: tuple[int, int]) -> str | None:
        """cgroup.conf, or None where Slurm needs none (no cgroups, before 24.05)."""
        if self.enforces_memory:
            return (
                "\n".join(
                    [
                        "# Written by tools/local_slurm.py: cgroups enforce --mem and cores.",
                        "CgroupPlugin=cgroup/v1",
                        "CgroupMountpoint=/sys/fs/cgroup",
                        "ConstrainRAMSpace=yes",
                        "ConstrainSwapSpace=yes",
                        "ConstrainCores=yes",
                    ]
                )
                + "\n"
            )
        if version >= (24, 5):  # slurmd 24.05+ wants cgroups unless told it has none
            return "CgroupPlugin=disabled\n"
        return None

    def _accounting_lines(self, layout: Layout) -> list[str]:
        return [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=localhost",
            f"AccountingStoragePort={layout.dbd_port}",
            # For slurmdbd, the munge socket that authenticates to it.
            f"AccountingStoragePass={self.munge_socket}",
            "AccountingStorageEnforce=associations,limits,qos",
            # Each step's CPU time and peak memory: sampled every 30 s at a site (the
            # default); every second on the fast cluster.
            "JobAcctGatherType=jobacct_gather/linux",
            f"JobAcctGatherFrequency={1 if self.profile == 'fast' else 30}",
        ]

    def slurmdbd_conf(self, layout: Layout) -> str:
        return (
            "\n".join(
                [
                    "# Written by tools/local_slurm.py: the private cluster's accounting.",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    "DbdHost=localhost",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={layout.dbd_port}",
                    "SlurmUser=root",
                    f"PidFile={self.pid_file('slurmdbd')}",
                    f"LogFile={self.folder}/slurmdbd.log",
                    "StorageType=accounting_storage/mysql",
                    # 127.0.0.1, not localhost: the client library would look for the
                    # system's socket instead of this port.
                    "StorageHost=127.0.0.1",
                    f"StoragePort={layout.db_port}",
                    f"StorageUser={DB_USER}",
                    f"StoragePass={DB_PASSWORD}",
                    "StorageLoc=slurm_acct_db",
                ]
            )
            + "\n"
        )


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
    _run(
        [
            _program("runuser"),
            "-u",
            "munge",
            "--",
            _program("munged"),
            f"--socket={cluster.munge_socket}",
            f"--pid-file={cluster.pid_file('munged')}",
            f"--log-file={cluster.munge_dir}/munged.log",
            f"--seed-file={cluster.munge_dir}/munged.seed",
            f"--key-file={MUNGE_KEY}",
        ]
    )
    _wait_for(cluster.munge_socket.exists, "munged's socket", 10)


def _start_mariadb(cluster: Cluster, layout: Layout) -> None:
    """MariaDB on 127.0.0.1:db_port, data and socket in the cluster's folder."""
    if _pid_alive(cluster.pid_file("mariadbd"), "mariadbd"):
        return
    data = cluster.db_dir / "data"
    if not (data / "mysql").is_dir():
        data.mkdir(parents=True, exist_ok=True)
        shutil.chown(cluster.db_dir, "mysql", "mysql")
        shutil.chown(data, "mysql", "mysql")
        # One at a time on this machine: two at once have failed ("ERROR: 1051 Unknown
        # table 'mysql.tmp_user_sys'"), though each has a data folder of its own.
        with open(INSTALL_DB_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _run(
                [
                    _program("mariadb-install-db"),
                    "--user=mysql",
                    f"--datadir={data}",
                    "--skip-test-db",
                    f"--tmpdir={cluster.db_dir}",
                ]
            )
    for stale in (cluster.db_socket, cluster.pid_file("mariadbd")):
        stale.unlink(missing_ok=True)
    subprocess.Popen(
        [
            _program("mariadbd"),
            "--user=mysql",
            f"--datadir={data}",
            f"--socket={cluster.db_socket}",
            f"--port={layout.db_port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={cluster.pid_file('mariadbd')}",
            "--skip-log-bin",
            f"--log-error={cluster.db_dir}/mariadbd.log",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(cluster.db_socket.exists, "MariaDB's socket", 30)
    # The database itself, before slurmdbd's first start: Debian 13's client library
    # (libmariadb3 3.4) breaks slurmdbd's retry when it has to make it ("5027 Number of
    # columns ... exceeds", then "fatal: _check_mysql_concat_is_sane").
    _run(
        [
            _program("mariadb"),
            "-S",
            str(cluster.db_socket),
            "-u",
            "root",
            "-e",
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
            f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; "
            f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';",
        ]
    )


def _start_slurmdbd(cluster: Cluster, layout: Layout) -> None:
    """slurmdbd beside slurm.conf, then the cluster, account and users it accounts for."""
    if not _pid_alive(cluster.pid_file("slurmdbd"), "slurmdbd"):
        conf = cluster.folder / "slurmdbd.conf"
        conf.write_text(cluster.slurmdbd_conf(layout))
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
    wanted = [
        (("volcano", "root", ""), ["cluster", "volcano"]),
        (
            ("volcano", ACCOUNT, ""),
            ["account", ACCOUNT, "Description=learners", "Organization=volcano"],
        ),
        *(
            (("volcano", ACCOUNT, user), ["user", user, f"Account={ACCOUNT}"])
            for user in ("root", *cluster.learners)
        ),
    ]
    known = _associations(cluster)
    for association, what in wanted:
        if association not in known:
            _run([_program("sacctmgr"), "-i", "add", *what], env=cluster.env())
    for user in cluster.learners if cluster.max_submit else ():  # a site's per-user limit
        where = ["where", f"user={user}", f"account={ACCOUNT}", "cluster=volcano"]
        limit = f"MaxSubmitJobs={cluster.max_submit}"
        _run(
            [_program("sacctmgr"), "-i", "modify", "user", *where, "set", limit], env=cluster.env()
        )


def _associations(cluster: Cluster) -> set[tuple[str, ...]]:
    listed = _run(
        [_program("sacctmgr"), "-n", "-P", "show", "assoc", "format=cluster,account,user"],
        env=cluster.env(),
    )
    return {tuple(line.split("|")) for line in listed.splitlines() if line}


def _start_slurmctld(cluster: Cluster, *, keep_jobs: bool = False) -> None:
    if _pid_alive(cluster.pid_file("slurmctld"), "slurmctld"):
        return
    cluster.pid_file("slurmctld").unlink(missing_ok=True)
    # -c: start with no jobs from an earlier (crashed) run; -i: ignore broken state.
    # A site restarts its controller without either: its jobs and their states survive.
    fresh = [] if keep_jobs else ["-c", "-i"]
    _run([_program("slurmctld"), *fresh, "-f", str(cluster.conf)], env=cluster.env())


def stop_controller(cluster: Cluster, how: signal.Signals = signal.SIGKILL) -> None:
    """Stop slurmctld alone: SIGKILL is a crash, SIGTERM a shutdown (state saved)."""
    pid = _pid_alive(cluster.pid_file("slurmctld"), "slurmctld")
    if pid:
        os.kill(pid, how)
        _wait_for(_process_gone(pid), f"slurmctld {pid} to stop", 20)


def restart_controller(cluster: Cluster, timeout: float = 60) -> None:
    """Start slurmctld again as a site does after a crash: the jobs it saved come back."""
    _start_slurmctld(cluster, keep_jobs=True)
    _wait_for(lambda: bool(node_states(cluster)), "slurmctld to answer again", timeout)


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
    """Start (or complete) the cluster; return the seconds it took to become idle.

    If it cannot be started, every daemon it started is stopped again.
    """
    began = time.monotonic()
    if os.geteuid() != 0:
        raise ClusterError("the private cluster runs its daemons as root: run this as root")
    if cluster.profile not in PROFILES:
        raise ClusterError(f"no profile {cluster.profile!r}: use one of {', '.join(PROFILES)}")
    for folder in (cluster.folder, cluster.folder / "state", cluster.folder / "spool"):
        folder.mkdir(parents=True, exist_ok=True)
    cluster.folder.chmod(0o755)  # learners read slurm.conf and reach munged's socket
    layout = cluster._choose_layout()
    running = _pid_alive(cluster.pid_file("slurmctld"), "slurmctld")
    wanted = cluster.slurm_conf(layout, node_layout())
    cgroups = cluster.cgroup_conf_text(slurm_version())
    if running and cluster.conf.exists() and cluster.conf.read_text() != wanted:
        stop(cluster)  # another configuration: start again from scratch
    cluster.conf.write_text(wanted)
    if cgroups is None:
        cluster.cgroup_conf.unlink(missing_ok=True)
    else:
        cluster.cgroup_conf.write_text(cgroups)
    if cluster.require_account:
        cluster.job_submit_lua.write_text(REQUIRE_ACCOUNT_LUA)
    for name in cluster.learners:
        Learner.named(name)
    try:
        _start_daemons(cluster, layout)

        def all_idle() -> bool:
            states = node_states(cluster)
            return sorted(states) == sorted(layout.node_names) and all(
                state in {"idle", "mix", "alloc"} for state in states.values()
            )

        _wait_for(all_idle, f"nodes {', '.join(layout.node_names)} to be idle", timeout)
    except (ClusterError, OSError) as error:
        stop(cluster)
        raise ClusterError(f"{error}; see the logs in {cluster.folder}") from None
    return time.monotonic() - began


def _start_daemons(cluster: Cluster, layout: Layout) -> None:
    _start_munged(cluster)
    if cluster.accounting:
        _start_mariadb(cluster, layout)
        _start_slurmdbd(cluster, layout)
    _start_slurmctld(cluster)
    for node in layout.node_names:
        _start_slurmd(cluster, node)


def _daemon_pid_files(cluster: Cluster) -> list[tuple[Path, str]]:
    slurmds = [(path, "slurmd") for path in sorted(cluster.folder.glob("slurmd-*.pid"))]
    accounting = [
        (cluster.pid_file("slurmdbd"), "slurmdbd"),
        (cluster.pid_file("mariadbd"), "mariadbd"),
    ]
    # Also for a cluster started with accounting and stopped without saying so.
    if not cluster.accounting and not any(path.exists() for path, _ in accounting):
        accounting = []
    return [
        *slurmds,
        (cluster.pid_file("slurmctld"), "slurmctld"),
        *accounting,
        (cluster.pid_file("munged"), "munged"),
    ]


def _process_gone(pid: int) -> Callable[[], bool]:
    return lambda: not Path(f"/proc/{pid}").exists()


def stop(cluster: Cluster, timeout: float = 20) -> None:
    """Stop every daemon of the cluster by the PID in its PID file.

    In three waves, each daemon of a wave at once: Slurm's (slurmd, slurmctld),
    then slurmdbd (which may still write to the database), then MariaDB and munged.
    """
    daemons = _daemon_pid_files(cluster)
    waves = [
        [(path, program) for path, program in daemons if program in {"slurmd", "slurmctld"}],
        [(path, program) for path, program in daemons if program == "slurmdbd"],
        [(path, program) for path, program in daemons if program in {"mariadbd", "munged"}],
    ]
    for wave in waves:
        running = [(path, pid) for path, program in wave if (pid := _pid_alive(path, program))]
        for _, pid in running:
            os.kill(pid, signal.SIGTERM)
        for _, pid in running:
            try:
                _wait_for(_process_gone(pid), f"process {pid} to stop", timeout)
            except ClusterError:
                os.kill(pid, signal.SIGKILL)
        for path, _ in wave:
            path.unlink(missing_ok=True)


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
    return scontrol_records(output)


def wait_for_jobs(cluster: Cluster, job_ids: Iterable[str], timeout: float = 300) -> None:
    """Wait until every job and array task of ``job_ids`` has ended."""
    ids = list(job_ids)

    def ended() -> bool:
        records = [record for job in ids for record in job_records(cluster, job)]
        return bool(records) and all(r.get("JobState") in ENDED_STATES for r in records)

    _wait_for(ended, f"jobs {', '.join(ids)} to end", timeout)


def _setting(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a slurm.conf setting."""
    key, equals, value = text.partition("=")
    if not (key and equals):
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local_slurm.py", description="A private Slurm cluster on localhost."
    )
    parser.add_argument(
        "command",
        choices=["start", "stop", "status", "env", "crash-controller", "restart-controller"],
        help="crash-controller kills slurmctld (SIGKILL); restart-controller starts it again "
        "as a site does, keeping its saved jobs (no -c)",
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the cluster's folder")
    parser.add_argument("--nodes", type=int, default=1, help="emulated nodes (default 1)")
    parser.add_argument(
        "--accounting",
        action="store_true",
        help="also run MariaDB and slurmdbd: sacct, seff-style reports, QOS limits",
    )
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument(
        "--profile",
        choices=PROFILES,
        default="site",
        help="site (default): cgroups enforce --mem, a site's defaults; "
        "fast: no enforcement, a scheduler tuned for speed",
    )
    profile.add_argument(
        "--site",
        dest="profile",
        action="store_const",
        const="site",
        help="the same as --profile site",
    )
    parser.add_argument(
        "--learner",
        action="append",
        default=[],
        metavar="USER",
        help="a Unix user to register in accounting (made if missing); may be repeated",
    )
    site = parser.add_argument_group("a stricter site")
    site.add_argument(
        "--no-default-partition",
        dest="default_partition",
        action="store_false",
        help=f"no default partition: every job must name one (SBATCH_PARTITION={PARTITION})",
    )
    site.add_argument(
        "--require-account",
        action="store_true",
        help=f"refuse jobs that name no account (SBATCH_ACCOUNT={ACCOUNT}; job_submit/lua)",
    )
    site.add_argument(
        "--max-submit",
        type=int,
        metavar="N",
        help="each learner may queue N jobs, every array task counting as one (--accounting)",
    )
    site.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_setting,
        help="a slurm.conf line, e.g. DependencyParameters=kill_invalid_depend, "
        "PrivateData=jobs, MaxArraySize=500; may be repeated",
    )
    args = parser.parse_args(argv)
    if args.max_submit and not args.accounting:
        parser.error("--max-submit needs --accounting: the limit is kept in accounting")
    cluster = Cluster(
        args.dir.resolve(),
        args.nodes,
        settings=tuple(args.set),
        accounting=args.accounting,
        profile=args.profile,
        learners=tuple(args.learner),
        default_partition=args.default_partition,
        require_account=args.require_account,
        max_submit=args.max_submit,
    )
    try:
        if args.command == "start":
            seconds = start(cluster)
            enforced = "cgroups enforce --mem" if cluster.enforces_memory else "--mem not enforced"
            print(
                f"cluster up in {seconds:.1f} s ({cluster.profile} profile, {enforced}): "
                f"{node_states(cluster)}",
                file=sys.stderr,
            )
            print(f"export SLURM_CONF={shlex.quote(str(cluster.conf))}")
        elif args.command == "stop":
            stop(cluster)
        elif args.command == "crash-controller":
            stop_controller(cluster)
        elif args.command == "restart-controller":
            stop_controller(cluster, signal.SIGTERM)
            restart_controller(cluster)
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
