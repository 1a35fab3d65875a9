"""A real single-node Slurm cluster for the tests, started from a temporary folder.

``slurm_cluster`` (session-scoped) starts, in this order and each in the foreground under this
process (so each has a known PID):

- ``munged`` with its own key, socket, PID, seed and log files (``AuthType=auth/munge``,
  ``AuthInfo=socket=…`` points every Slurm program at that socket);
- ``mariadbd`` (a throwaway datadir, loopback TCP) and ``slurmdbd`` on top of it: job accounting
  is required because submitit reads job states with ``sacct`` — a job that dies without writing
  its result (``scancel``) is only seen as done through ``sacct``. Slurm 22.05 has no flat-file
  accounting storage (no ``accounting_storage/filetxt`` plugin), so ``sacct`` needs slurmdbd;
- ``slurmctld`` and ``slurmd`` (node ``protstruct-node`` at 127.0.0.1, every CPU of this machine,
  ``proctrack/linuxproc``, ``task/none``, ``select/cons_tres`` with ``CR_CPU_Memory``, so 1-CPU
  jobs run side by side).

It waits (bounded) until ``sinfo`` shows the node idle and yields a :class:`SlurmCluster`: pass
``cluster.env`` to every Slurm command and to the processes that submit jobs (it carries
``SLURM_CONF``; jobs inherit it through sbatch's ``--export=ALL``). At teardown it cancels every
job, stops the daemons by PID (newest first) and kills any process still carrying this cluster's
``SLURM_CONF`` in its environment (a ``slurmstepd`` or a job's task that outlived ``slurmd``).

Without the binaries the fixture skips, unless ``PROTSTRUCT_REQUIRE_SLURM=1`` (CI), where it fails.
Needs root (Slurm daemons run as ``SlurmUser=root``; CI is root).
Debian 12 packages: ``slurmctld slurmd slurm-client slurmdbd munge mariadb-server``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import slurm_confs

CLUSTER, PARTITION, NODE = slurm_confs.CLUSTER, slurm_confs.PARTITION, slurm_confs.NODE
BINARIES = (
    "munged",
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "sinfo",
    "sbatch",
    "sacct",
    "scancel",
    "squeue",
)
START_TIMEOUT_S = 120


@dataclass
class SlurmCluster:
    root: Path  # everything the cluster writes
    conf: Path  # slurm.conf
    env: dict[str, str]  # os.environ + SLURM_CONF (and nothing else needed)
    partition: str
    node: str
    cpus: int
    logs: dict[str, Path]  # daemon name → its log file
    pids: dict[str, int] = field(default_factory=dict)

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm command (``sinfo``, ``squeue``, ``sacct``, ``scancel``…) against this cluster."""
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def log_tail(self, lines: int = 25) -> str:
        out = []
        for name, path in self.logs.items():
            for p in (path, path.with_suffix(".out")):  # the log file, then stdout/stderr
                if p.is_file() and p.stat().st_size:
                    text = p.read_text(errors="replace").splitlines()[-lines:]
                    out.append(f"--- {name} ({p}) ---\n" + "\n".join(text))
        return "\n".join(out) or "(no daemon wrote a log)"


def _bin(name: str) -> str | None:
    """On PATH, or in the sbin folders where Debian puts the daemons (a non-login PATH may lack them)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _why_no_slurm() -> str | None:
    missing = [b for b in BINARIES if _bin(b) is None]
    if missing:
        return f"Slurm/munge/MariaDB binaries not found (PATH, /usr/sbin): {missing}"
    if os.geteuid() != 0:
        return "the single-node Slurm cluster runs its daemons as root (SlurmUser=root)"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def _wait(
    what: str, ready, cluster: SlurmCluster, procs: dict[str, subprocess.Popen], timeout: float = START_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"while waiting for {what}: daemon(s) exited {dead}\n{cluster.log_tail()}")
        try:
            if ready():
                return
        except (OSError, subprocess.SubprocessError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{cluster.log_tail()}")


def _stop(cluster: SlurmCluster, procs: dict[str, subprocess.Popen]) -> list[str]:
    """Cancel jobs, stop daemons newest first, then any leftover process of this cluster. Returns
    what had to be killed the hard way."""
    problems = []
    if "slurmctld" in procs and procs["slurmctld"].poll() is None:
        cluster.run("scancel", "--partition", cluster.partition, check=False)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            q = cluster.run("squeue", "-h", "-o", "%i", check=False)
            if q.returncode != 0 or not q.stdout.strip():
                break
            time.sleep(0.5)
    for name, proc in reversed(list(procs.items())):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{name} (pid {proc.pid}) ignored SIGTERM: killed")
                proc.kill()
                proc.wait(timeout=10)
    marker = f"SLURM_CONF={cluster.conf}".encode()
    for pid in _processes_with_env(marker):
        problems.append(f"pid {pid} ({_cmdline(pid)}) outlived the daemons: killed")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return problems


def _processes_with_env(marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _start(root: Path, procs: dict[str, subprocess.Popen]) -> SlurmCluster:
    for sub in ("munge", "db", "state", "spool", "run", "log"):
        (root / sub).mkdir()
        (root / sub).chmod(0o700)
    (root / "munge").chmod(0o755)  # munged: every client must reach its socket
    ports = dict(zip(("slurmctld", "slurmd", "slurmdbd", "mariadb"), _free_ports(4)))
    cpus = os.cpu_count() or 1
    mem_mb = max(1024, int(_mem_mb() * 0.9))
    db_pass = secrets.token_hex(12)
    conf = slurm_confs.write_confs(root, ports, cpus, mem_mb, db_pass)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for var in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_"))]:
        if var != "SLURM_CONF":
            del env[var]  # an outer Slurm job's settings must not leak into this cluster
    logs = {
        "munged": root / "log" / "munged.log",
        "mariadbd": root / "log" / "mariadbd.log",
        "slurmdbd": root / "log" / "slurmdbd.log",
        "slurmctld": root / "log" / "slurmctld.log",
        "slurmd": root / "log" / "slurmd.log",
    }
    cluster = SlurmCluster(root=root, conf=conf, env=env, partition=PARTITION, node=NODE, cpus=cpus, logs=logs)

    def daemon(name: str, cmd: list[str]) -> None:
        with open(root / "log" / f"{name}.out", "ab") as out:
            procs[name] = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        cluster.pids[name] = procs[name].pid

    # munge: its own key and socket
    munge = root / "munge"
    key = munge / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    daemon(
        "munged",
        [
            _bin("munged"),
            "--foreground",
            f"--socket={munge}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={munge}/munged.pid",
            f"--seed-file={munge}/munged.seed",
            f"--log-file={logs['munged']}",
            "--num-threads=2",
        ],
    )
    _wait("munged", lambda: (munge / "munge.socket").is_socket(), cluster, procs)

    # MariaDB for slurmdbd: a fresh datadir, loopback only, small buffers
    db = root / "db"
    subprocess.run(
        [
            _bin("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={db}/data",
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=root,
    )
    daemon(
        "mariadbd",
        [
            _bin("mariadbd"),
            "--no-defaults",
            f"--datadir={db}/data",
            "--user=root",
            f"--socket={db}/mysql.sock",
            f"--port={ports['mariadb']}",
            "--bind-address=127.0.0.1",
            f"--pid-file={db}/mariadbd.pid",
            f"--log-error={logs['mariadbd']}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--performance-schema=OFF",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--innodb-lock-wait-timeout=900",
        ],
    )
    sql = [_bin("mariadb"), "--no-defaults", f"--socket={db}/mysql.sock", "-uroot"]
    _wait(
        "mariadbd",
        lambda: subprocess.run([*sql, "-e", "select 1"], check=False, capture_output=True, timeout=10).returncode == 0,
        cluster,
        procs,
    )
    grant = (
        f"create user 'slurm'@'127.0.0.1' identified by '{db_pass}'; "
        "grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1';"
    )
    subprocess.run([*sql, "-e", grant], check=True, capture_output=True, timeout=30)

    daemon("slurmdbd", [_bin("slurmdbd"), "-D"])
    _wait(
        "slurmdbd",
        lambda: cluster.run("sacctmgr", "-n", "-P", "show", "cluster", check=False, timeout=10).returncode == 0,
        cluster,
        procs,
    )
    # the cluster (and its root account/association) before slurmctld registers with slurmdbd
    cluster.run("sacctmgr", "-i", "add", "cluster", CLUSTER, timeout=30)

    daemon("slurmctld", [_bin("slurmctld"), "-D", "-i", "-f", str(conf)])
    daemon("slurmd", [_bin("slurmd"), "-D", "-N", NODE, "-f", str(conf)])

    def node_idle() -> bool:
        out = cluster.run("sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N %t", check=False, timeout=10)
        return out.returncode == 0 and out.stdout.split() == [NODE, "idle"]

    _wait(f"node {NODE} idle in sinfo", node_idle, cluster, procs)
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    why = _why_no_slurm()
    if why:
        if os.environ.get("PROTSTRUCT_REQUIRE_SLURM") == "1":
            pytest.fail(f"PROTSTRUCT_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="protstruct-slurm-"))
    root.chmod(0o755)  # munged insists that its socket's folders are searchable by everyone
    procs: dict[str, subprocess.Popen] = {}
    cluster = None
    try:
        cluster = _start(root, procs)
        yield cluster
    finally:
        stub = cluster or SlurmCluster(
            root=root,
            conf=root / "slurm.conf",
            env={**os.environ, "SLURM_CONF": str(root / "slurm.conf")},
            partition=PARTITION,
            node=NODE,
            cpus=0,
            logs={},
        )
        problems = _stop(stub, procs)
        if not problems:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"slurm_cluster teardown: {problems}; logs kept in {root}")
